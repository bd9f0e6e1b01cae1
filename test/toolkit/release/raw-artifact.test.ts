// Kairos raw extension artifacts and the catalog artifact: written as OCI layouts, pushed with oras to
// a real docker-distribution, read back with oras (manifest bytes, artifactType, the one titled
// layer), resolved, copied by digest to another repository, tagged and deleted.
import "../../helpers/oras-path";
import { strict as assert } from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { CATALOG_ARTIFACT_TYPE, LAYOUT_TAG, writeJsonArtifactLayout, writeRawExtensionLayout } from "../../../provider/toolkit/release/raw-artifact";
import { copyByDigest, deleteManifest, fetchBlob, fetchManifest, pushLayout, resolveDigest, tagManifest } from "../../../provider/toolkit/release/oras";
import { ToolNotFoundError } from "../../../provider/toolkit/run";
import { startRegistry, TestRegistry } from "../../helpers/registry";
import { tempDir } from "../../helpers/temp";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

describe("release: Kairos raw extension artifacts (OCI layout, oras, docker-distribution)", function () {
    this.timeout(120000);
    let registry: TestRegistry;
    let work: string;
    let raw: string;
    const plain = { plainHttp: true };

    before(async () => {
        registry = await startRegistry();
        work = tempDir("raw-artifact");
        raw = path.join(work, "k3s-v1.31.sysext.raw");
        // 3 MiB + 5: more than one read chunk, not block-aligned
        fs.writeFileSync(raw, Buffer.alloc(3 * 1024 * 1024 + 5, 7));
    });
    after(async () => registry?.stop());

    it("writes the manifest Kairos' ExtractRawExtension reads, with no timestamp", async () => {
        const layout = await writeRawExtensionLayout(path.join(work, "l1"), raw, "sysext");
        const m = JSON.parse(layout.manifestBytes.toString());
        assert.deepEqual(Object.keys(m), ["schemaVersion", "mediaType", "artifactType", "config", "layers"]);
        assert.equal(m.mediaType, "application/vnd.oci.image.manifest.v1+json");
        assert.equal(m.artifactType, "application/vnd.kairos.sysext.raw");
        assert.deepEqual(m.config, { mediaType: "application/vnd.oci.empty.v1+json", digest: EMPTY_DIGEST, size: 2, data: "e30=" });
        assert.equal(m.layers.length, 1);
        assert.deepEqual(m.layers[0], {
            mediaType: "application/vnd.kairos.sysext.raw",
            digest: sha(fs.readFileSync(raw)),
            size: fs.statSync(raw).size,
            annotations: { "org.opencontainers.image.title": "k3s-v1.31.sysext.raw" },
        });
        assert.equal(layout.manifestDigest, sha(layout.manifestBytes));
        assert.equal(layout.layerDigest, m.layers[0].digest);
        assert.equal(fs.readFileSync(path.join(work, "l1", "blobs", "sha256", EMPTY_DIGEST.slice(7)), "utf8"), "{}");
        assert.doesNotMatch(layout.manifestBytes.toString(), /created/);
        // a second layout of the same file and name: the same digest
        const again = await writeRawExtensionLayout(path.join(work, "l1-again"), raw, "sysext");
        assert.equal(again.manifestDigest, layout.manifestDigest);
        const confext = await writeRawExtensionLayout(path.join(work, "l1-confext"), raw, "confext", "k3s-v1.31.confext.raw");
        assert.equal(JSON.parse(confext.manifestBytes.toString()).artifactType, "application/vnd.kairos.confext.raw");
        assert.notEqual(confext.manifestDigest, layout.manifestDigest);
    });

    it("fails for a title that is a path, or not *.raw, or into a used folder", async () => {
        await assert.rejects(writeRawExtensionLayout(path.join(work, "bad1"), raw, "sysext", "../k3s.sysext.raw"), /plain file name/);
        await assert.rejects(writeRawExtensionLayout(path.join(work, "bad2"), raw, "sysext", "k3s.img"), /must end in `\.raw`/);
        await assert.rejects(writeRawExtensionLayout(path.join(work, "l1"), raw, "sysext"), /not empty/);
    });

    it("pushes byte for byte: oras reads back our manifest, digest, artifactType and titled layer", async () => {
        const layout = await writeRawExtensionLayout(path.join(work, "l2"), raw, "sysext");
        const ref = `${registry.host}/sysext/k3s:v1.31-amd64`;
        const digest = await pushLayout(path.join(work, "l2"), LAYOUT_TAG, ref, plain);
        assert.equal(digest, layout.manifestDigest);
        assert.equal(await resolveDigest(ref, plain), layout.manifestDigest);
        const served = await fetchManifest(ref, plain);
        assert.ok(served.equals(layout.manifestBytes), "the registry serves our exact manifest bytes");
        const layer = await fetchBlob(`${registry.host}/sysext/k3s@${layout.layerDigest}`, plain);
        assert.ok(layer.equals(fs.readFileSync(raw)));
    });

    it("resolveDigest: undefined for a missing tag or repository, an error naming the registry when it is unreachable", async () => {
        assert.equal(await resolveDigest(`${registry.host}/sysext/k3s:no-such-tag`, plain), undefined);
        assert.equal(await resolveDigest(`${registry.host}/no/such-repo:v1`, plain), undefined);
        await assert.rejects(resolveDigest(`127.0.0.1:9/sysext/k3s:v1`, plain), (e: Error) => /registry 127\.0\.0\.1:9: the registry is unreachable/.test(e.message) && /connection refused/.test(e.message));
        await assert.rejects(resolveDigest(`${registry.host}/sysext/k3s:v1.31-amd64`), /set plainHttp/);
    });

    it("runs the oras that PULUMI_KAIROS_ORAS names, else the one on PATH", async () => {
        const saved = { bin: process.env.PULUMI_KAIROS_ORAS, path: process.env.PATH };
        const real = fs.readFileSync(path.join(__dirname, "..", "..", "..", ".oras-bin"), "utf8").trim();
        try {
            process.env.PULUMI_KAIROS_ORAS = path.join(work, "no-oras-here");
            await assert.rejects(resolveDigest(`${registry.host}/sysext/k3s:x`, plain), (e: Error) => e instanceof ToolNotFoundError && e.tool.endsWith("no-oras-here"));
            process.env.PULUMI_KAIROS_ORAS = real;
            process.env.PATH = "/usr/bin:/bin"; // no oras on it
            assert.equal(await resolveDigest(`${registry.host}/sysext/k3s:x`, plain), undefined);
            delete process.env.PULUMI_KAIROS_ORAS;
            await assert.rejects(resolveDigest(`${registry.host}/sysext/k3s:x`, plain), (e: Error) => e instanceof ToolNotFoundError && e.tool === "oras");
        } finally {
            process.env.PATH = saved.path;
            if (saved.bin === undefined) delete process.env.PULUMI_KAIROS_ORAS;
            else process.env.PULUMI_KAIROS_ORAS = saved.bin;
        }
    });

    it("copies by digest to another repository (promotion) keeping the digest; tags and deletes by digest", async () => {
        const layout = await writeRawExtensionLayout(path.join(work, "l3"), raw, "sysext", "k3s-v1.32.sysext.raw");
        await pushLayout(path.join(work, "l3"), LAYOUT_TAG, `${registry.host}/staging/k3s:v1.32`, plain);
        const src = `${registry.host}/staging/k3s@${layout.manifestDigest}`;
        const copied = await copyByDigest(src, `${registry.host}/prod/k3s:v1.32`, plain);
        assert.equal(copied, layout.manifestDigest);
        assert.ok((await fetchManifest(`${registry.host}/prod/k3s:v1.32`, plain)).equals(layout.manifestBytes));
        await assert.rejects(copyByDigest(`${registry.host}/staging/k3s:v1.32`, `${registry.host}/prod/k3s:x`, plain), /by digest/);

        await tagManifest(`${registry.host}/prod/k3s@${layout.manifestDigest}`, ["stable"], plain);
        assert.equal(await resolveDigest(`${registry.host}/prod/k3s:stable`, plain), layout.manifestDigest);
        await deleteManifest(`${registry.host}/prod/k3s@${layout.manifestDigest}`, plain);
        assert.equal(await resolveDigest(`${registry.host}/prod/k3s:stable`, plain), undefined);
        assert.equal(await resolveDigest(`${registry.host}/staging/k3s:v1.32`, plain), layout.manifestDigest, "the source is untouched");
    });

    it("the catalog artifact: JSON layer titled releases.json, read back with oras blob fetch", async () => {
        const json = Buffer.from('{"repo":"x","layers":[]}');
        const layout = writeJsonArtifactLayout(path.join(work, "cat"), json);
        const m = JSON.parse(layout.manifestBytes.toString());
        assert.equal(m.artifactType, CATALOG_ARTIFACT_TYPE);
        assert.deepEqual(m.layers, [{ mediaType: "application/json", digest: sha(json), size: json.length, annotations: { "org.opencontainers.image.title": "releases.json" } }]);
        const ref = `${registry.host}/catalog/releases:latest`;
        assert.equal(await pushLayout(path.join(work, "cat"), LAYOUT_TAG, ref, plain), layout.manifestDigest);
        const back = JSON.parse((await fetchManifest(ref, plain)).toString());
        assert.ok((await fetchBlob(`${registry.host}/catalog/releases@${back.layers[0].digest}`, plain)).equals(json));
    });
});

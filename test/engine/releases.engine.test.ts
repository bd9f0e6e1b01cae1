// Releases through the real engine and a real registry (docker-distribution on 127.0.0.1, pushed and
// read with oras): the node-updates example's program publishes k3s versions as Kairos raw artifacts, a
// releases.json catalog and the OS container. A new k3s version previews as exactly its extension, its
// release and the catalog; the same program in another folder makes the same digests; refresh sees a
// moved tag; destroy leaves the releases unless asked; and prod promotes staging's tested releases by
// digest, so its catalog names exactly those digests.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { TestRegistry, startRegistry } from "../helpers/registry";
import { buildTestOsRootfs } from "../helpers/test-os";
import { nodeUpdatesProgram, NodeUpdatesSettings } from "../../examples/node-updates";
import { ExtensionCatalog } from "../../provider/extension-catalog";
import { PromotedRelease } from "../../provider/promoted-release";
import { fetchManifest, resolveDigest, tagManifest } from "../../provider/toolkit/release/oras";
import { sysextReleaseHandler } from "../../provider/sysext-release";
import { osReleaseHandler } from "../../provider/os-release";
import { createVia } from "../helpers/handlers";
import { parseCatalog, resolve } from "../../provider/toolkit/release/catalog";
import "../helpers/oras-path";

const access = { plainHttp: true };
const k3sTree = (root: string, version: string) => {
    const dir = path.join(root, `k3s-${version}`);
    fs.mkdirSync(path.join(dir, "usr/local/bin"), { recursive: true });
    fs.writeFileSync(path.join(dir, "usr/local/bin/k3s"), `#!/bin/sh\necho k3s ${version}\n`, { mode: 0o755 });
    return { version, tree: dir };
};

describe("releases: sysext artifacts, a releases.json catalog and the OS container through the engine and a real registry", function () {
    this.timeout(900000);
    let registry: TestRegistry;
    let work: string;
    let settings: NodeUpdatesSettings;
    let stack: EngineStack;
    let first: Record<string, any>;

    before(async () => {
        registry = await startRegistry();
        work = tempDir("releases");
        const rootfs = path.join(work, "os");
        await buildTestOsRootfs(rootfs);
        fs.writeFileSync(path.join(work, "cloud-config.yaml"), "#cloud-config\n");
        settings = {
            outDir: path.join(work, "out"), registry: registry.host, plainHttp: true,
            k3s: [k3sTree(work, "1.0.0")], os: { dir: rootfs, version: "1" }, cloudConfig: path.join(work, "cloud-config.yaml"),
            secureBootEnroll: "force", // the busybox test OS boots the host's systemd-boot 252
        };
        stack = await engineStack(async () => nodeUpdatesProgram(settings)(), { projectName: "kairos-releases", stackName: "dev" });
        first = (await stack.up()).outputs;
    });
    after(async () => {
        await stack?.dispose();
        await registry?.stop();
    });

    it("publishes the extension as Kairos' raw artifact: artifactType, one layer titled with the file name, no timestamp", async () => {
        const [entry] = first.releases.value;
        assert.match(entry.reference, new RegExp(`^${registry.host}/kairos/k3s@sha256:[0-9a-f]{64}$`));
        const manifest = JSON.parse((await fetchManifest(entry.reference, access)).toString());
        assert.equal(manifest.artifactType, "application/vnd.kairos.sysext.raw");
        assert.equal(manifest.layers.length, 1);
        assert.equal(manifest.layers[0].mediaType, "application/vnd.kairos.sysext.raw");
        assert.equal(manifest.layers[0].annotations["org.opencontainers.image.title"], "k3s-1.0.0.sysext.raw");
        assert.equal(manifest.annotations?.["org.opencontainers.image.created"], undefined);
        assert.equal(await resolveDigest(`${registry.host}/kairos/k3s:1.0.0`, access), entry.reference.split("@")[1]);
    });

    it("publishes releases.json where a node fetches it, naming each release by digest", async () => {
        const catalog = first.catalog.value;
        const served = await (await fetch(catalog.url)).text();
        assert.equal(served, fs.readFileSync(catalog.path, "utf8"));
        const [entry] = first.releases.value;
        assert.equal(resolve(parseCatalog(served), "k3s", undefined, "amd64").oci, entry.reference);
        assert.deepEqual(catalog.latest, { k3s: "1.0.0" });
    });

    it("publishes the OS as AuroraBoot's container image, pushed under the digest of the tarball's manifest", async () => {
        const os = first.os.value;
        assert.equal(os.reference, `${registry.host}/kairos/os@${os.digest}`);
        const manifest = JSON.parse((await fetchManifest(os.reference, access)).toString());
        assert.equal(manifest.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
        assert.equal(manifest.layers.length, 1);
        const tarList = (await import("child_process")).execFileSync("tar", ["-tf", os.tarball], { encoding: "utf8" }).split("\n").filter(Boolean);
        assert.ok(tarList.includes("manifest.json"), tarList.join(" "));
    });

    it("a new k3s version previews as exactly its extension, its release and the catalog; up publishes it and moves latest", async () => {
        settings.k3s = [...settings.k3s, k3sTree(work, "2.0.0")];
        const preview = await stack.previewSteps();
        assert.deepEqual(preview.steps, ["create SysextRelease k3s-2.0.0", "create SystemExtension k3s-2.0.0", "update ExtensionCatalog extensions"], preview.stdout);
        const up = await stack.up();
        assert.deepEqual(up.outputs.catalog.value.latest, { k3s: "2.0.0" });
        assert.equal(up.outputs.os.value.digest, first.os.value.digest, "the OS release is untouched");
        assert.equal(up.outputs.iso.value, first.iso.value);
        const catalog = parseCatalog(await (await fetch(up.outputs.catalog.value.url)).text());
        assert.equal(resolve(catalog, "k3s", "1.0.0", "amd64").oci, first.releases.value[0].reference, "the old version stays listed");
    });

    it("a release is a function of its bytes: the same image and UKI published again elsewhere give the same digests and tarball", async () => {
        const ext = await stack.resourceOutputs("k3s-1.0.0", "SysextRelease");
        const again = await createVia(sysextReleaseHandler, { image: ext.image, name: "k3s", version: "1.0.0", repository: `${registry.host}/again/k3s`, registry: access });
        assert.equal(again.digest, ext.digest);
        const os = await stack.resourceOutputs("os", "OsRelease");
        const rebuilt = await createVia(osReleaseHandler, { uki: os.uki, enrollKeys: os.enrollKeys, outputDir: path.join(work, "os-again"), repository: `${registry.host}/again/os`, tag: "1", registry: access });
        assert.equal(rebuilt.digest, os.digest);
        assert.ok(fs.readFileSync(rebuilt.path).equals(fs.readFileSync(os.path)), "the ocifile: tarballs are byte-identical");
        assert.equal(await resolveDigest(`${registry.host}/again/os:1`, access), os!.digest);
    });

    it("refresh reports a tag moved in the registry as drift, and the next up points it back", async () => {
        const before = await stack.outputValues();
        const [v1, v2] = before.releases;
        await tagManifest(v2.reference, ["1.0.0"], access); // someone re-tagged 1.0.0 at 2.0.0's manifest
        await stack.refresh();
        assert.deepEqual((await stack.resourceOutputs("k3s-1.0.0", "SysextRelease")).drift, [`${registry.host}/kairos/k3s:1.0.0: points at ${v2.reference.split("@")[1]}`]);
        // The catalog reads the release's entry, which is unknown until the release is published again.
        const preview = await stack.previewSteps();
        assert.deepEqual(preview.steps, ["update ExtensionCatalog extensions", "update SysextRelease k3s-1.0.0"], preview.stdout);
        const after = (await stack.up()).outputs;
        assert.equal(await resolveDigest(`${registry.host}/kairos/k3s:1.0.0`, access), v1.reference.split("@")[1]);
        assert.deepEqual(after.releases.value, before.releases, "the same releases, the same digests");
        assert.equal(after.catalog.value.url, before.catalog.url, "the catalog's bytes did not change");
    });

    it("prod promotes staging's tested releases by digest; its catalog names exactly those digests; destroy leaves them", async () => {
        const tested = (await stack.outputValues()).releases as any[];
        const prod = await engineStack(
            async () => {
                const promoted = tested.map(
                    (e) => new PromotedRelease(`k3s-${e.version}`, { source: e.reference, repository: `${registry.host}/prod/k3s`, entry: { name: e.name, version: e.version, arch: e.arch, kind: e.kind }, registry: access }),
                );
                const catalog = new ExtensionCatalog("prod", { entries: promoted.map((p) => p.catalogEntry as pulumi.Output<any>), outputDir: path.join(work, "prod-catalog"), repository: `${registry.host}/prod/catalog`, registry: access });
                return { catalog: catalog.catalog, references: pulumi.all(promoted.map((p) => p.reference)) };
            },
            { projectName: "kairos-releases", stackName: "prod" },
        );
        try {
            const outs = (await prod.up()).outputs;
            const prodCatalog = JSON.parse(outs.catalog.value);
            const digests = (c: any) => c.layers.flatMap((l: any) => l.tags.map((t: any) => t.sysext.amd64.oci.split("@")[1])).sort();
            assert.deepEqual(digests(prodCatalog), tested.map((e) => e.reference.split("@")[1]).sort());
            for (const r of outs.references.value) assert.match(r, new RegExp(`^${registry.host}/prod/k3s@`));
            await prod.destroy();
            for (const r of outs.references.value) assert.ok(await resolveDigest(r, access), `${r} stays after destroy (deleteOnDestroy is off)`);
        } finally {
            await prod.dispose();
        }
    });
});

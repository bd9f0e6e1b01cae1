// S3Release under Pulumi mocks: bucket handling, object keys, content types and sources, the
// manifest's exact bytes, and collected validation errors; plus the pure manifest function. The
// extension and the key set it publishes are real (built by their handlers); only AWS is mocked.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { S3Release, contentTypeFor, extensionArtifact, releaseManifest } from "../../constructs/s3-release";
import { SigningKeys } from "../../provider/signing-keys";
import { SystemExtension } from "../../provider/system-extension";
import { sha256File } from "../../provider/toolkit/files";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/temp";
import { Recorder, TYPES, createdResource, errorOf, installMocks, promiseOf, realSigningKeys } from "./harness";

const ISO_SHA = "a".repeat(64);
const ISO_TYPE = "application/x-iso9660-image";

describe("releaseManifest", () => {
    it("is canonical JSON: sorted keys, artifacts sorted by name, absent fields left out", () => {
        const text = releaseManifest({
            version: "v1.0.0",
            artifacts: [
                { name: "kairos.iso", key: "releases/v1.0.0/kairos.iso", sha256: ISO_SHA, contentType: ISO_TYPE, size: 10, inputHash: undefined },
                { name: "k3s.sysext.raw", key: "releases/v1.0.0/k3s.sysext.raw", sha256: "b".repeat(64), contentType: "application/octet-stream", inputHash: "c".repeat(64) },
            ],
            certificateFingerprints: { db: "d".repeat(64), PK: "e".repeat(64) },
            inputHashes: { osImage: "sha256:f" },
        });
        assert.strictEqual(
            text,
            '{"artifacts":[' +
                `{"contentType":"application/octet-stream","inputHash":"${"c".repeat(64)}","key":"releases/v1.0.0/k3s.sysext.raw","name":"k3s.sysext.raw","sha256":"${"b".repeat(64)}"},` +
                `{"contentType":"${ISO_TYPE}","key":"releases/v1.0.0/kairos.iso","name":"kairos.iso","sha256":"${ISO_SHA}","size":10}` +
                `],"certificateFingerprints":{"PK":"${"e".repeat(64)}","db":"${"d".repeat(64)}"},"inputHashes":{"osImage":"sha256:f"},"manifestVersion":1,"version":"v1.0.0"}`,
        );
    });

    it("gives the same bytes whatever order the inputs come in", () => {
        const a = { name: "a.raw", key: "r/a.raw", sha256: "1".repeat(64), contentType: "application/octet-stream" };
        const b = { name: "b.iso", key: "r/b.iso", sha256: "2".repeat(64), contentType: ISO_TYPE };
        assert.strictEqual(
            releaseManifest({ version: "1", artifacts: [a, b], inputHashes: { x: "1", y: "2" } }),
            releaseManifest({ version: "1", artifacts: [b, a], inputHashes: { y: "2", x: "1" } }),
        );
    });

    it("fails on a digest that is not 64 lowercase hex digits, naming each", () => {
        assert.throws(
            () => releaseManifest({
                version: "1",
                artifacts: [{ name: "a.raw", key: "k", sha256: "ABC", contentType: "x" }],
                certificateFingerprints: { db: "zz" },
            }),
            /release 1: sha256 values must be 64 lowercase hex digits; bad: a.raw \("ABC"\), certificate db \("zz"\)/,
        );
    });

    it("contentTypeFor maps the artifact kinds", () => {
        assert.strictEqual(contentTypeFor("kairos.iso"), ISO_TYPE);
        assert.strictEqual(contentTypeFor("k3s.sysext.raw"), "application/octet-stream");
        assert.strictEqual(contentTypeFor("norole.efi"), "application/efi");
        assert.strictEqual(contentTypeFor("db.pem"), "application/x-pem-file");
        assert.strictEqual(contentTypeFor("db.auth"), "application/octet-stream");
        assert.strictEqual(contentTypeFor("manifest.json"), "application/json");
    });
});

/** A certificate's SHA-256 fingerprint as openssl computes it (lowercase hex, no colons). */
async function opensslFingerprint(pem: string): Promise<string> {
    const out = (await run(["openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"], { env: { OPENSSL_CONF: "/dev/null" } })).stdout;
    return out.trim().replace(/^.*=/, "").replace(/:/g, "").toLowerCase();
}

describe("S3Release", () => {
    let keys: SigningKeys;

    before(async () => {
        await installMocks();
        keys = realSigningKeys("relkeys");
        await promiseOf(keys.keyDir);
    });

    it("creates a bucket and uploads each artifact and the manifest under releases/<version>/", async () => {
        // A real extension from a payload folder, built by the SystemExtension handler.
        const work = tempDir("mock-rel");
        const src = path.join(work, "k3s-src");
        fs.mkdirSync(path.join(src, "usr/local/bin"), { recursive: true });
        fs.writeFileSync(path.join(src, "usr/local/bin/k3s"), "#!/bin/sh\necho k3s\n", { mode: 0o755 });
        const rec = new Recorder();
        const k3s = new SystemExtension("relk3s", { name: "k3s", outputDir: path.join(work, "ext"), source: { dir: src } });
        const release = new S3Release("rel", {
            version: "v1.0.0",
            artifacts: [
                { name: "kairos.iso", path: "/srv/build/kairos.iso", sha256: ISO_SHA, size: 734003200 },
                extensionArtifact("k3s.sysext.raw", k3s),
            ],
            signingKeys: keys,
            inputHashes: { osImage: "sha256:" + "9".repeat(64) },
        }, rec.opts());
        await rec.settle();

        assert.strictEqual(rec.get("rel").type, "kairos:index:S3Release");
        assert.deepStrictEqual(rec.children(release), [
            [TYPES.bucket, "rel-bucket"],
            [TYPES.bucketObject, "rel-artifact-kairos.iso"],
            [TYPES.bucketObject, "rel-artifact-k3s.sysext.raw"],
            [TYPES.bucketObject, "rel-manifest"],
        ]);
        for (const [, child] of rec.children(release)) assert.strictEqual(rec.get(child).opts.parent, release, child);
        assert.deepStrictEqual(rec.dependsOn("rel-manifest"), [release.objects["kairos.iso"], release.objects["k3s.sysext.raw"]]);
        assert.strictEqual(createdResource("rel-bucket").inputs.forceDestroy, false);

        // The bucket's name is the mocked AWS's answer; every object goes into it.
        const bucket: string = createdResource("rel-bucket").state.bucket;
        assert.strictEqual(await promiseOf(release.bucketName), bucket);
        const iso = createdResource("rel-artifact-kairos.iso").inputs;
        assert.strictEqual(iso.bucket, bucket);
        assert.strictEqual(iso.key, "releases/v1.0.0/kairos.iso");
        assert.strictEqual(iso.contentType, ISO_TYPE);
        assert.strictEqual(await iso.source.path, "/srv/build/kairos.iso");
        assert.strictEqual(iso.sourceHash, ISO_SHA);
        assert.deepStrictEqual(iso.metadata, { sha256: ISO_SHA });

        // The extension object uploads the file the handler built, keyed by that file's digest.
        const extFile = path.join(work, "ext", "k3s.sysext.raw");
        const extSha = await sha256File(extFile);
        const ext = createdResource("rel-artifact-k3s.sysext.raw").inputs;
        assert.strictEqual(ext.bucket, bucket);
        assert.strictEqual(ext.key, "releases/v1.0.0/k3s.sysext.raw");
        assert.strictEqual(ext.contentType, "application/octet-stream");
        assert.strictEqual(await ext.source.path, extFile);
        assert.strictEqual(ext.sourceHash, extSha);
        assert.deepStrictEqual(ext.metadata, { sha256: extSha });

        const extInputHash = await promiseOf(k3s.inputHash);
        assert.match(extInputHash, /^[0-9a-f]{64}$/);
        const keyDir = await promiseOf(keys.keyDir);
        const manifestObject = createdResource("rel-manifest").inputs;
        assert.strictEqual(manifestObject.bucket, bucket);
        assert.strictEqual(manifestObject.key, "releases/v1.0.0/manifest.json");
        assert.strictEqual(manifestObject.contentType, "application/json");
        assert.strictEqual(manifestObject.content, await promiseOf(release.manifest));
        assert.deepStrictEqual(JSON.parse(manifestObject.content), {
            manifestVersion: 1,
            version: "v1.0.0",
            artifacts: [
                {
                    name: "k3s.sysext.raw", key: "releases/v1.0.0/k3s.sysext.raw", sha256: extSha,
                    contentType: "application/octet-stream", size: fs.statSync(extFile).size, inputHash: extInputHash,
                },
                { name: "kairos.iso", key: "releases/v1.0.0/kairos.iso", sha256: ISO_SHA, contentType: ISO_TYPE, size: 734003200 },
            ],
            // The fingerprints of the certificates in the key folder, as openssl reads them.
            certificateFingerprints: {
                PK: await opensslFingerprint(path.join(keyDir, "PK.pem")),
                KEK: await opensslFingerprint(path.join(keyDir, "KEK.pem")),
                db: await opensslFingerprint(path.join(keyDir, "db.pem")),
            },
            inputHashes: { osImage: "sha256:" + "9".repeat(64) },
        });
        assert.ok(manifestObject.content.startsWith('{"artifacts":[{"contentType":'), "canonical: keys sorted");

        assert.strictEqual(release.manifestKey, "releases/v1.0.0/manifest.json");
        assert.deepStrictEqual(release.objectKeys, { "kairos.iso": "releases/v1.0.0/kairos.iso", "k3s.sysext.raw": "releases/v1.0.0/k3s.sysext.raw" });
    });

    it("uploads into a given bucket under a given prefix, creating no bucket", async () => {
        const rec = new Recorder();
        const release = new S3Release("given", {
            version: "2026.08",
            bucket: "acme-releases",
            keyPrefix: "kairos/edge/2026.08/",
            artifacts: [{ name: "edge.iso", path: "/srv/edge.iso", sha256: ISO_SHA, contentType: "application/octet-stream" }],
            certificateFingerprints: { db: "d".repeat(64) },
        }, rec.opts());
        await rec.settle();
        assert.strictEqual(release.createdBucket, undefined);
        assert.deepStrictEqual(rec.children(release), [[TYPES.bucketObject, "given-artifact-edge.iso"], [TYPES.bucketObject, "given-manifest"]]);
        const obj = createdResource("given-artifact-edge.iso").inputs;
        assert.strictEqual(obj.bucket, "acme-releases");
        assert.strictEqual(obj.key, "kairos/edge/2026.08/edge.iso");
        assert.strictEqual(obj.contentType, "application/octet-stream", "an explicit content type wins");
        const manifest = createdResource("given-manifest").inputs;
        assert.strictEqual(manifest.key, "kairos/edge/2026.08/manifest.json");
        assert.deepStrictEqual(JSON.parse(manifest.content).certificateFingerprints, { db: "d".repeat(64) });
    });

    it("fails with every problem at once, each with its property path", () => {
        const err = errorOf(() => new S3Release("bad", {
            version: "v1/evil",
            bucket: "b",
            forceDestroy: true,
            keyPrefix: "/abs",
            artifacts: [
                { name: "a.iso", path: "/a.iso", sha256: "XYZ" },
                { name: "a.iso", path: "", sha256: ISO_SHA },
                { name: "manifest.json", path: "/m", sha256: ISO_SHA },
            ],
            signingKeys: keys,
            certificateFingerprints: { db: "not-hex" },
        }));
        assert.ok(pulumi.InputPropertiesError.isInstance(err));
        assert.deepStrictEqual(err.errors!.map((e) => e.propertyPath), [
            "version", "artifacts[0].sha256", "artifacts[1].name", "artifacts[1].path", "artifacts[2].name",
            "keyPrefix", "forceDestroy", "certificateFingerprints.db", "certificateFingerprints.db",
        ]);
        assert.match(err.message, /S3Release "bad" has 9 problems/);
        assert.throws(() => new S3Release("empty", { version: "1", artifacts: [] }), /artifacts: must list at least one file to publish/);
    });
});

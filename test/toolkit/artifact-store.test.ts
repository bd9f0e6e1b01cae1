// The artifact store's S3 side against a real S3 server (SeaweedFS on 127.0.0.1): content-addressed
// blobs, verified downloads, manifests that the first writer owns, concurrent writers, clear errors.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { createHash } from "crypto";
import { ArtifactStore } from "../../provider/store/artifact-store";
import { MAX_MANIFEST_BYTES, OUTPUT_ROOT, StoreIntegrityError, relocate } from "../../provider/store/manifest";
import { sha256File } from "../../provider/toolkit/files";
import { ToolNotFoundError } from "../../provider/toolkit/run";
import { ArtifactLayout, fetchFromStore } from "../../provider/store/stored-artifacts";
import { S3Server, startS3Server } from "../helpers/s3-server";
import { envelopePayload, handMadeManifest, s3Objects } from "../helpers/s3-objects";
import { tempDir } from "../helpers/temp";
import { makeCertificate } from "../helpers/pki";

describe("artifact store on a real S3 server", function () {
    this.timeout(120000);
    let s3: S3Server;
    let objects: ReturnType<typeof s3Objects>;
    let work: string;
    let store: ArtifactStore;
    let savedEnv: NodeJS.ProcessEnv;
    let publisher: { key: string; certificate: string };
    let foreign: { key: string; certificate: string };

    const fileWith = (name: string, bytes: Buffer | string) => {
        const f = path.join(work, name);
        fs.writeFileSync(f, bytes);
        return f;
    };

    before(async () => {
        s3 = await startS3Server({ buckets: ["unit"] });
        objects = s3Objects(s3);
        savedEnv = { ...process.env };
        Object.assign(process.env, s3.env()); // the store takes credentials from the SDK's usual chain
        work = tempDir("artifact-store");
        publisher = await makeCertificate(work, "publisher");
        foreign = await makeCertificate(work, "foreign");
        store = new ArtifactStore({ bucket: "unit", endpoint: s3.endpoint, publisher });
    });
    after(async () => {
        process.env = savedEnv;
        await s3?.stop();
    });

    it("stores a file under its sha256 once and gives back exactly its bytes", async () => {
        const f = fileWith("a.bin", Buffer.alloc(3 << 20, 7));
        const sha = await sha256File(f);
        assert.strictEqual(await store.putBlob(f, sha, 3 << 20), "uploaded");
        assert.strictEqual(await store.putBlob(f, sha, 3 << 20), "present");
        const back = path.join(work, "a.back");
        await store.getBlob(sha, 3 << 20, back);
        assert.strictEqual(await sha256File(back), sha);
        assert.strictEqual(store.blobUri(sha), `s3://unit/kairos/sha256/${sha}`);
    });

    it("refuses a swapped, a flipped and a truncated object, and leaves no file behind", async () => {
        const f = fileWith("b.bin", "the real bytes\n");
        const sha = await sha256File(f);
        await store.putBlob(f, sha, 15);
        for (const bad of [Buffer.from("other bytes!!!\n"), Buffer.from("the real bytes\n").map((b, i) => (i === 3 ? b ^ 1 : b)), Buffer.from("the real")]) {
            await objects.put("unit", store.blobKey(sha), Buffer.from(bad));
            const dest = path.join(work, "b.back");
            const err = await store.getBlob(sha, 15, dest).catch((e) => e);
            assert.ok(err instanceof StoreIntegrityError, String(err));
            // A wrong length is refused from Content-Length, before a byte is written; same-length damage by the hash.
            const what = bad.length === 15 ? `it holds 15 bytes with sha256 ${createHash("sha256").update(bad).digest("hex")}` : `the server holds ${bad.length} bytes`;
            assert.match(err.message, new RegExp(`s3://unit/kairos/sha256/${sha} is damaged: ${what}, but its name and manifest promise 15 bytes`));
            assert.ok(!fs.existsSync(dest));
        }
    });

    it("concurrent writers of one input hash end with one blob and one manifest: the first one's", async () => {
        const f = fileWith("c.bin", Buffer.alloc(1 << 20, 3));
        const sha = await sha256File(f);
        const runners = [0, 1, 2, 3].map(() => new ArtifactStore({ bucket: "unit", endpoint: s3.endpoint, publisher }));
        await Promise.all(runners.map((r) => r.putBlob(f, sha, 1 << 20)));
        const results = await Promise.all(runners.map((r, i) => r.putManifest({ resource: "kairos:index:SystemExtension", inputHash: "h1", entries: [{ path: "c.bin", sha256: sha, size: 1 << 20, mode: 0o644 }], outputs: { writer: i } })));
        assert.strictEqual(results.filter((r) => r === "written").length, 1, `one writer wins: ${results}`);
        assert.deepStrictEqual(await objects.keys("unit", "kairos/sha256/" + sha), [`kairos/sha256/${sha}`]);
        assert.deepStrictEqual(await objects.keys("unit", "kairos/manifests/"), ["kairos/manifests/SystemExtension/h1.json"]);
        const m = await store.getManifest("kairos:index:SystemExtension", "h1");
        assert.strictEqual(m!.outputs.writer, results.indexOf("written"));
        assert.strictEqual(await store.getManifest("kairos:index:SystemExtension", "absent"), undefined);
    });

    it("junk or a foreign-signed manifest planted first at a manifest key does not block the honest one", async () => {
        const resource = "kairos:index:SystemExtension";
        for (const [hash, planted] of [
            ["q1", Buffer.from("{not a manifest")],
            ["q2", handMadeManifest({ format: "pulumi-kairos-artifacts/1", resource, inputHash: "q2", entries: [], outputs: { forged: true } }, foreign)],
            ["q3", handMadeManifest({ format: "pulumi-kairos-artifacts/1", resource, inputHash: "q3", entries: [], outputs: { forged: true } })],
        ] as const) {
            await objects.put("unit", store.manifestKey(resource, hash), planted);
            assert.strictEqual(await store.putManifest({ resource, inputHash: hash, entries: [], outputs: { honest: hash } }), "replaced");
            assert.deepStrictEqual((await store.getManifest(resource, hash))!.outputs, { honest: hash });
        }
        // A valid manifest already there is kept: the first honest build wins.
        assert.strictEqual(await store.putManifest({ resource, inputHash: "q1", entries: [], outputs: { later: true } }), "present");
        assert.deepStrictEqual((await store.getManifest(resource, "q1"))!.outputs, { honest: "q1" });
    });

    it("fetching: only a failed check of the fetched bytes is a store refusal; a full disk or a missing tool stays a local error", async () => {
        const f = fileWith("fetch.txt", "stored bytes\n");
        const sha = await sha256File(f);
        await store.putBlob(f, sha, 13);
        const resource = "kairos:index:PromotedArtifact";
        await store.putManifest({ resource, inputHash: "f1", entries: [{ path: "fetch.txt", sha256: sha, size: 13, mode: 0o644 }], outputs: {} });
        const layoutWith = (fail: () => never): ArtifactLayout => ({
            root: (p) => p.outputDir, placement: () => "files", localFiles: () => [], label: () => "fetch test",
            expectedFiles: () => ["fetch.txt"],
            accept: async () => fail(),
        });
        const inputs = () => ({ inputHash: "f1", outputDir: tempDir("fetch-root") });
        const refused = await fetchFromStore(store, resource, inputs(), layoutWith(() => {
            throw new Error("fetch.txt is not signed by the db certificate");
        })).catch((e) => e);
        assert.ok(refused instanceof StoreIntegrityError, String(refused));
        assert.match(refused.message, /do not pass the checks a build makes: fetch\.txt is not signed by the db certificate/);
        for (const local of [Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }), Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" }), new ToolNotFoundError("xorriso")]) {
            const err = await fetchFromStore(store, resource, inputs(), layoutWith(() => {
                throw local;
            })).catch((e) => e);
            assert.strictEqual(err, local, `${local.message} is passed on as it is, not as a damaged store`);
            assert.ok(!(err instanceof StoreIntegrityError));
        }
    });

    it("a manifest that is not JSON or describes something else is refused", async () => {
        await objects.put("unit", store.manifestKey("kairos:index:BootMedia", "h2"), Buffer.from("{not json"));
        await assert.rejects(store.getManifest("kairos:index:BootMedia", "h2"), (e: Error) => e instanceof StoreIntegrityError && /manifests\/BootMedia\/h2\.json is not a signed manifest \(not JSON\); it was not used/.test(e.message));
        // Signed by the publisher, but for another input hash: the signature binds resource and input hash.
        await objects.put("unit", store.manifestKey("kairos:index:BootMedia", "h3"), handMadeManifest({ format: "pulumi-kairos-artifacts/1", resource: "kairos:index:BootMedia", inputHash: "h4", entries: [], outputs: {} }, publisher));
        await assert.rejects(store.getManifest("kairos:index:BootMedia", "h3"), (e: Error) => e instanceof StoreIntegrityError && /does not describe kairos:index:BootMedia for input hash h3/.test(e.message));
    });

    it("reads only manifests signed by the publisher key: unsigned, foreign-signed and tampered ones are refused", async () => {
        const m = { format: "pulumi-kairos-artifacts/1", resource: "kairos:index:SystemExtension", inputHash: "s1", entries: [], outputs: { honest: true } };
        const key = store.manifestKey("kairos:index:SystemExtension", "s1");
        const uri = store.manifestUri("kairos:index:SystemExtension", "s1");
        await objects.put("unit", key, handMadeManifest(m));
        await assert.rejects(store.getManifest(m.resource, "s1"), (e: Error) => e instanceof StoreIntegrityError && e.message.startsWith(`${uri} is not a signed manifest`) && /unsigned manifests are never read/.test(e.message));
        await objects.put("unit", key, handMadeManifest(m, foreign));
        await assert.rejects(store.getManifest(m.resource, "s1"), (e: Error) => e instanceof StoreIntegrityError && e.message.startsWith(`${uri} is signed by another certificate`));
        const tampered = JSON.parse(handMadeManifest(m, publisher).toString());
        tampered.payload = Buffer.from(JSON.stringify({ ...m, outputs: { honest: false } })).toString("base64");
        await objects.put("unit", key, Buffer.from(JSON.stringify(tampered)));
        await assert.rejects(store.getManifest(m.resource, "s1"), (e: Error) => e instanceof StoreIntegrityError && e.message.startsWith(`${uri} has a signature that does not verify`));
        await objects.put("unit", key, handMadeManifest(m, publisher));
        assert.deepStrictEqual((await store.getManifest(m.resource, "s1"))!.outputs, { honest: true });
        // What putManifest writes is such an envelope, and a runner without the key cannot write one.
        await store.putManifest({ resource: m.resource, inputHash: "s2", entries: [], outputs: { by: "store" } });
        assert.deepStrictEqual(envelopePayload(await objects.get("unit", store.manifestKey(m.resource, "s2"))).outputs, { by: "store" });
        const fetchOnly = new ArtifactStore({ bucket: "unit", endpoint: s3.endpoint, publisher: { certificate: publisher.certificate } });
        assert.strictEqual(fetchOnly.canPublish, false);
        await assert.rejects(fetchOnly.putManifest({ resource: m.resource, inputHash: "s3", entries: [], outputs: {} }), /publisher has no key; this runner only fetches/);
    });

    it("refuses a manifest over the size cap before parsing it, and a blob whose length is not the manifest's size", async () => {
        await objects.put("unit", store.manifestKey("kairos:index:BootMedia", "big"), Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20));
        await assert.rejects(store.getManifest("kairos:index:BootMedia", "big"), (e: Error) => e instanceof StoreIntegrityError && new RegExp(`is ${MAX_MANIFEST_BYTES + 1} bytes, over the ${MAX_MANIFEST_BYTES}-byte manifest limit`).test(e.message));
        const f = fileWith("g.bin", Buffer.alloc(4096, 1));
        const sha = await sha256File(f);
        await store.putBlob(f, sha, 4096);
        const dest = path.join(work, "g.back");
        await assert.rejects(store.getBlob(sha, 100, dest), (e: Error) => e instanceof StoreIntegrityError && /is damaged: the server holds 4096 bytes, but its name and manifest promise 100 bytes/.test(e.message));
        assert.ok(!fs.existsSync(dest), "nothing written");
    });

    it("a blob downloaded by its digest alone is sized under a hard cap, not by the server's word (promotions, key files)", async () => {
        const f = fileWith("capped.bin", Buffer.alloc(8192, 5));
        const sha = await sha256File(f);
        await store.putBlob(f, sha, 8192);
        assert.strictEqual(await store.blobSizeAtMost(sha, 8192, "a test file"), 8192);
        await assert.rejects(store.blobSizeAtMost(sha, 8191, "a test file"), (e: Error) => e instanceof StoreIntegrityError && e.message === `${store.blobUri(sha)} is 8192 bytes, over the 8191-byte limit for a test file; it was not used`);
        assert.strictEqual(await store.blobSizeAtMost("0".repeat(64), 8192, "a test file"), undefined);
    });

    it("wrong credentials and a missing bucket are errors that name the store and the fix", async () => {
        const f = fileWith("d.bin", "d");
        const sha = await sha256File(f);
        process.env.AWS_SECRET_ACCESS_KEY = "wrong-secret";
        try {
            const err = await new ArtifactStore({ bucket: "unit", endpoint: s3.endpoint, prefix: "other" }).putBlob(f, sha, 1).catch((e) => e);
            assert.match(String(err.message), new RegExp(`artifact store s3://unit/other/ at ${s3.endpoint.replace(/[.]/g, "\\.")}: cannot .*AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY`));
        } finally {
            Object.assign(process.env, s3.env());
        }
        const err = await new ArtifactStore({ bucket: "no-such-bucket", endpoint: s3.endpoint }).putBlob(f, sha, 1).catch((e) => e);
        assert.match(String(err.message), /no-such-bucket.*create the bucket first/);
    });

    it("server-side copy between buckets keeps the bytes", async () => {
        await objects.createBucket("unit-prod");
        const f = fileWith("e.bin", Buffer.alloc(2 << 20, 9));
        const sha = await sha256File(f);
        await store.putBlob(f, sha, 2 << 20);
        const prod = new ArtifactStore({ bucket: "unit-prod", endpoint: s3.endpoint, publisher });
        assert.ok(prod.sameServerAs(store));
        assert.strictEqual(await prod.copyBlobFrom(store, sha, 2 << 20), "copied");
        assert.strictEqual(await prod.copyBlobFrom(store, sha, 2 << 20), "present");
        await prod.getBlob(sha, 2 << 20, path.join(work, "e.back"));
    });

    it("relocate moves every path under one root to another, and nothing else", () => {
        const outs = { path: "out/x.raw", ukis: [{ path: "out/u/a.efi", note: "outside" }], other: "outer/x", same: "out", n: 3 };
        const stored = relocate(outs, "out", OUTPUT_ROOT);
        assert.deepStrictEqual(stored, { path: `${OUTPUT_ROOT}/x.raw`, ukis: [{ path: `${OUTPUT_ROOT}/u/a.efi`, note: "outside" }], other: "outer/x", same: OUTPUT_ROOT, n: 3 });
        assert.deepStrictEqual(relocate(stored, OUTPUT_ROOT, "/runner/b/out"), { ...outs, path: "/runner/b/out/x.raw", ukis: [{ path: "/runner/b/out/u/a.efi", note: "outside" }], same: "/runner/b/out" });
        // path.posix.join would resolve these out of the root: refused instead.
        for (const climbing of [`${OUTPUT_ROOT}/../../project`, `${OUTPUT_ROOT}/a/../../x`, `${OUTPUT_ROOT}//etc/passwd`]) {
            assert.throws(() => relocate({ path: climbing }, OUTPUT_ROOT, "/runner/b/out"), (e: Error) => e instanceof StoreIntegrityError && /climbs out of/.test(e.message), climbing);
        }
    });
});

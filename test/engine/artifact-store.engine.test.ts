// Artifacts that outlive the build machine, through the real engine, a real S3 server (SeaweedFS on
// 127.0.0.1, started here) and Pulumi's own S3 state backend on that server: two runners with their
// own folders share one stack. Runner B starts with an empty disk and builds nothing; a change made on
// B is built once and A fetches it. Then staging -> prod promotion between two buckets.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { HeadObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { SigningKeys } from "../../provider/signing-keys";
import { SystemExtension } from "../../provider/system-extension";
import { KairosUkiImage } from "../../provider/kairos-uki-image";
import { BootMedia } from "../../provider/boot-media";
import { artifactManifest, EnvironmentPromotion } from "../../constructs/promotion";
import { sha256File } from "../../provider/toolkit/files";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { makeGenkeyFolder } from "../helpers/genkey";
import { buildTestOsRootfs, packTestOsImage } from "../helpers/test-os";
import { S3Server, startS3Server } from "../helpers/s3-server";
import { s3Objects } from "../helpers/s3-objects";
import { veritySignatureVerifies } from "../helpers/ddi-inspect";
import { makeCertificate } from "../helpers/pki";

const STATE_BUCKET = "kairos-state";
const ARTIFACT_BUCKET = "kairos-artifacts";
const STAGING_BUCKET = "kairos-staging";
const PROD_BUCKET = "kairos-prod";
const ARTIFACTS = ["keys/db.auth", "keys/db.pem", "extensions/alpha.sysext.raw", "extensions/beta.sysext.raw", "uki/norole.efi", "uki/BOOTX64.EFI", "media/kairos.iso"];

describe("artifact store and S3 state: two runners share one build graph (SeaweedFS)", function () {
    this.timeout(900000);
    let s3: S3Server;
    let client: S3Client;
    let objects: ReturnType<typeof s3Objects>;
    let shared: string;
    const runners: Record<"A" | "B", { dir: string; stack?: EngineStack }> = { A: { dir: "" }, B: { dir: "" } };

    const writePayload = (runner: string, name: string, text: string) => {
        const dir = path.join(runner, "src", name, "usr", "bin");
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, name), text, { mode: 0o755 });
    };
    // The same program on every runner. Paths are relative: each runner's project folder is its own
    // disk. The keys are imported from secrets/keys, which a CI system hands every runner as a secret;
    // the store only ever holds their certificates, .esl and .auth files.
    const pipeline = async () => {
        const keys = new SigningKeys("keys", { name: "ci", outputDir: "keys", import: { dir: "secrets/keys" } });
        const exts = ["alpha", "beta"].map((n) => new SystemExtension(n, { name: n, outputDir: "extensions", source: { dir: `src/${n}` }, signingKeys: keys }));
        const uki = new KairosUkiImage("os", { outputDir: "uki", source: { ociLayout: "test-os.oci" }, signingKeys: keys });
        const iso = new BootMedia("iso", { name: "kairos", outputDir: "media", ukiImage: uki, signingKeys: keys, extensions: exts, secureBootEnroll: "force" });
        return { iso: iso.path, isoStore: iso.store };
    };
    const openRunner = async (name: "A" | "B") => {
        const stack = await engineStack(pipeline, {
            backendDir: tempDir(`runner-${name}-home`), projectName: "kairos-ci", stackName: "main",
            workDir: runners[name].dir, backendUrl: s3.pulumiBackendUrl(STATE_BUCKET), env: s3.env(),
        });
        // Provider-wide store: one stack config value, no per-resource input.
        await stack.stack.setConfig("kairos:artifactStore.bucket", { value: ARTIFACT_BUCKET }, true);
        await stack.stack.setConfig("kairos:artifactStore.endpoint", { value: s3.endpoint }, true);
        // Manifests are signed with the project's db key, which every runner has (a CI secret).
        await stack.stack.setConfig("kairos:artifactStore.publisher.certificate", { value: "secrets/keys/db.pem" }, true);
        await stack.stack.setConfig("kairos:artifactStore.publisher.key", { value: "secrets/keys/db.key" }, true);
        return stack;
    };
    const bytesOf = async (runner: string) => Object.fromEntries(await Promise.all(ARTIFACTS.map(async (f) => [f, await sha256File(path.join(runner, f))])));
    const actions = async (stack: EngineStack) => {
        const out: Record<string, string> = {};
        for (const n of ["keys", "alpha", "beta", "os", "iso"]) out[n] = (await stack.resourceOutputs(n)).lastBuild.action;
        return out;
    };
    const stepsOf = async (stack: EngineStack, name: string) => ((await stack.resourceOutputs(name)).lastBuild.steps as { step: string }[]).map((s) => s.step);
    const keysIn = async (bucket: string, prefix: string) =>
        ((await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!).sort();

    before(async function () {
        this.timeout(600000);
        s3 = await startS3Server({ buckets: [STATE_BUCKET, ARTIFACT_BUCKET, STAGING_BUCKET, PROD_BUCKET] });
        client = s3.client();
        objects = s3Objects(s3);
        shared = tempDir("store-shared");
        const rootfs = path.join(shared, "test-os");
        await buildTestOsRootfs(rootfs);
        await packTestOsImage(rootfs, path.join(shared, "test-os.oci"));
        await makeGenkeyFolder(path.join(shared, "secrets", "keys"), "ci", { microsoftLists: false });
        for (const name of ["A", "B"] as const) {
            const dir = tempDir(`runner-${name}`);
            fs.cpSync(path.join(shared, "test-os.oci"), path.join(dir, "test-os.oci"), { recursive: true });
            fs.cpSync(path.join(shared, "secrets"), path.join(dir, "secrets"), { recursive: true });
            writePayload(dir, "alpha", "alpha 1\n");
            writePayload(dir, "beta", "beta 1\n");
            runners[name].dir = dir;
        }
    });
    after(async () => {
        for (const r of Object.values(runners)) await r.stack?.dispose();
        await s3?.stop();
    });

    it("runner A builds everything and publishes it: state and artifacts in S3, no private key uploaded", async () => {
        runners.A.stack = await openRunner("A");
        const t = Date.now();
        const up = await runners.A.stack.up();
        console.log(`      runner A: build and publish, ${((Date.now() - t) / 1000).toFixed(1)} s`);
        assert.strictEqual(up.summary.resourceChanges?.create, 6);
        assert.deepStrictEqual(await actions(runners.A.stack), { keys: "created", alpha: "created", beta: "created", os: "created", iso: "created" });
        assert.ok((await stepsOf(runners.A.stack, "os")).includes(`upload to s3://${ARTIFACT_BUCKET}/kairos/ at ${s3.endpoint}`));
        // The state lives in the bucket (Pulumi's S3 backend), not on runner A.
        assert.ok((await keysIn(STATE_BUCKET, ".pulumi/stacks/")).some((k) => k.endsWith("main.json")), "stack state in S3");
        const manifests = await keysIn(ARTIFACT_BUCKET, "kairos/manifests/");
        assert.deepStrictEqual(manifests.map((k) => k.split("/")[2]).sort(), ["BootMedia", "KairosUkiImage", "SigningKeys", "SystemExtension", "SystemExtension"]);
        // Every stored object is named by its content, and the key folder's private keys are not among them.
        const a = runners.A.dir;
        const blobs = new Set(await keysIn(ARTIFACT_BUCKET, "kairos/sha256/"));
        for (const f of ARTIFACTS) assert.ok(blobs.has(`kairos/sha256/${await sha256File(path.join(a, f))}`), `${f} stored`);
        for (const f of ["PK.key", "KEK.key", "db.key", "tpm2-pcr-private.pem"]) {
            assert.ok(!blobs.has(`kairos/sha256/${await sha256File(path.join(a, "keys", f))}`), `${f} never uploaded`);
        }
        const isoStore = up.outputs.isoStore.value;
        assert.strictEqual(isoStore.objects[path.join("media", "kairos.iso")], `s3://${ARTIFACT_BUCKET}/kairos/sha256/${await sha256File(path.join(a, "media", "kairos.iso"))}`);
    });

    it("runner B, with an empty disk, builds nothing: every artifact is fetched, verified and byte-identical", async () => {
        runners.B.stack = await openRunner("B");
        const t = Date.now();
        const up = await runners.B.stack.up();
        console.log(`      runner B: fetch instead of build, ${((Date.now() - t) / 1000).toFixed(1)} s`);
        assert.deepStrictEqual(up.summary.resourceChanges, { update: 5, same: 1 }); // the stack itself is the "same" one
        assert.deepStrictEqual(await actions(runners.B.stack), { keys: "fetched", alpha: "fetched", beta: "fetched", os: "fetched", iso: "fetched" });
        for (const n of ["alpha", "beta", "os", "iso"]) assert.deepStrictEqual(await stepsOf(runners.B.stack, n), ["fetch from the store"], n);
        assert.deepStrictEqual(await stepsOf(runners.B.stack, "keys"), ["fetch certificates and signature lists"]);
        assert.deepStrictEqual(await bytesOf(runners.B.dir), await bytesOf(runners.A.dir));
        assert.deepStrictEqual((await runners.B.stack.up()).summary.resourceChanges, { same: 6 });
    });

    it("a change on B builds only that extension and the media; A, after a refresh, fetches B's new artifacts", async () => {
        const before = await bytesOf(runners.B.dir);
        writePayload(runners.B.dir, "beta", "beta 2\n");
        const up = await runners.B.stack!.up();
        assert.deepStrictEqual(up.summary.resourceChanges, { update: 2, same: 4 });
        const b = await actions(runners.B.stack!);
        assert.strictEqual(b.beta, "updated");
        assert.strictEqual(b.iso, "updated");
        const after = await bytesOf(runners.B.dir);
        for (const f of ARTIFACTS) {
            if (f === "extensions/beta.sysext.raw" || f === "media/kairos.iso") assert.notStrictEqual(after[f], before[f], f);
            else assert.strictEqual(after[f], before[f], f);
        }
        // A pulls the same change (as a git pull would), refreshes against the shared state, and fetches.
        writePayload(runners.A.dir, "beta", "beta 2\n");
        await runners.A.stack!.refresh();
        const upA = await runners.A.stack!.up();
        assert.deepStrictEqual(upA.summary.resourceChanges, { update: 2, same: 4 });
        const a = await actions(runners.A.stack!);
        assert.strictEqual(a.beta, "fetched");
        assert.strictEqual(a.iso, "fetched");
        assert.deepStrictEqual(await bytesOf(runners.A.dir), after);
    });

    it("a tampered object is refused with the object named, nothing local changes; onCorrupt: rebuild builds and replaces it", async () => {
        const a = runners.A.dir;
        const iso = path.join(a, "media", "kairos.iso");
        const sha = await sha256File(iso);
        const size = fs.statSync(iso).size;
        // Same size, one flipped byte: a HEAD cannot tell; only hashing the download can.
        const tampered = fs.readFileSync(iso);
        tampered[size >> 1] ^= 0xff;
        await objects.put(ARTIFACT_BUCKET, `kairos/sha256/${sha}`, tampered);
        fs.rmSync(iso); // this runner lost its copy: the next up must take it from the store
        const err = await runners.A.stack!.up().catch((e) => e);
        assert.ok(err instanceof Error, "the up fails");
        assert.match(String(err.message), new RegExp(`s3://${ARTIFACT_BUCKET}/kairos/sha256/${sha} is damaged`));
        assert.ok(!fs.existsSync(iso), "no unverified file was put in place");
        assert.ok(fs.readdirSync(path.join(a, "media")).every((n) => !n.startsWith(".")), "no staging debris");

        await runners.A.stack!.stack.setConfig("kairos:artifactStore.onCorrupt", { value: "rebuild" }, true);
        const up = await runners.A.stack!.up();
        assert.deepStrictEqual(up.summary.resourceChanges, { update: 1, same: 5 });
        assert.strictEqual((await runners.A.stack!.resourceOutputs("iso")).lastBuild.action, "updated");
        assert.strictEqual(await sha256File(iso), sha, "rebuilt byte-identical");
        assert.strictEqual(await objects.sha256(ARTIFACT_BUCKET, `kairos/sha256/${sha}`), sha, "the damaged object was replaced");
    });

    describe("promotion staging -> prod between two buckets", () => {
        let work: string;
        let staging: EngineStack;
        let prod: EngineStack;
        let resign = false;
        let asTestedManifest = "";
        let publisher: { key: string; certificate: string };
        const storeIn = (bucket: string) => ({ bucket, endpoint: s3.endpoint, publisher });

        before(async () => {
            work = tempDir("store-promotion");
            fs.mkdirSync(path.join(work, "publisher"));
            publisher = await makeCertificate(path.join(work, "publisher"), "release-publisher");
            writePayload(work, "tool", "tested in staging\n");
            const opts = (stackName: string) => ({ backendDir: tempDir(`promo-${stackName}-home`), projectName: "kairos-promo", stackName, workDir: work, backendUrl: s3.pulumiBackendUrl(STATE_BUCKET), env: s3.env() });
            staging = await engineStack(async () => {
                const keys = new SigningKeys("staging-keys", { name: "staging", outputDir: "staging/keys", artifactStore: storeIn(STAGING_BUCKET) });
                const ext = new SystemExtension("tool", { name: "tool", outputDir: "staging/extensions", source: { dir: "src/tool" }, signingKeys: keys, artifactStore: storeIn(STAGING_BUCKET) });
                return { artifacts: artifactManifest([ext]) };
            }, opts("staging"));
            prod = await engineStack(async () => {
                const prodKeys = new SigningKeys("prod-keys", { name: "production", outputDir: "prod/keys", artifactStore: storeIn(PROD_BUCKET) });
                const promotion = await EnvironmentPromotion.create("promote", {
                    from: new pulumi.StackReference("organization/kairos-promo/staging"),
                    outputDir: "prod/extensions",
                    resignWith: resign ? prodKeys : undefined,
                    fromStore: storeIn(STAGING_BUCKET),
                    artifactStore: storeIn(PROD_BUCKET),
                });
                const a = promotion.artifacts[0];
                return { promoted: pulumi.all([a.path, a.sha256, a.rootHash, a.changes, a.lastBuild, a.store]).apply(([p, sha256, rootHash, changes, lastBuild, store]) => ({ path: p, sha256, rootHash, changes, lastBuild, store })), prodDb: prodKeys.files.apply((f) => f.db.pem) };
            }, opts("prod"));
        });
        after(async () => {
            await prod?.dispose();
            await staging?.dispose();
        });

        it("copies the tested bytes from the staging bucket to the prod bucket on the server, never from staging's disk", async () => {
            const tested = (await staging.up()).outputs.artifacts.value[0];
            fs.rmSync(path.join(work, "staging"), { recursive: true }); // prod cannot read staging's disk
            const promoted = (await prod.up()).outputs.promoted.value;
            assert.strictEqual(promoted.sha256, tested.sha256);
            assert.strictEqual(await sha256File(path.join(work, promoted.path)), tested.sha256);
            assert.deepStrictEqual(promoted.lastBuild.steps.map((s: { step: string }) => s.step), [
                `fetch tested artifact from s3://${STAGING_BUCKET}/kairos/ at ${s3.endpoint}`,
                "copy",
                `copy s3://${STAGING_BUCKET}/kairos/ at ${s3.endpoint} -> s3://${PROD_BUCKET}/kairos/ at ${s3.endpoint} (server-side)`,
                `upload to s3://${PROD_BUCKET}/kairos/ at ${s3.endpoint}`,
            ]);
            assert.strictEqual(promoted.store.objects[promoted.path], `s3://${PROD_BUCKET}/kairos/sha256/${tested.sha256}`);
            asTestedManifest = promoted.store.manifest;
            assert.strictEqual(await objects.sha256(PROD_BUCKET, `kairos/sha256/${tested.sha256}`), tested.sha256);
        });

        it("re-signs with the prod keys: only the signature partition changes, and the prod bucket gets the re-signed image", async () => {
            resign = true;
            const tested = (await staging.stack.outputs()).artifacts.value[0];
            const p = await prod.up();
            const promoted = p.outputs.promoted.value;
            assert.notStrictEqual(promoted.sha256, tested.sha256);
            assert.deepStrictEqual(promoted.changes, ["signature partition (root-x86-64-verity-sig)"]);
            const check = await veritySignatureVerifies(path.join(work, promoted.path), path.join(work, p.outputs.prodDb.value), work);
            assert.ok(check.ok, "signed by the production db key");
            assert.strictEqual(await objects.sha256(PROD_BUCKET, `kairos/sha256/${promoted.sha256}`), promoted.sha256);
            await client.send(new HeadObjectCommand({ Bucket: PROD_BUCKET, Key: `kairos/sha256/${tested.sha256}` })); // the tested one stays
        });

        it("refuses a staging object that is not the tested bytes, and keeps what prod had", async () => {
            const tested = (await staging.stack.outputs()).artifacts.value[0];
            const promotedBefore = (await prod.stack.outputs()).promoted.value;
            const before = await sha256File(path.join(work, promotedBefore.path));
            await objects.put(STAGING_BUCKET, `kairos/sha256/${tested.sha256}`, Buffer.from("not the tested image"));
            // Back to the tested signature, which prod no longer holds: it must come from staging again.
            resign = false;
            await objects.delete(PROD_BUCKET, asTestedManifest.replace(`s3://${PROD_BUCKET}/`, ""));
            await objects.delete(PROD_BUCKET, `kairos/sha256/${tested.sha256}`);
            const err = await prod.up().catch((e) => e);
            assert.ok(err instanceof Error);
            assert.match(String(err.message), /is damaged/);
            assert.strictEqual(await sha256File(path.join(work, promotedBefore.path)), before);
        });
    });
});

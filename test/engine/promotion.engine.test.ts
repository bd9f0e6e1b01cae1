// Two stacks in one local backend: staging builds and records; prod promotes without building.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { SigningKeys } from "../../provider/signing-keys";
import { SystemExtension } from "../../provider/system-extension";
import { artifactManifest, EnvironmentPromotion } from "../../constructs/promotion";
import { sha256File } from "../../provider/toolkit/files";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { veritySignatureVerifies } from "../helpers/ddi-inspect";

describe("environment promotion through the Pulumi engine (staging -> prod)", function () {
    this.timeout(300000);
    let work: string;
    let backend: string;
    let staging: EngineStack;
    let prod: EngineStack;
    let resign = false;

    before(async () => {
        work = tempDir("promotion");
        backend = tempDir("promotion-backend");
        const src = path.join(work, "src", "usr", "bin");
        fs.mkdirSync(src, { recursive: true });
        fs.writeFileSync(path.join(src, "tool"), "tested in staging\n", { mode: 0o755 });
        staging = await engineStack(
            async () => {
                const keys = new SigningKeys("staging-keys", { name: "staging", outputDir: path.join(work, "staging", "keys") });
                const ext = new SystemExtension("tool", { name: "tool", outputDir: path.join(work, "staging", "extensions"), source: { dir: path.join(work, "src") }, signingKeys: keys });
                return { artifacts: artifactManifest([ext]) };
            },
            { backendDir: backend, projectName: "kairos-promo", stackName: "staging" },
        );
        prod = await engineStack(
            async () => {
                const prodKeys = new SigningKeys("prod-keys", { name: "production", outputDir: path.join(work, "prod", "keys") });
                const promotion = await EnvironmentPromotion.create("promote", {
                    from: new pulumi.StackReference("organization/kairos-promo/staging"),
                    outputDir: path.join(work, "prod", "extensions"),
                    resignWith: resign ? prodKeys : undefined,
                });
                return { promoted: promotion.artifacts.map((a) => ({ path: a.path, sha256: a.sha256, rootHash: a.rootHash, changes: a.changes, steps: a.lastBuild })), prodDb: prodKeys.files.apply((f) => f.db.pem) };
            },
            { backendDir: backend, projectName: "kairos-promo", stackName: "prod" },
        );
    });
    after(async () => {
        await prod?.dispose();
        await staging?.dispose();
    });

    it("promotes the exact tested bytes and runs no build step", async () => {
        const s = await staging.up();
        const tested = s.outputs.artifacts.value[0];
        const p = await prod.up();
        const promoted = p.outputs.promoted.value[0];
        assert.strictEqual(promoted.sha256, tested.sha256);
        assert.strictEqual(await sha256File(promoted.path), tested.sha256);
        assert.deepStrictEqual(promoted.changes, []);
        assert.deepStrictEqual(promoted.steps.steps.map((x: { step: string }) => x.step), ["verify tested artifact", "copy"]);
        assert.deepStrictEqual((await prod.up()).summary.resourceChanges, { same: 4 });
    });

    it("re-signs with production keys and proves only the signature partition changed", async () => {
        resign = true;
        const tested = (await staging.stack.outputs()).artifacts.value[0];
        const p = await prod.up();
        const promoted = p.outputs.promoted.value[0];
        assert.notStrictEqual(promoted.sha256, tested.sha256);
        assert.deepStrictEqual(promoted.changes, ["signature partition (root-x86-64-verity-sig)"]);
        assert.deepStrictEqual(promoted.steps.steps.map((x: { step: string }) => x.step), ["verify tested artifact", "re-sign verity signature"]);
        const check = await veritySignatureVerifies(promoted.path, p.outputs.prodDb.value, work);
        assert.ok(check.ok, "signed by the production db key");
        assert.strictEqual(check.rootHash, promoted.rootHash);
        const testedRoot = await veritySignatureVerifies(tested.path, path.join(work, "staging", "keys", "db.pem"), work);
        assert.strictEqual(testedRoot.rootHash, promoted.rootHash, "rootHash identical to the tested image");
    });

    it("refuses an artifact altered after testing, and keeps what prod had", async () => {
        const promotedBefore = (await prod.stack.outputs()).promoted.value[0];
        const shaBefore = await sha256File(promotedBefore.path);
        const tested = (await staging.stack.outputs()).artifacts.value[0];
        fs.appendFileSync(tested.path, "tampered");
        resign = false; // forces an update that must re-verify the source
        const err = await prod.up().catch((e) => e);
        assert.ok(err instanceof Error);
        assert.match(String(err.message), /is not the artifact that was tested/);
        assert.strictEqual(await sha256File(promotedBefore.path), shaBefore);
    });
});

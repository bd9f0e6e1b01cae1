// Promotion staging -> prod through the real engine, where prod's keys live in a PKCS#11 token that
// only the prod stack's environment reaches (its SOFTHSM2_CONF and PIN); staging builds with file
// keys and never sees the token. Prod re-signs the tested extension in the token: only the signature
// partition changes, and the root hash is the tested one.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { SigningKeys } from "../../provider/signing-keys";
import { SystemExtension } from "../../provider/system-extension";
import { artifactManifest, EnvironmentPromotion } from "../../constructs/promotion";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { makeTestToken } from "../helpers/softhsm";
import { veritySignatureVerifies } from "../helpers/ddi-inspect";

describe("promotion staging -> prod re-signed by a prod PKCS#11 token (SoftHSM2)", function () {
    this.timeout(300000);
    let work: string;
    let staging: EngineStack;
    let prod: EngineStack;
    const pin = "975310";

    before(async () => {
        work = tempDir("token-promotion");
        const saved = { ...process.env };
        const token = await makeTestToken(path.join(work, "prod-hsm"), "kairos-prod", pin);
        process.env = saved; // only the prod stack's processes get the token's config and PIN
        const src = path.join(work, "src", "usr", "bin");
        fs.mkdirSync(src, { recursive: true });
        fs.writeFileSync(path.join(src, "tool"), "tested in staging\n", { mode: 0o755 });
        const backendDir = tempDir("token-promotion-backend");
        staging = await engineStack(async () => {
            const keys = new SigningKeys("staging-keys", { name: "staging", outputDir: path.join(work, "staging", "keys") });
            const ext = new SystemExtension("tool", { name: "tool", outputDir: path.join(work, "staging", "extensions"), source: { dir: path.join(work, "src") }, signingKeys: keys });
            return { artifacts: artifactManifest([ext]) };
        }, { backendDir, projectName: "kairos-token-promo", stackName: "staging" });
        prod = await engineStack(async () => {
            const prodKeys = new SigningKeys("prod-keys", { name: "production", outputDir: path.join(work, "prod", "keys"), token: "pkcs11:token=kairos-prod" });
            const promotion = await EnvironmentPromotion.create("promote", { from: new pulumi.StackReference("organization/kairos-token-promo/staging"), outputDir: path.join(work, "prod", "extensions"), resignWith: prodKeys });
            const a = promotion.artifacts[0];
            return { promoted: pulumi.all([a.path, a.sha256, a.rootHash, a.changes]).apply(([p, sha256, rootHash, changes]) => ({ path: p, sha256, rootHash, changes })), prodDb: prodKeys.files.apply((f) => ({ key: f.db.key, pem: f.db.pem })) };
        }, { backendDir, projectName: "kairos-token-promo", stackName: "prod", env: token.env() });
    });
    after(async () => {
        await prod?.dispose();
        await staging?.dispose();
    });

    it("re-signs the tested image in the prod token: only the signature partition changes", async () => {
        const tested = (await staging.up()).outputs.artifacts.value[0];
        const p = await prod.up();
        const promoted = p.outputs.promoted.value;
        assert.strictEqual(p.outputs.prodDb.value.key, "pkcs11:token=kairos-prod;object=production-db");
        assert.deepStrictEqual(fs.readdirSync(path.join(work, "prod", "keys")).filter((f) => f.endsWith(".key") || f.includes("private")), [], "no private key file in prod's key folder");
        assert.notStrictEqual(promoted.sha256, tested.sha256);
        assert.deepStrictEqual(promoted.changes, ["signature partition (root-x86-64-verity-sig)"]);
        const check = await veritySignatureVerifies(promoted.path, p.outputs.prodDb.value.pem, work);
        assert.ok(check.ok, "signed by the prod token's db key");
        assert.strictEqual(check.rootHash, promoted.rootHash);
        const testedCheck = await veritySignatureVerifies(tested.path, path.join(work, "staging", "keys", "db.pem"), work);
        assert.strictEqual(testedCheck.rootHash, promoted.rootHash, "the tested root hash");
        assert.deepStrictEqual((await prod.up()).summary.resourceChanges, { same: 4 });
        // The state the engine keeps: no private key and no PIN (the PIN only ever was in prod's environment).
        const state = await prod.stateText();
        assert.doesNotMatch(state, /PRIVATE KEY/);
        assert.ok(!state.includes(pin), "the PIN is not in the state");
    });
});

// SigningKeys through the real Pulumi engine (CLI built from Go modules, file backend).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { SigningKeys, SigningKeysArgs } from "../../provider/signing-keys";
import { sha256File } from "../../provider/toolkit/files";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";

async function digests(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const f of fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile())) out[f] = await sha256File(path.join(dir, f));
    return out;
}

const KEY_FILES = ["PK.key", "KEK.key", "db.key", "tpm2-pcr-private.pem", "PK.pem", "KEK.pem", "db.pem"];

describe("SigningKeys through the Pulumi engine", function () {
    this.timeout(300000);
    let stack: EngineStack;
    let keyDir: string;
    let args: SigningKeysArgs;

    before(async () => {
        keyDir = path.join(tempDir("engine-keys"), "keys");
        args = { name: "engine-test", outputDir: keyDir };
        stack = await engineStack(async () => {
            const keys = new SigningKeys("keys", args);
            return { keyDir: keys.keyDir, dbFingerprint: keys.certificates.apply((c) => c.db.sha256Fingerprint), drift: keys.drift };
        });
    });
    after(async () => stack?.dispose());

    it("creates the key set, and a second up changes nothing", async () => {
        const first = await stack.up();
        assert.strictEqual(first.summary.resourceChanges?.create, 2);
        assert.strictEqual(first.outputs.keyDir.value, keyDir);
        assert.match(first.outputs.dbFingerprint.value, /^[0-9a-f]{64}$/);
        const second = await stack.up();
        assert.deepStrictEqual(second.summary.resourceChanges, { same: 2 });
    });

    it("keeps no private key material in the state", async () => {
        const state = await stack.stateText();
        assert.doesNotMatch(state, /PRIVATE KEY/);
        for (const f of ["PK.key", "KEK.key", "db.key", "tpm2-pcr-private.pem"]) {
            const body = fs.readFileSync(path.join(keyDir, f), "utf8").split("\n").filter((l) => l && !l.startsWith("-----"));
            for (const line of body) assert.ok(!state.includes(line), `a line of ${f} appears in the state`);
        }
        for (const f of ["PK.key", "db.key"]) assert.strictEqual(fs.statSync(path.join(keyDir, f)).mode & 0o777, 0o600);
    });

    it("re-signs on a non-key change and leaves the key files byte-identical", async () => {
        const before = await digests(keyDir);
        args.authTimestamp = "2031-05-06T07:08:09Z";
        const preview = await stack.preview();
        assert.strictEqual(preview.changeSummary.update, 1);
        const up = await stack.up();
        assert.strictEqual(up.summary.resourceChanges?.update, 1);
        const after = await digests(keyDir);
        for (const f of KEY_FILES) assert.strictEqual(after[f], before[f], f);
        assert.notStrictEqual(after["db.auth"], before["db.auth"]);
        assert.strictEqual(after["db.esl"], before["db.esl"]);
    });

    it("refuses a key-material change with a clear error and leaves every file intact", async () => {
        const before = await digests(keyDir);
        args.keySize = 4096;
        const err = await stack.up().catch((e) => e);
        assert.ok(err instanceof Error, "up must fail");
        assert.match(String(err.message), /changing keySize \(2048 -> 4096\) would replace the Secure Boot keys/);
        assert.match(String(err.message), /raise `rotation` to 1/);
        assert.deepStrictEqual(await digests(keyDir), before);
        args.keySize = 2048;
        const again = await stack.up();
        assert.deepStrictEqual(again.summary.resourceChanges, { same: 2 });
    });

    it("refresh reports a deleted or altered file; the next up restores derived files", async () => {
        const before = await digests(keyDir);
        fs.rmSync(path.join(keyDir, "db.auth"));
        fs.appendFileSync(path.join(keyDir, "KEK.esl"), "x");
        await stack.refresh();
        assert.deepStrictEqual([...(await stack.resourceOutputs("keys")).drift].sort(), ["KEK.esl: altered", "db.auth: missing"]);
        const up = await stack.up();
        assert.strictEqual(up.summary.resourceChanges?.update, 1);
        assert.deepStrictEqual(await digests(keyDir), before);
        assert.deepStrictEqual((await stack.stack.outputs()).drift.value, []);
    });

    it("refuses to re-sign over a missing private key and says how to recover", async () => {
        const saved = fs.readFileSync(path.join(keyDir, "KEK.key"));
        fs.rmSync(path.join(keyDir, "KEK.key"));
        await stack.refresh();
        assert.deepStrictEqual((await stack.resourceOutputs("keys")).drift, ["KEK.key: missing"]);
        const err = await stack.up().catch((e) => e);
        assert.ok(err instanceof Error, "up must fail");
        assert.match(String(err.message), /KEK\.key \(missing\).*restore them from your backup, or raise `rotation`/s);
        fs.writeFileSync(path.join(keyDir, "KEK.key"), saved, { mode: 0o600 });
        await stack.refresh();
        // the refresh saw the restored key, so there is nothing left to repair
        const up = await stack.up();
        assert.strictEqual(up.summary.resourceChanges?.update ?? 0, 0, JSON.stringify(up.summary.resourceChanges));
        assert.deepStrictEqual((await stack.stack.outputs()).drift.value, []);
        assert.deepStrictEqual(fs.readFileSync(path.join(keyDir, "KEK.key")), saved);
    });

    it("rotates only when asked: old files retired, new keys made", async () => {
        const before = await digests(keyDir);
        args.rotation = 1;
        const up = await stack.up();
        assert.strictEqual(up.summary.resourceChanges?.update, 1);
        const retired = await digests(path.join(keyDir, "retired", "rotation-0"));
        assert.strictEqual(retired["PK.key"], before["PK.key"]);
        const after = await digests(keyDir);
        assert.notStrictEqual(after["PK.key"], before["PK.key"]);
        assert.notStrictEqual(after["db.pem"], before["db.pem"]);
    });

    it("destroy forgets the keys but leaves the key folder on disk (the documented default)", async () => {
        const before = await digests(keyDir);
        const result = await stack.destroy();
        assert.strictEqual(result.summary.resourceChanges?.delete, 2);
        assert.deepStrictEqual(await digests(keyDir), before);
    });

    it("with deleteOnDestroy, destroy removes exactly the files it wrote", async () => {
        const dir = path.join(tempDir("engine-keys-del"), "keys");
        const s = await engineStack(async () => {
            new SigningKeys("keys", { name: "short-lived", outputDir: dir, deleteOnDestroy: true });
        });
        try {
            await s.up();
            assert.deepStrictEqual(fs.readdirSync(dir).filter((f) => f.startsWith(".")), [".kairos-keyset.json"]);
            assert.strictEqual(fs.readdirSync(dir).length, 17, "16 key-set files and the stamp");
            await s.destroy();
            assert.ok(!fs.existsSync(dir), "the key folder is removed");
        } finally {
            await s.dispose();
        }
    });
});

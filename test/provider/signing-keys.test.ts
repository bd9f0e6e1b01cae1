// The SigningKeys handler called directly, as the dynamic-provider process calls it.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { SIGNING_KEYS_TOKEN, signingKeysHandler as handler } from "../../provider/signing-keys";
import { handlerFor } from "../../provider/handlers";
import { LOCK_TIMEOUT_ENV, withOutputLock } from "../../provider/output/output-lock";
import { tempDir } from "../helpers/engine";
import { makeCertificate } from "../helpers/pki";

async function checkFailures(news: Record<string, unknown>, olds: Record<string, unknown> = {}) {
    const r = await handler.check(olds, news);
    return r.failures ?? [];
}

describe("SigningKeys handler: bad input gets one clear error and writes nothing", function () {
    this.timeout(60000);
    let root: string;
    beforeEach(() => (root = tempDir("sk-bad")));
    const nothingWritten = () => assert.deepStrictEqual(fs.readdirSync(root), []);

    it("fails on an unsupported key size", async () => {
        const f = await checkFailures({ name: "acme", outputDir: path.join(root, "k"), keySize: 1024 });
        assert.deepStrictEqual(f, [{ property: "keySize", reason: "1024 is not allowed; allowed: 2048, 3072, 4096" }]);
        nothingWritten();
    });

    it("reports schema problems and cross-field problems in one round", async () => {
        const f = await checkFailures({ name: "acme", outputDir: path.join(root, "k"), keySize: 1024, extraSignatureLists: { db: [path.join(root, "missing.esl")] } });
        assert.deepStrictEqual(f.map((p) => p.property).sort(), ["extraSignatureLists.db[0]", "keySize"]);
        assert.match(f.find((p) => p.property === "extraSignatureLists.db[0]")!.reason, /missing\.esl does not exist/);
        nothingWritten();
    });

    it("fails on an empty or invalid name", async () => {
        assert.deepStrictEqual(await checkFailures({ name: "", outputDir: path.join(root, "k") }), [{ property: "name", reason: "must not be empty" }]);
        const f = await checkFailures({ name: "acme/../x", outputDir: path.join(root, "k") });
        assert.strictEqual(f.length, 1);
        assert.strictEqual(f[0].property, "name");
        assert.match(f[0].reason, /"acme\/..\/x" does not match/);
        nothingWritten();
    });

    it("fails when import paths are missing: a missing folder once, missing files each by role", async () => {
        const gone = await checkFailures({ name: "acme", outputDir: path.join(root, "k"), import: { dir: path.join(root, "nowhere") } });
        assert.deepStrictEqual(gone, [{ property: "import.dir", reason: `${path.join(root, "nowhere")} does not exist` }]);
        const empty = path.join(root, "empty-import");
        fs.mkdirSync(empty, { recursive: true });
        const f = await checkFailures({ name: "acme", outputDir: path.join(root, "k"), import: { dir: empty } });
        assert.strictEqual(f.length, 3);
        for (const role of ["PK", "KEK", "db"]) {
            assert.ok(f.some((x) => x.property === "import" && x.reason === `${role}: ${path.join(empty, `${role}.key`)} and ${path.join(empty, `${role}.pem`)} do not exist`), role);
        }
        fs.rmdirSync(empty);
        nothingWritten();
    });

    it("fails when an imported key does not match its certificate", async () => {
        const certs = tempDir("sk-certs");
        const a = await makeCertificate(certs, "a");
        const b = await makeCertificate(certs, "b");
        const f = await checkFailures({ name: "acme", outputDir: path.join(root, "k"), import: { PK: a, KEK: a, db: { key: a.key, certificate: b.certificate } } });
        assert.deepStrictEqual(f, [{ property: "import", reason: `db: the key ${a.key} does not match the certificate ${b.certificate}` }]);
        nothingWritten();
    });

    it("refuses to create into a folder that already holds keys, and leaves it as it was", async () => {
        const dir = path.join(root, "k");
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, "PK.key"), "someone else's key");
        const checked = await handler.check({}, { name: "acme", outputDir: dir });
        assert.deepStrictEqual(checked.failures, [{ property: "outputDir", reason: `${dir} already holds PK.key; SigningKeys never overwrites keys (adopt them with import)` }]);
        // create() guards too, for inputs that reach it anyway
        await assert.rejects(handler.create({ ...checked.inputs, outputDir: dir }), /already holds PK\.key; SigningKeys never overwrites keys/);
        assert.deepStrictEqual(fs.readdirSync(root), ["k"]);
        assert.deepStrictEqual(fs.readdirSync(dir), ["PK.key"]);
        assert.strictEqual(fs.readFileSync(path.join(dir, "PK.key"), "utf8"), "someone else's key");
    });

    it("fails on a key-material change without rotation, and explains how to rotate", async () => {
        const first = await handler.check({}, { name: "acme", outputDir: path.join(root, "k") });
        const f = await checkFailures({ name: "acme", outputDir: path.join(root, "k"), keySize: 4096 }, first.inputs);
        assert.strictEqual(f.length, 1);
        assert.strictEqual(f[0].property, "keySize");
        assert.match(f[0].reason, /changing keySize \(2048 -> 4096\) would replace the Secure Boot keys/);
        assert.match(f[0].reason, /raise `rotation` to 1/);
        const rotated = await checkFailures({ name: "acme", outputDir: path.join(root, "k"), keySize: 4096, rotation: 1 }, first.inputs);
        assert.deepStrictEqual(rotated, []);
        nothingWritten();
    });

    it("keeps the input hash stable for equal inputs and changes it for a non-key input", async () => {
        const a = await handler.check({}, { name: "acme", outputDir: path.join(root, "k") });
        const b = await handler.check({}, { name: "acme", outputDir: path.join(root, "k"), keySize: 2048 });
        const c = await handler.check({}, { name: "acme", outputDir: path.join(root, "k"), authTimestamp: "2030-01-01T00:00:00Z" });
        assert.strictEqual(a.inputs.inputHash, b.inputs.inputHash);
        assert.notStrictEqual(a.inputs.inputHash, c.inputs.inputHash);
        assert.strictEqual(a.inputs.keyMaterialHash, c.inputs.keyMaterialHash);
    });

    it("keeps working after the import sources are gone (the keys were copied)", async () => {
        const source = path.join(root, "aurora-keys");
        const first = await handler.check({}, { name: "acme", outputDir: path.join(root, "made") });
        await handler.create(first.inputs);
        fs.cpSync(path.join(root, "made"), source, { recursive: true });
        const news = { name: "acme", outputDir: path.join(root, "adopted"), import: { dir: source } };
        const checked = await handler.check({}, news);
        assert.deepStrictEqual(checked.failures, []);
        const outs = (await handler.create(checked.inputs)).outs;
        fs.rmSync(source, { recursive: true });
        const again = await handler.check(checked.inputs, news);
        assert.deepStrictEqual(again.failures, []);
        assert.strictEqual(again.inputs.inputHash, outs.inputHash);
        assert.strictEqual((await handler.diff("id", outs, again.inputs)).changes, false);
    });

    it("refuses, in preview, a rotation into another folder that already holds keys", async () => {
        const a = await handler.check({}, { name: "acme", outputDir: path.join(root, "a") });
        await handler.create(a.inputs);
        const b = await handler.check({}, { name: "other", outputDir: path.join(root, "b") });
        await handler.create(b.inputs);
        const before = fs.readFileSync(path.join(root, "b", "db.key"));
        const f = await checkFailures({ name: "acme", outputDir: path.join(root, "b"), rotation: 1 }, a.inputs);
        assert.deepStrictEqual(f.map((x) => x.property), ["outputDir"]);
        assert.ok(fs.readFileSync(path.join(root, "b", "db.key")).equals(before));
    });
});

describe("SigningKeys moved with their folder (artifact-move.ts through handlerFor)", function () {
    this.timeout(120000);

    it("takes the keys over and makes private keys that arrived readable by others 0600 again; the old folder is neither locked nor written", async () => {
        const root = tempDir("sk-move");
        const h = handlerFor(SIGNING_KEYS_TOKEN);
        const a = await h.check({}, { name: "acme", outputDir: path.join(root, "a") });
        const { outs } = await h.create(a.inputs);
        const to = path.join(root, "b");
        fs.cpSync(path.join(root, "a"), to, { recursive: true });
        fs.chmodSync(path.join(to, "db.key"), 0o644);
        fs.chmodSync(path.join(to, "tpm2-pcr-private.pem"), 0o640);
        const b = await h.check(a.inputs, { name: "acme", outputDir: to });
        assert.deepStrictEqual(b.failures ?? [], []);
        assert.deepStrictEqual((await h.diff(outs.keyDir, outs, b.inputs)).replaces, []);
        // Another build holding the old folder's lock does not hold up the move: it never locks (nor writes) there.
        const saved = process.env[LOCK_TIMEOUT_ENV];
        process.env[LOCK_TIMEOUT_ENV] = "1";
        const moved = await withOutputLock([outs.keyDir], "SigningKeys acme (another stack)", async () => (await h.update(outs.keyDir, outs, b.inputs)).outs!).finally(() => {
            saved === undefined ? delete process.env[LOCK_TIMEOUT_ENV] : (process.env[LOCK_TIMEOUT_ENV] = saved);
        });
        assert.strictEqual(moved.lastBuild.action, "moved");
        assert.strictEqual(moved.keyDir, to);
        for (const f of fs.readdirSync(to).filter((f) => f.endsWith(".key") || f === "tpm2-pcr-private.pem")) {
            assert.strictEqual(fs.statSync(path.join(to, f)).mode & 0o777, 0o600, f);
            assert.strictEqual(fs.statSync(path.join(root, "a", f)).mode & 0o777, 0o600, `a/${f}`);
        }
        assert.deepStrictEqual(moved.fileDigests, outs.fileDigests);
    });
});

// SigningKeys with an artifact store, through the handler the provider serves: the store never holds
// a private key, so a runner without the private keys of a generated set gets an error that says what
// to restore (and nothing is written); with them restored from a secret store, the public files come
// from the store, byte-identical.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { handlerFor } from "../../provider/handlers";
import { SIGNING_KEYS_TOKEN } from "../../provider/signing-keys";
import { sha256File } from "../../provider/toolkit/files";
import { createVia } from "../helpers/handlers";
import { S3Server, startS3Server } from "../helpers/s3-server";
import { s3Objects } from "../helpers/s3-objects";
import { tempDir } from "../helpers/temp";

const PRIVATE = ["PK.key", "KEK.key", "db.key", "tpm2-pcr-private.pem"];

describe("SigningKeys with an artifact store (generated keys)", function () {
    this.timeout(120000);
    let s3: S3Server;
    let savedEnv: NodeJS.ProcessEnv;
    const handler = handlerFor(SIGNING_KEYS_TOKEN);

    before(async () => {
        s3 = await startS3Server({ buckets: ["keys"] });
        savedEnv = { ...process.env };
        Object.assign(process.env, s3.env());
    });
    after(async () => {
        process.env = savedEnv;
        await s3?.stop();
    });

    it("uploads certificates, .esl and .auth only; a runner lacking the private keys is told to restore them; with them, the rest is fetched", async () => {
        const work = tempDir("stored-keys");
        const keyDir = path.join(work, "keys");
        const inputs = { name: "stored", outputDir: keyDir, artifactStore: { bucket: "keys", endpoint: s3.endpoint } };
        const outs = await createVia(handler, inputs);
        assert.strictEqual(outs.lastBuild.action, "created");
        const stored = new Set(await s3Objects(s3).keys("keys", "kairos/sha256/"));
        const names = Object.keys(outs.fileDigests);
        for (const f of names) {
            const inStore = stored.has(`kairos/sha256/${await sha256File(path.join(keyDir, f))}`);
            assert.strictEqual(inStore, !PRIVATE.includes(f), `${f} ${PRIVATE.includes(f) ? "must not be" : "must be"} in the store`);
        }
        const original = Object.fromEntries(await Promise.all(names.map(async (f) => [f, await sha256File(path.join(keyDir, f))])));

        // What the team keeps in its secret store: the private keys only.
        const secrets = path.join(work, "secret-store");
        fs.mkdirSync(secrets);
        for (const f of PRIVATE) fs.copyFileSync(path.join(keyDir, f), path.join(secrets, f));

        // Another runner: same state, an empty key folder.
        fs.rmSync(keyDir, { recursive: true });
        const { inputs: checked } = await handler.check(outs, inputs);
        assert.strictEqual((await handler.diff(keyDir, outs, checked)).changes, true, "a missing key folder is a change");
        const err = await handler.update(keyDir, outs, checked).catch((e) => e);
        assert.ok(err instanceof Error);
        assert.match(err.message, /lacks PK\.key, KEK\.key, db\.key, tpm2-pcr-private\.pem, and private keys are never put in the artifact store/);
        assert.ok(!fs.existsSync(keyDir), "nothing written");

        // The private keys come back from the secret store; the public files come from the artifact store.
        fs.mkdirSync(keyDir, { mode: 0o700 });
        for (const f of PRIVATE) fs.copyFileSync(path.join(secrets, f), path.join(keyDir, f));
        const restored = (await handler.update(keyDir, outs, checked)).outs;
        assert.strictEqual(restored.lastBuild.action, "fetched");
        assert.deepStrictEqual(restored.lastBuild.steps.map((s: { step: string }) => s.step), ["fetch certificates and signature lists"]);
        for (const f of names) assert.strictEqual(await sha256File(path.join(keyDir, f)), original[f], f);
        assert.strictEqual((await handler.diff(keyDir, restored, checked)).changes, false, "then nothing to do");
    });
});

// SigningKeys with keys already in a PKCS#11 token ("use existing", certificates from files), through
// the handler the provider serves: the signature lists and .auth files are byte-identical to the same
// keys imported from files, the key folder holds no private key, and every way the token keys can be
// wrong is one clear input error with nothing written.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { handlerFor } from "../../provider/handlers";
import { SIGNING_KEYS_TOKEN } from "../../provider/signing-keys";
import { PIN_ENV } from "../../provider/toolkit/keys/pkcs11";
import { createVia } from "../helpers/handlers";
import { makeGenkeyFolder } from "../helpers/genkey";
import { makeTestToken, SOFTHSM_MODULE, TestToken } from "../helpers/softhsm";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/temp";

const DERIVED = ["PK.pem", "PK.der", "PK.esl", "PK.auth", "KEK.pem", "KEK.der", "KEK.esl", "KEK.auth", "db.pem", "db.der", "db.esl", "db.auth"];

describe("SigningKeys with keys already in a PKCS#11 token", function () {
    this.timeout(120000);
    let work: string;
    let token: TestToken;
    let genkey: string;
    let savedEnv: NodeJS.ProcessEnv;
    const handler = handlerFor(SIGNING_KEYS_TOKEN);
    const tokenImport = (over: Record<string, unknown> = {}) => ({
        PK: { key: token.uri("PK"), certificate: path.join(genkey, "PK.pem") },
        KEK: { key: token.uri("KEK"), certificate: path.join(genkey, "KEK.pem") },
        db: { key: token.uri("db"), certificate: path.join(genkey, "db.pem") },
        tpmPcrKey: token.uri("tpm"),
        ...over,
    });

    before(async () => {
        savedEnv = { ...process.env };
        work = tempDir("token-import");
        token = await makeTestToken(path.join(work, "hsm"), "kairos-use", "135790");
        genkey = path.join(work, "genkey");
        await makeGenkeyFolder(genkey, "use", { microsoftLists: false });
        for (const [i, role] of ["PK", "KEK", "db"].entries()) await token.importKey(path.join(genkey, `${role}.key`), role, `0${i + 1}`);
        await token.importKey(path.join(genkey, "tpm2-pcr-private.pem"), "tpm", "04");
    });
    after(() => {
        process.env = savedEnv;
    });

    it("signs the .auth files in the token, byte-identical to the same keys from files, and keeps no private key in the folder", async () => {
        const fromFiles = await createVia(handler, { name: "use", outputDir: path.join(work, "file-keys"), import: { dir: genkey } });
        const fromToken = await createVia(handler, { name: "use", outputDir: path.join(work, "token-keys"), import: tokenImport() });
        for (const f of DERIVED) {
            assert.ok(fs.readFileSync(path.join(fromToken.keyDir, f)).equals(fs.readFileSync(path.join(fromFiles.keyDir, f))), `${f} identical`);
        }
        assert.strictEqual(fromToken.tpmPcrPublicKeyPem, fromFiles.tpmPcrPublicKeyPem);
        assert.deepStrictEqual(fs.readdirSync(fromToken.keyDir).filter((f) => f.endsWith(".key") || f === "tpm2-pcr-private.pem"), []);
        assert.strictEqual(fromToken.files.db.key, token.uri("db"));
        assert.strictEqual(fromToken.tpmPcrKeyFile, token.uri("tpm"));
        // Nothing about the token key is re-read as a file: a refresh finds no drift.
        const read = await handler.read(fromToken.keyDir, fromToken);
        assert.deepStrictEqual(read.props.drift, []);
    });

    const refused = async (inputs: Record<string, unknown>, property: RegExp, reason: RegExp) => {
        const outputDir = path.join(work, `refused-${Math.random().toString(16).slice(2)}`);
        const { failures } = await handler.check({}, { name: "use", outputDir, ...inputs });
        assert.strictEqual(failures?.length, 1, JSON.stringify(failures));
        assert.match(failures![0].property, property);
        assert.match(failures![0].reason, reason);
        assert.ok(!fs.existsSync(outputDir), "nothing written");
    };

    it("a missing key object, a missing token, a key for another certificate, a wrong PIN (tried once) and a missing PCR key are input errors", async () => {
        await refused({ import: tokenImport({ db: { key: token.uri("nope"), certificate: path.join(genkey, "db.pem") } }) }, /^import$/, /db: token "kairos-use" holds no key matching pkcs11:token=kairos-use;object=nope/);
        await refused({ import: tokenImport({ KEK: { key: "pkcs11:token=elsewhere;object=KEK", certificate: path.join(genkey, "KEK.pem") } }) }, /^import$/, /KEK: no PKCS#11 token is labelled "elsewhere"/);
        await refused({ import: tokenImport({ db: { key: token.uri("KEK"), certificate: path.join(genkey, "db.pem") } }) }, /^import$/, /db: the key pkcs11:token=kairos-use;object=KEK does not match the certificate/);
        await refused({ import: tokenImport({ tpmPcrKey: undefined }) }, /^import$/, /give the TPM PCR key as a token key too/);
        process.env[PIN_ENV] = "111111";
        try {
            await refused({ import: tokenImport() }, /^import$/, /the PIN in KAIROS_PKCS11_PIN is not the user PIN of token "kairos-use"/);
        } finally {
            process.env[PIN_ENV] = token.pin;
        }
        await refused({ token: "pkcs11:token=kairos-use", import: { dir: genkey } }, /^token$/, /cannot be combined with import/);
        await refused({ token: "pkcs11:token=kairos-use;pin-value=135790" }, /^token$/, /carries a PIN/);
    });
});

describe("SigningKeys generated in a PKCS#11 token, rotated", function () {
    this.timeout(120000);
    let savedEnv: NodeJS.ProcessEnv;
    before(() => {
        savedEnv = { ...process.env };
    });
    after(() => {
        process.env = savedEnv;
    });

    it("a rotation makes new token objects and retires the old certificates; the old keys stay in the token", async () => {
        const work = tempDir("token-rotation");
        const token = await makeTestToken(path.join(work, "hsm"), "kairos-rot", "112233");
        const handler = handlerFor(SIGNING_KEYS_TOKEN);
        const inputs = { name: "rot", outputDir: path.join(work, "keys"), token: "pkcs11:token=kairos-rot" };
        const first = await createVia(handler, inputs);
        assert.strictEqual(first.files.db.key, "pkcs11:token=kairos-rot;object=rot-db");
        const { inputs: next, failures } = await handler.check(first, { ...inputs, rotation: 1 });
        assert.deepStrictEqual(failures ?? [], []);
        const rotated = (await handler.update(first.keyDir, first, next)).outs;
        assert.strictEqual(rotated.files.db.key, "pkcs11:token=kairos-rot;object=rot-rotation1-db");
        assert.notStrictEqual(rotated.certificates.db.sha256Fingerprint, first.certificates.db.sha256Fingerprint);
        assert.ok(fs.existsSync(path.join(work, "keys", "retired", "rotation-0", "db.pem")), "the old certificate is retired");
        const listed = (await run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", token.label, "--login", "--pin", token.pin, "-O", "--type", "privkey"], { env: token.env() })).stdout;
        for (const label of ["rot-db", "rot-rotation1-db", "rot-PK", "rot-rotation1-PK"]) assert.match(listed, new RegExp(`label:\\s+${label}\\n`));
    });
});

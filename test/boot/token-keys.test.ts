// Production key custody, end to end through the resource handlers: the Secure Boot keys and the TPM
// PCR key are generated inside a PKCS#11 token (SoftHSM2, a token of the test's own) and never leave
// it. Every signature (.auth, verity root hash, UKI and systemd-boot Authenticode, .pcrsig) is made by
// the token; the media boot under OVMF with Secure Boot enforced from a blank key store. No private key
// byte reaches the key folder, the outputs or the logs, and a wrong PIN stops the build in check.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { handlerFor } from "../../provider/handlers";
import { SIGNING_KEYS_TOKEN } from "../../provider/signing-keys";
import { SYSTEM_EXTENSION_TOKEN } from "../../provider/system-extension";
import { KAIROS_UKI_IMAGE_TOKEN } from "../../provider/kairos-uki-image";
import { BOOT_MEDIA_TOKEN } from "../../provider/boot-media";
import { PIN_ENV } from "../../provider/toolkit/keys/pkcs11";
import { run } from "../../provider/toolkit/run";
import { withLogSink } from "../../provider/build-log";
import { tempDir } from "../helpers/engine";
import { createVia } from "../helpers/handlers";
import { TEST_OS_MARKER, buildTestOsRootfs, packTestOsImage } from "../helpers/test-os";
import { bootMedia, freshVars } from "../helpers/qemu";
import { makeTestToken, SOFTHSM_MODULE, TestToken } from "../helpers/softhsm";
import { veritySignatureVerifies } from "../helpers/ddi-inspect";

const BOOT_TIMEOUT_MS = 120000;
const PRIVATE_KEY_PEM = /-----BEGIN (RSA |ENCRYPTED )?PRIVATE KEY-----/;

describe("keys in a PKCS#11 token: everything signed by the token, booted under OVMF Secure Boot", function () {
    this.timeout(BOOT_TIMEOUT_MS + 60000);
    let work: string;
    let token: TestToken;
    let keys: any;
    let ext: any;
    let uki: any;
    let media: any;
    let savedEnv: NodeJS.ProcessEnv;
    const logs: string[] = [];

    before(async function () {
        this.timeout(600000);
        savedEnv = { ...process.env };
        work = tempDir("token-keys");
        token = await makeTestToken(path.join(work, "hsm"), "kairos-prod", "246810");
        const sink = { info: (m: string) => logs.push(m), progress: (m: string) => logs.push(m) };
        await withLogSink(sink, async () => {
            keys = await createVia(handlerFor(SIGNING_KEYS_TOKEN), { name: "prod", outputDir: path.join(work, "keys"), token: "pkcs11:token=kairos-prod" });
            const signing = { key: keys.files.db.key, certificate: keys.files.db.pem };
            const src = path.join(work, "src", "usr", "bin");
            fs.mkdirSync(src, { recursive: true });
            fs.writeFileSync(path.join(src, "tool"), "tool\n", { mode: 0o755 });
            ext = await createVia(handlerFor(SYSTEM_EXTENSION_TOKEN), { name: "tool", outputDir: path.join(work, "extensions"), source: { dir: path.join(work, "src") }, signing });
            const rootfs = path.join(work, "test-os");
            await buildTestOsRootfs(rootfs);
            await packTestOsImage(rootfs, path.join(work, "test-os.oci"));
            uki = await createVia(handlerFor(KAIROS_UKI_IMAGE_TOKEN), { outputDir: path.join(work, "uki"), source: { ociLayout: path.join(work, "test-os.oci") }, signing, pcrKey: keys.tpmPcrKeyFile });
            media = await createVia(handlerFor(BOOT_MEDIA_TOKEN), {
                name: "kairos-prod", outputDir: path.join(work, "media"), timeout: 0, secureBootEnroll: "force",
                uki: { efiFiles: uki.ukis.map((u: any) => u.path), loaderEntries: uki.ukis.map((u: any) => u.entryPath), systemdBoot: uki.systemdBoot.path },
                enrollKeys: { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth },
                extensions: [ext.path],
            });
        });
    });
    after(() => {
        process.env = savedEnv;
    });

    it("makes the keys inside the token, non-extractable; the key folder holds certificates and signature lists only", async () => {
        assert.equal(keys.keySource, "generated in token");
        assert.equal(keys.files.db.key, "pkcs11:token=kairos-prod;object=prod-db");
        assert.equal(keys.tpmPcrKeyFile, "pkcs11:token=kairos-prod;object=prod-tpm2-pcr");
        assert.deepEqual(fs.readdirSync(keys.keyDir).filter((f) => f.endsWith(".key") || f.includes("private")), []);
        const listed = (await run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", token.label, "--login", "--pin", token.pin, "-O", "--type", "privkey"], { env: token.env() })).stdout;
        for (const label of ["prod-PK", "prod-KEK", "prod-db", "prod-tpm2-pcr"]) {
            const block = listed.split("Private Key Object").find((b) => b.includes(`label:      ${label}\n`));
            assert.ok(block, `${label} in the token:\n${listed}`);
            assert.match(block!, /never extractable/);
        }
        const certs = (await run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", token.label, "-O", "--type", "cert"], { env: token.env() })).stdout;
        for (const label of ["prod-PK", "prod-KEK", "prod-db"]) assert.match(certs, new RegExp(`label:\\s+${label}\\n`));
    });

    it("the token's signatures verify with the independent tools: openssl (verity), sbverify (UKI, systemd-boot)", async () => {
        const check = await veritySignatureVerifies(ext.path, keys.files.db.pem, work);
        assert.ok(check.ok, "verity root-hash signature verifies with db.pem");
        for (const efi of [...uki.ukis.map((u: any) => u.path), uki.systemdBoot.path]) {
            await run(["sbverify", "--cert", keys.files.db.pem, efi]);
        }
        // .pcrsig is signed by the token's PCR key: the UKI's .pcrpkey is its public half.
        assert.ok(Object.keys(uki.pcr11.norole).length > 0);
    });

    it("from a blank key store: the token-signed media enrol the keys and boot with Secure Boot enforced", async () => {
        const r = await bootMedia({ media: media.path, as: "cdrom", vars: freshVars(path.join(work, "vars")), timeoutMs: BOOT_TIMEOUT_MS, marker: TEST_OS_MARKER });
        assert.ok(r.enrolled, "keys enrolled from loader/keys/auto");
        assert.ok(r.booted, `marker seen\n${r.log.slice(-3000)}`);
        assert.equal(r.fields?.sb, "enabled");
        console.log(`      token-signed media, cdrom boot with enrolment: ${r.seconds.toFixed(1)} s`);
    });

    it("no private key bytes and no PIN on disk, in the outputs or in the logs", () => {
        const outputs = JSON.stringify({ keys, ext, uki, media });
        assert.doesNotMatch(outputs, PRIVATE_KEY_PEM);
        assert.ok(!outputs.includes(token.pin), "the PIN is not in the outputs");
        const logText = logs.join("\n");
        assert.ok(!logText.includes(token.pin), "the PIN is not in the logs");
        assert.doesNotMatch(logText, PRIVATE_KEY_PEM);
        const files: string[] = [];
        const walk = (d: string) => {
            for (const e of fs.readdirSync(d, { withFileTypes: true })) {
                const p = path.join(d, e.name);
                if (p === path.join(work, "hsm") || p === path.join(work, "test-os") || p === path.join(work, "test-os.oci")) continue; // the token's own store; the OS fixture
                if (e.isDirectory()) walk(p);
                else if (e.isFile()) files.push(p);
            }
        };
        walk(work);
        for (const f of files) {
            const bytes = fs.readFileSync(f);
            assert.doesNotMatch(bytes.toString("latin1"), PRIVATE_KEY_PEM, `${f} holds a private key`);
            assert.ok(!bytes.includes(Buffer.from(token.pin)) || f.endsWith(".efi") || f.endsWith(".iso") || f.endsWith(".raw"), `${f} holds the PIN`);
        }
        assert.ok(files.length > 10, `scanned ${files.length} files`);
    });

    it("a wrong PIN is refused in check with the reason, and nothing is written", async () => {
        process.env[PIN_ENV] = "000000";
        try {
            const h = handlerFor(SYSTEM_EXTENSION_TOKEN);
            const { failures } = await h.check({}, { name: "other", outputDir: path.join(work, "other"), source: { dir: path.join(work, "src") }, signing: { key: keys.files.db.key, certificate: keys.files.db.pem } });
            assert.equal(failures?.length, 1);
            assert.equal(failures![0].property, "signing");
            assert.match(failures![0].reason, /the PIN in KAIROS_PKCS11_PIN is not the user PIN of token "kairos-prod"/);
            assert.ok(!fs.existsSync(path.join(work, "other")));
        } finally {
            process.env[PIN_ENV] = token.pin;
        }
    });
});

// Signing through a PKCS#11 token (SoftHSM2, a token per test run): every kind of signature the
// package makes comes out byte-identical whether the key is a file or the same key inside the token,
// and every way a token key can be wrong is said in words before anything is signed.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { createHash } from "crypto";
import { run } from "../../../provider/toolkit/run";
import { buildSysextImage } from "../../../provider/toolkit/sysext/ddi";
import { signSignatureList, certificateToSignatureList } from "../../../provider/toolkit/keys/efitools";
import { authenticodeSignature } from "../../../provider/toolkit/boot/authenticode";
import { signPcr11 } from "../../../provider/toolkit/boot/pcr11";
import { signEfi, checkEfiSignature } from "../../../provider/toolkit/boot/uki";
import { PIN_ENV, tokenKeyProblem } from "../../../provider/toolkit/keys/pkcs11";
import { HOST_EFI_DIR } from "../../../provider/toolkit/tools";
import { sha256File } from "../../../provider/toolkit/files";
import { makeCertificate } from "../../helpers/pki";
import { makeTestToken, SOFTHSM_MODULE, TestToken } from "../../helpers/softhsm";
import { tempDir } from "../../helpers/temp";

describe("signing through a PKCS#11 token (SoftHSM2)", function () {
    this.timeout(120000);
    let work: string;
    let token: TestToken;
    let signer: { key: string; certificate: string };
    let tokenKey: string;
    let savedEnv: NodeJS.ProcessEnv;

    before(async () => {
        savedEnv = { ...process.env };
        work = tempDir("pkcs11");
        token = await makeTestToken(path.join(work, "hsm"));
        signer = await makeCertificate(work, "db");
        tokenKey = await token.importKey(signer.key, "db", "01");
    });
    after(() => {
        process.env = savedEnv;
    });

    it("a verity root-hash signature: the sysext image is byte-identical from the token and from the file", async () => {
        const tree = path.join(work, "tree", "usr", "lib", "extension-release.d");
        fs.mkdirSync(tree, { recursive: true });
        fs.writeFileSync(path.join(tree, "extension-release.tool"), "ID=_any\n");
        const build = (key: string, out: string) =>
            buildSysextImage({ sourceDir: path.join(work, "tree"), outFile: path.join(work, out), workDir: work, name: "tool", kind: "sysext", arch: "x86-64", compression: "none", sourceDateEpoch: 0, signing: { key, certificate: signer.certificate } });
        const fromFile = await build(signer.key, "file.raw");
        const fromToken = await build(tokenKey, "token.raw");
        assert.strictEqual(fromToken.sha256, fromFile.sha256);
        assert.strictEqual(await sha256File(path.join(work, "token.raw")), await sha256File(path.join(work, "file.raw")));
    });

    it("a signed .auth (sign-efi-sig-list -e pkcs11) is byte-identical", async () => {
        const esl = path.join(work, "db.esl");
        await certificateToSignatureList(signer.certificate, "11111111-2222-4333-8444-555555555555", esl);
        const auth = (key: string, out: string) => signSignatureList({ variable: "db", eslFile: esl, signerKey: key, signerCert: signer.certificate, ownerGuid: "11111111-2222-4333-8444-555555555555", timestamp: "2025-01-01 00:00:00", authFile: path.join(work, out) });
        await auth(signer.key, "file.auth");
        await auth(tokenKey, "token.auth");
        assert.ok(fs.readFileSync(path.join(work, "token.auth")).equals(fs.readFileSync(path.join(work, "file.auth"))));
    });

    it("an Authenticode signature and a signed systemd-boot are byte-identical, and sbverify accepts them", async () => {
        const digest = createHash("sha256").update("an image").digest();
        assert.ok((await authenticodeSignature(digest, { key: tokenKey, certificate: signer.certificate })).equals(await authenticodeSignature(digest, signer)));
        const sdboot = path.join(HOST_EFI_DIR, "systemd-bootx64.efi");
        await signEfi(sdboot, path.join(work, "file.efi"), signer.key, signer.certificate);
        await signEfi(sdboot, path.join(work, "token.efi"), tokenKey, signer.certificate);
        assert.strictEqual(await sha256File(path.join(work, "token.efi")), await sha256File(path.join(work, "file.efi")));
        assert.deepStrictEqual(await checkEfiSignature(path.join(work, "token.efi"), signer.certificate), { ok: true });
        // sbsign through the engine works too (it is not deterministic: it signs the time).
        await signEfi(sdboot, path.join(work, "sbsign.efi"), tokenKey, signer.certificate, { signer: "sbsign" });
        assert.deepStrictEqual(await checkEfiSignature(path.join(work, "sbsign.efi"), signer.certificate), { ok: true });
    });

    it("a PCR 11 policy signature (.pcrsig) is byte-identical", async () => {
        const sections = [{ name: ".linux", data: Buffer.from("kernel") }, { name: ".osrel", data: Buffer.from("ID=kairos\n") }];
        const fromFile = await signPcr11(sections, signer.key, { banks: ["sha256", "sha1"] });
        const fromToken = await signPcr11(sections, tokenKey, { banks: ["sha256", "sha1"] });
        assert.strictEqual(fromToken.json, fromFile.json);
    });

    it("wrong PIN, no PIN, a missing token, a missing key, a non-RSA key and a key that may not sign are each said plainly, before signing", async () => {
        assert.strictEqual(tokenKeyProblem(tokenKey), undefined);
        process.env[PIN_ENV] = "9999";
        assert.match(tokenKeyProblem(tokenKey)!, /the PIN in KAIROS_PKCS11_PIN is not the user PIN of token "kairos-test"/);
        delete process.env[PIN_ENV];
        assert.match(tokenKeyProblem(tokenKey)!, /set KAIROS_PKCS11_PIN/);
        process.env[PIN_ENV] = token.pin;
        assert.match(tokenKeyProblem("pkcs11:token=no-such-token;object=db")!, /no PKCS#11 token is labelled "no-such-token" \(tokens seen through .*: .*kairos-test/);
        assert.match(tokenKeyProblem(token.uri("nope"))!, /token "kairos-test" holds no key matching pkcs11:token=kairos-test;object=nope/);
        assert.match(tokenKeyProblem(`${tokenKey};pin-value=1234`)!, /carries a PIN/);
        await run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", token.label, "--login", "--pin", token.pin, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "0e", "--label", "ec"], { env: token.env() });
        assert.match(tokenKeyProblem(token.uri("ec"))!, /is an EC key; .* need RSA/);
        // An RSA key the token may not sign with (CKA_SIGN false): found by the probe, and sign-efi-sig-list,
        // which exits 0 with an empty signature for it, is caught by its own output.
        await run(["p11tool", "--provider", SOFTHSM_MODULE, "--login", "--generate-privkey", "rsa", "--bits", "2048", "--label", "nosign", "--id", "0d", "--mark-decrypt", `pkcs11:token=${token.label}`], { env: { ...token.env(), GNUTLS_PIN: token.pin } });
        assert.match(tokenKeyProblem(token.uri("nosign"))!, /may not sign/);
        const esl = path.join(work, "db.esl");
        const err = await signSignatureList({ variable: "db", eslFile: esl, signerKey: token.uri("nosign"), signerCert: signer.certificate, ownerGuid: "11111111-2222-4333-8444-555555555555", timestamp: "2025-01-01 00:00:00", authFile: path.join(work, "nosign.auth") }).catch((e) => e);
        assert.match(String(err?.message), /sign-efi-sig-list could not sign db/);
        assert.ok(!fs.existsSync(path.join(work, "nosign.auth")), "no unsigned .auth is left");
    });
});

import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { createKeyMaterial, deriveSignatureFiles, KEY_ROLES, AUTH_SIGNER, TPM_PCR_KEY_FILE } from "../../../provider/toolkit/keys/secure-boot-keyset";
import { tempDir } from "../../helpers/engine";
import { authVerifies, certificatesInEsl, makeCertificate, opensslKeyMatchesCert } from "../../helpers/pki";

describe("secure boot key set (openssl + efitools)", function () {
    this.timeout(120000);
    let dir: string;
    let work: string;
    let summary: Awaited<ReturnType<typeof deriveSignatureFiles>>;
    const timestamp = "2026-01-02 03:04:05";

    before(async () => {
        dir = tempDir("keyset");
        work = tempDir("keyset-verify");
        await createKeyMaterial(dir, { kind: "generate", name: "Acme Corp", keySize: 2048, validityDays: 3650 });
        summary = await deriveSignatureFiles(dir, dir, { authTimestamp: "2026-01-02T03:04:05Z" });
    });

    it("writes auroraboot genkey's file names, private keys 0600", () => {
        const expected = [...KEY_ROLES.flatMap((r) => ["key", "pem", "der", "esl", "auth"].map((e) => `${r}.${e}`)), TPM_PCR_KEY_FILE].sort();
        assert.deepStrictEqual(fs.readdirSync(dir).sort(), expected);
        for (const f of [...KEY_ROLES.map((r) => `${r}.key`), TPM_PCR_KEY_FILE]) {
            assert.strictEqual(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
        }
    });

    it("makes self-signed CA certificates that openssl parses, CN=<name>-<role>, each matching its key", async () => {
        for (const role of KEY_ROLES) {
            const pem = path.join(dir, `${role}.pem`);
            const text = (await run(["openssl", "x509", "-in", pem, "-noout", "-subject", "-issuer", "-ext", "basicConstraints"])).stdout;
            assert.match(text, new RegExp(`subject=CN = Acme Corp-${role}`));
            assert.match(text, new RegExp(`issuer=CN = Acme Corp-${role}`));
            assert.match(text, /CA:TRUE/);
            assert.ok(await opensslKeyMatchesCert(path.join(dir, `${role}.key`), pem), `${role}.key matches ${role}.pem`);
            const fingerprint = async (args: string[]) => (await run(["openssl", "x509", ...args, "-noout", "-fingerprint", "-sha256"])).stdout;
            assert.strictEqual(await fingerprint(["-inform", "DER", "-in", path.join(dir, `${role}.der`)]), await fingerprint(["-in", pem]));
            assert.strictEqual(summary.certificates[role].sha256Fingerprint, (await fingerprint(["-in", pem])).split("=")[1].trim().replace(/:/g, "").toLowerCase());
            assert.strictEqual(summary.certificates[role].notAfter.slice(0, 4), String(new Date().getUTCFullYear() + 10));
        }
        const bits = (await run(["openssl", "pkey", "-in", path.join(dir, "db.key"), "-noout", "-text"])).stdout;
        assert.match(bits, /2048 bit/);
    });

    it("puts each certificate into its .esl (sig-list-to-certs returns it)", async () => {
        for (const role of KEY_ROLES) {
            const certs = await certificatesInEsl(path.join(dir, `${role}.esl`), work);
            assert.strictEqual(certs.length, 1);
            assert.ok(certs[0].equals(fs.readFileSync(path.join(dir, `${role}.der`))), `${role}.esl holds ${role}.der`);
        }
    });

    it("signs PK and KEK with PK and db with KEK; each .auth fails against another signer", async () => {
        for (const role of KEY_ROLES) {
            const signer = path.join(dir, `${AUTH_SIGNER[role]}.pem`);
            const other = path.join(dir, `${AUTH_SIGNER[role] === "PK" ? "db" : "PK"}.pem`);
            const auth = path.join(dir, `${role}.auth`);
            assert.ok(await authVerifies(auth, role, summary.ownerGuid, timestamp, signer, work), `${role}.auth verifies with ${AUTH_SIGNER[role]}`);
            assert.ok(!(await authVerifies(auth, role, summary.ownerGuid, timestamp, other, work)), `${role}.auth must not verify with another cert`);
        }
    });

    it("re-derives byte-identical .esl/.auth from the same keys (fixed timestamp, derived owner GUID)", async () => {
        const again = tempDir("keyset-again");
        const second = await deriveSignatureFiles(dir, again, { authTimestamp: "2026-01-02T03:04:05Z" });
        assert.strictEqual(second.ownerGuid, summary.ownerGuid);
        for (const role of KEY_ROLES) {
            for (const ext of ["der", "esl", "auth"]) {
                assert.ok(fs.readFileSync(path.join(dir, `${role}.${ext}`)).equals(fs.readFileSync(path.join(again, `${role}.${ext}`))), `${role}.${ext}`);
            }
        }
    });

    it("defaults the .auth timestamp to PK's notBefore, so reruns are identical without setting it", async () => {
        const a = tempDir("keyset-ts-a");
        const b = tempDir("keyset-ts-b");
        const first = await deriveSignatureFiles(dir, a, {});
        await deriveSignatureFiles(dir, b, {});
        assert.strictEqual(first.authTimestamp, summary.certificates.PK.notBefore.replace(/\.\d+Z$/, "Z"));
        assert.ok(fs.readFileSync(path.join(a, "db.auth")).equals(fs.readFileSync(path.join(b, "db.auth"))));
    });

    it("appends extra signature lists to KEK and db and says which are included", async () => {
        const vendor = await makeCertificate(work, "Vendor UEFI CA 2023");
        const vendorEsl = path.join(work, "vendor.esl");
        await run(["cert-to-efi-sig-list", "-g", "77fa9abd-0359-4d32-bd60-28f4e78f784b", vendor.certificate, vendorEsl]);
        const out = tempDir("keyset-extra");
        const s = await deriveSignatureFiles(dir, out, { extraSignatureLists: { db: [vendorEsl] } });
        const certs = await certificatesInEsl(path.join(out, "db.esl"), work);
        assert.strictEqual(certs.length, 2);
        assert.strictEqual(s.signatureLists.db.length, 2);
        assert.match(s.signatureLists.db[1], /CN=Vendor UEFI CA 2023 \(owner 77fa9abd-0359-4d32-bd60-28f4e78f784b\)/);
        assert.match(s.signatureLists.db[0], /CN=Acme Corp-db .*\[own\]/);
        assert.strictEqual(s.signatureLists.KEK.length, 1);
        assert.ok(await authVerifies(path.join(out, "db.auth"), "db", s.ownerGuid, s.authTimestamp.replace("T", " ").replace("Z", ""), path.join(dir, "KEK.pem"), work));
    });

    it("imports existing pairs and refuses a key that does not match its certificate", async () => {
        const a = await makeCertificate(work, "imported-a");
        const b = await makeCertificate(work, "imported-b");
        const good = tempDir("keyset-import");
        await createKeyMaterial(good, { kind: "import", pairs: { PK: a, KEK: a, db: b } });
        assert.ok(fs.readFileSync(path.join(good, "db.key")).equals(fs.readFileSync(b.key)));
        const bad = tempDir("keyset-import-bad");
        await assert.rejects(
            createKeyMaterial(bad, { kind: "import", pairs: { PK: a, KEK: { key: a.key, certificate: b.certificate }, db: b } }),
            /KEK: the key .* does not match the certificate/,
        );
        assert.deepStrictEqual(fs.readdirSync(bad), []);
    });
});

// Independent checks of Secure Boot files with openssl and efitools, for the tests.
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";

/** A throwaway self-signed RSA pair (not made by the code under test). */
export async function makeCertificate(dir: string, name: string, bits = 2048): Promise<{ key: string; certificate: string }> {
    const key = path.join(dir, `${name}.key`);
    const certificate = path.join(dir, `${name}.crt`);
    await run(["openssl", "req", "-new", "-x509", "-newkey", `rsa:${bits}`, "-nodes", "-sha256", "-days", "30", "-subj", `/CN=${name}/`, "-keyout", key, "-out", certificate], {
        env: { OPENSSL_CONF: "/dev/null" },
    });
    return { key, certificate };
}

function derLength(n: number): Buffer {
    if (n < 0x80) return Buffer.from([n]);
    const bytes: number[] = [];
    for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
    return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** UEFI stores a bare PKCS#7 SignedData; openssl wants it inside a ContentInfo. */
export function wrapSignedData(signedData: Buffer): Buffer {
    const oid = Buffer.from("06092a864886f70d010702", "hex"); // 1.2.840.113549.1.7.2 signedData
    const explicit = Buffer.concat([Buffer.from([0xa0]), derLength(signedData.length), signedData]);
    const body = Buffer.concat([oid, explicit]);
    return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

/** Splits an .auth file: EFI_TIME (16) | WIN_CERTIFICATE_UEFI_GUID (24 + PKCS#7) | ESL. */
export function splitAuth(auth: Buffer): { timestamp: Buffer; signedData: Buffer; esl: Buffer } {
    const dwLength = auth.readUInt32LE(16);
    return { timestamp: auth.subarray(0, 16), signedData: auth.subarray(16 + 24, 16 + dwLength), esl: auth.subarray(16 + dwLength) };
}

/**
 * Verifies the .auth's signature against `signerCert` with openssl cms. The signed bytes are rebuilt by
 * efitools (`sign-efi-sig-list -o`), independently of the code under test. Returns true if it verifies.
 */
export async function authVerifies(authFile: string, variable: string, ownerGuid: string, timestamp: string, signerCert: string, work: string): Promise<boolean> {
    const { signedData, esl } = splitAuth(fs.readFileSync(authFile));
    const eslFile = path.join(work, `${variable}.verify.esl`);
    const bundle = path.join(work, `${variable}.verify.bundle`);
    const p7 = path.join(work, `${variable}.verify.p7`);
    fs.writeFileSync(eslFile, esl);
    fs.writeFileSync(p7, wrapSignedData(signedData));
    await run(["sign-efi-sig-list", "-o", "-t", timestamp, "-g", ownerGuid, variable, eslFile, bundle], { env: { TZ: "UTC" } });
    try {
        await run(["openssl", "cms", "-verify", "-inform", "DER", "-in", p7, "-binary", "-content", bundle, "-CAfile", signerCert, "-purpose", "any", "-out", "/dev/null"]);
        return true;
    } catch {
        return false;
    }
}

/** The certificates efitools' sig-list-to-certs finds in an .esl, as DER buffers. */
export async function certificatesInEsl(eslFile: string, work: string): Promise<Buffer[]> {
    const prefix = path.join(work, path.basename(eslFile, ".esl") + "-cert");
    await run(["sig-list-to-certs", eslFile, prefix]);
    return fs
        .readdirSync(work)
        .filter((f) => f.startsWith(path.basename(prefix) + "-") && f.endsWith(".der"))
        .sort((a, b) => parseInt(a.split("-").pop()!) - parseInt(b.split("-").pop()!))
        .map((f) => fs.readFileSync(path.join(work, f)));
}

/** Public key of a private key file and of a certificate, both via openssl. */
export async function opensslKeyMatchesCert(keyFile: string, certFile: string): Promise<boolean> {
    const fromKey = await run(["openssl", "pkey", "-in", keyFile, "-pubout"]);
    const fromCert = await run(["openssl", "x509", "-in", certFile, "-noout", "-pubkey"]);
    return fromKey.stdout === fromCert.stdout;
}

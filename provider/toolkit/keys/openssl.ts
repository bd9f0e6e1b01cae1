// openssl steps for the Secure Boot key hierarchy. openssl runs with OPENSSL_CONF=/dev/null so the
// host's configuration cannot change what is generated; the v3 extensions are given explicitly.
import * as fs from "fs";
import { X509Certificate, createPublicKey } from "crypto";
import { run } from "../run";
import { sha256Hex } from "../files";
import { memoByFiles } from "../file-memo";
import { ENGINE_KEY_ARGS, explainTokenFailure, isPkcs11Uri, tokenPublicKey, withPin } from "./pkcs11";

/** Keeps the host's openssl.cnf from changing what is generated, signed or verified. */
export const OPENSSL_ENV = { OPENSSL_CONF: "/dev/null" };

/**
 * Writes `certs` as one PEM bundle, the form sbverify --cert and openssl -CAfile read (they take no DER),
 * and returns `file`.
 */
export function writePemBundle(certs: X509Certificate[], file: string): string {
    fs.writeFileSync(file, certs.map((c) => c.toString()).join(""));
    return file;
}

export interface CertificateRequest {
    commonName: string;
    keySize: number;
    validityDays: number;
}

/** Writes a new RSA private key (PKCS#8 PEM, mode 0600) and its self-signed CA certificate. */
export async function generateKeyAndCertificate(keyFile: string, certFile: string, req: CertificateRequest): Promise<void> {
    await generateRsaKey(keyFile, req.keySize);
    await run(
        [
            "openssl", "req", "-new", "-x509",
            "-key", keyFile,
            "-sha256",
            "-days", String(req.validityDays),
            "-subj", `/CN=${escapeDnValue(req.commonName)}/`,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "subjectKeyIdentifier=hash",
            "-addext", "authorityKeyIdentifier=keyid:always",
            "-out", certFile,
        ],
        { env: OPENSSL_ENV },
    );
}

/** A self-signed CA certificate for a key inside a PKCS#11 token (the token signs it). */
export async function tokenCertificate(keyUri: string, certFile: string, req: CertificateRequest): Promise<void> {
    await withPin(keyUri, (key, env) =>
        run(["openssl", "req", "-new", "-x509", ...ENGINE_KEY_ARGS, "-key", key, "-sha256", "-days", String(req.validityDays), "-subj", `/CN=${escapeDnValue(req.commonName)}/`,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "subjectKeyIdentifier=hash", "-addext", "authorityKeyIdentifier=keyid:always", "-out", certFile], { env }).catch((e) => {
            throw explainTokenFailure(keyUri, e);
        }),
    );
}

export async function generateRsaKey(keyFile: string, keySize: number): Promise<void> {
    // Created empty with 0600 first so the key is never readable by others, not even briefly.
    fs.writeFileSync(keyFile, "", { mode: 0o600 });
    await run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", `rsa_keygen_bits:${keySize}`, "-out", keyFile], { env: OPENSSL_ENV });
    fs.chmodSync(keyFile, 0o600);
}

export interface CertificateInfo {
    subject: string;
    issuer: string;
    notBefore: string;
    notAfter: string;
    sha256Fingerprint: string;
    pem: string;
    der: Buffer;
}

/** Parses a PEM or DER certificate file. */
export const readCertificate: (file: string) => CertificateInfo = memoByFiles(parseCertificateFile);

function parseCertificateFile(file: string): CertificateInfo {
    const raw = fs.readFileSync(file);
    const cert = new X509Certificate(raw);
    const der = cert.raw;
    return {
        subject: cert.subject,
        issuer: cert.issuer,
        notBefore: new Date(cert.validFrom).toISOString(),
        notAfter: new Date(cert.validTo).toISOString(),
        sha256Fingerprint: sha256Hex(der),
        pem: cert.toString(),
        der,
    };
}

/** True when the private key in `keyFile` (or a token key's URI) is the one whose public half `certFile` certifies. */
export function keyMatchesCertificate(keyFile: string, certFile: string): boolean {
    if (!isPkcs11Uri(keyFile)) return fileKeyMatchesCertificate(keyFile, certFile);
    const cert = new X509Certificate(fs.readFileSync(certFile));
    return tokenPublicKey(keyFile).export({ type: "spki", format: "der" }).equals(cert.publicKey.export({ type: "spki", format: "der" }));
}

const fileKeyMatchesCertificate: (keyFile: string, certFile: string) => boolean = memoByFiles(publicHalvesEqual);

function publicHalvesEqual(keyFile: string, certFile: string): boolean {
    const cert = new X509Certificate(fs.readFileSync(certFile));
    const publicOfKey = createPublicKey(fs.readFileSync(keyFile)).export({ type: "spki", format: "der" });
    const publicOfCert = cert.publicKey.export({ type: "spki", format: "der" });
    return Buffer.compare(publicOfKey, publicOfCert) === 0;
}

/** SubjectPublicKeyInfo PEM of a private key (the form systemd puts in a UKI's .pcrpkey). */
export function publicKeyPem(keyFile: string): string {
    const key = isPkcs11Uri(keyFile) ? tokenPublicKey(keyFile) : createPublicKey(fs.readFileSync(keyFile));
    return key.export({ type: "spki", format: "pem" }).toString();
}

/** Characters that are special in openssl's -subj syntax are backslash-escaped. */
function escapeDnValue(value: string): string {
    return value.replace(/[\\/,=+<>#;"]/g, (c) => `\\${c}`);
}

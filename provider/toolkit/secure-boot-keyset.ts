// The Secure Boot key hierarchy in auroraboot genkey's file layout, as build steps over a folder:
// make or import the key pairs, then derive .der/.esl/.auth from them.
import * as fs from "fs";
import * as path from "path";
import { sha256Hex, sha256File } from "./files";
import { CertificateInfo, generateKeyAndCertificate, generateRsaKey, keyMatchesCertificate, publicKeyPem, readCertificate } from "./openssl";
import { certificateToSignatureList, signSignatureList } from "./efitools";
import { describeSignatureLists, parseSignatureLists } from "./efi-signature-list";

export const KEY_ROLES = ["PK", "KEK", "db"] as const;
export type KeyRole = (typeof KEY_ROLES)[number];
/** Who signs each variable's .auth: PK signs itself and KEK; KEK signs db (UEFI 2.10 §32.3). */
export const AUTH_SIGNER: Record<KeyRole, KeyRole> = { PK: "PK", KEK: "PK", db: "KEK" };
export const TPM_PCR_KEY_FILE = "tpm2-pcr-private.pem";
const TPM_PCR_KEY_SIZE = 2048; // what systemd-measure and auroraboot use

export interface KeyPairPaths {
    key: string;
    certificate: string;
}

export type KeySource =
    | { kind: "generate"; name: string; keySize: number; validityDays: number }
    | { kind: "import"; pairs: Record<KeyRole, KeyPairPaths>; tpmPcrKey?: string };

export interface DerivedFilesOptions {
    ownerGuid?: string;
    /** ISO-8601 UTC, e.g. 2026-01-01T00:00:00Z; default: PK's notBefore. */
    authTimestamp?: string;
    extraSignatureLists?: Partial<Record<KeyRole, string[]>>;
}

export class KeySetError extends Error {
    readonly code = "KEYSET";
}

export function keyFileNames(role: KeyRole) {
    return { key: `${role}.key`, pem: `${role}.pem`, der: `${role}.der`, esl: `${role}.esl`, auth: `${role}.auth` };
}

/** Every file name a key folder holds; the private keys first. */
export function allKeySetFiles(): string[] {
    return [
        ...KEY_ROLES.map((r) => keyFileNames(r).key),
        TPM_PCR_KEY_FILE,
        ...KEY_ROLES.flatMap((r) => [keyFileNames(r).pem, keyFileNames(r).der, keyFileNames(r).esl, keyFileNames(r).auth]),
    ];
}

/** Step 1: writes {PK,KEK,db}.{key,pem} and tpm2-pcr-private.pem into `dir`. */
export async function createKeyMaterial(dir: string, source: KeySource): Promise<void> {
    if (source.kind === "generate") {
        // The three pairs are independent; generating them in parallel uses both cores.
        await Promise.all(
            KEY_ROLES.map((role) =>
                generateKeyAndCertificate(path.join(dir, `${role}.key`), path.join(dir, `${role}.pem`), {
                    commonName: `${source.name}-${role}`,
                    keySize: source.keySize,
                    validityDays: source.validityDays,
                }),
            ).concat(generateRsaKey(path.join(dir, TPM_PCR_KEY_FILE), TPM_PCR_KEY_SIZE)),
        );
        return;
    }
    const problems = checkImport(source);
    if (problems.length > 0) throw new KeySetError(`cannot import keys:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    for (const role of KEY_ROLES) {
        copyPrivate(source.pairs[role].key, path.join(dir, `${role}.key`));
        fs.writeFileSync(path.join(dir, `${role}.pem`), readCertificate(source.pairs[role].certificate).pem, { mode: 0o644 });
    }
    if (source.tpmPcrKey) copyPrivate(source.tpmPcrKey, path.join(dir, TPM_PCR_KEY_FILE));
    else await generateRsaKey(path.join(dir, TPM_PCR_KEY_FILE), TPM_PCR_KEY_SIZE);
}

/** Every reason an import cannot proceed, so the user sees them all at once. */
export function checkImport(source: Extract<KeySource, { kind: "import" }>): string[] {
    const problems: string[] = [];
    for (const role of KEY_ROLES) {
        const { key, certificate } = source.pairs[role];
        const missing = [key, certificate].filter((f) => !fs.existsSync(f));
        if (missing.length > 0) {
            problems.push(`${role}: ${missing.join(" and ")} ${missing.length > 1 ? "do" : "does"} not exist`);
            continue;
        }
        try {
            readCertificate(certificate);
        } catch {
            problems.push(`${role}: ${certificate} is not an X.509 certificate (PEM or DER)`);
            continue;
        }
        try {
            if (!keyMatchesCertificate(key, certificate)) problems.push(`${role}: the key ${key} does not match the certificate ${certificate}`);
        } catch {
            problems.push(`${role}: ${key} is not a PEM private key`);
        }
    }
    if (source.tpmPcrKey && !fs.existsSync(source.tpmPcrKey)) problems.push(`tpmPcrKey: ${source.tpmPcrKey} does not exist`);
    return problems;
}

/** Step 2: writes {PK,KEK,db}.{der,esl,auth} from the pairs in `keyDir` into `outDir`. Deterministic. */
export async function deriveSignatureFiles(keyDir: string, outDir: string, opts: DerivedFilesOptions): Promise<KeySetSummary> {
    const certs = Object.fromEntries(KEY_ROLES.map((r) => [r, readCertificate(path.join(keyDir, `${r}.pem`))])) as Record<KeyRole, CertificateInfo>;
    const ownerGuid = (opts.ownerGuid ?? ownerGuidFor(certs.PK.sha256Fingerprint)).toLowerCase();
    const authTimestamp = opts.authTimestamp ?? certs.PK.notBefore.replace(/\.\d+Z$/, "Z");
    const extras = readExtraLists(opts.extraSignatureLists ?? {});
    const signatureLists: Record<string, string[]> = {};
    for (const role of KEY_ROLES) {
        const names = keyFileNames(role);
        fs.writeFileSync(path.join(outDir, names.der), certs[role].der, { mode: 0o644 });
        const ownEsl = path.join(outDir, `${role}.own.esl`);
        await certificateToSignatureList(path.join(keyDir, names.pem), ownerGuid, ownEsl);
        const esl = Buffer.concat([fs.readFileSync(ownEsl), ...extras[role].map((e) => e.data)]);
        fs.rmSync(ownEsl);
        fs.writeFileSync(path.join(outDir, names.esl), esl, { mode: 0o644 });
        signatureLists[role] = describeSignatureLists(parseSignatureLists(esl)).map((line, i) =>
            i === 0 ? `${line} [own]` : line,
        );
        const signer = AUTH_SIGNER[role];
        await signSignatureList({
            variable: role,
            eslFile: path.join(outDir, names.esl),
            signerKey: path.join(keyDir, `${signer}.key`),
            signerCert: path.join(keyDir, `${signer}.pem`),
            ownerGuid,
            timestamp: authTimestamp.replace("T", " ").replace("Z", ""),
            authFile: path.join(outDir, names.auth),
        });
        fs.chmodSync(path.join(outDir, names.auth), 0o644);
    }
    return {
        certificates: certs,
        ownerGuid,
        authTimestamp,
        signatureLists,
        tpmPcrPublicKeyPem: publicKeyPem(path.join(keyDir, TPM_PCR_KEY_FILE)),
    };
}

export interface KeySetSummary {
    certificates: Record<KeyRole, CertificateInfo>;
    ownerGuid: string;
    authTimestamp: string;
    signatureLists: Record<string, string[]>;
    tpmPcrPublicKeyPem: string;
}

/** A stable owner GUID for a key set: the PK fingerprint shaped as a version-4 UUID. */
export function ownerGuidFor(pkFingerprint: string): string {
    const h = sha256Hex(`kairos-secure-boot-owner:${pkFingerprint}`);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function readExtraLists(extra: Partial<Record<KeyRole, string[]>>): Record<KeyRole, { file: string; data: Buffer }[]> {
    const problems: string[] = [];
    const out = { PK: [], KEK: [], db: [] } as Record<KeyRole, { file: string; data: Buffer }[]>;
    for (const role of KEY_ROLES) {
        for (const file of extra[role] ?? []) {
            if (!fs.existsSync(file)) {
                problems.push(`extraSignatureLists.${role}: ${file} does not exist`);
                continue;
            }
            const data = fs.readFileSync(file);
            try {
                parseSignatureLists(data);
            } catch (e) {
                problems.push(`extraSignatureLists.${role}: ${file} is not an EFI signature list (${(e as Error).message})`);
                continue;
            }
            out[role].push({ file, data });
        }
    }
    if (problems.length > 0) throw new KeySetError(`cannot add signature lists:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    return out;
}

function copyPrivate(from: string, to: string): void {
    fs.writeFileSync(to, "", { mode: 0o600 });
    fs.writeFileSync(to, fs.readFileSync(from), { mode: 0o600 });
    fs.chmodSync(to, 0o600);
}

/**
 * A digest of each key-set file present in `dir`, by file name. Private keys are identified by their
 * public half ("pub:<sha256>"), so not even a digest of private key bytes reaches the state.
 */
export async function digestKeySet(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const name of allKeySetFiles()) {
        const file = path.join(dir, name);
        if (!fs.existsSync(file)) continue;
        out[name] = isPrivateKeyFile(name) ? privateKeyDigest(file) : await sha256File(file);
    }
    return out;
}

export function isPrivateKeyFile(name: string): boolean {
    return name.endsWith(".key") || name === TPM_PCR_KEY_FILE;
}

function privateKeyDigest(file: string): string {
    try {
        return `pub:${sha256Hex(publicKeyPem(file))}`;
    } catch {
        return "unreadable";
    }
}

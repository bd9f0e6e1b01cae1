// The Secure Boot key hierarchy in auroraboot genkey's file layout, as build steps over a folder:
// make or import the key pairs, then derive .der/.esl/.auth from them.
import * as fs from "fs";
import { generateTokenKey, isPinProblem, isPkcs11Uri, parsePkcs11Uri, tokenKeyProblem, writeTokenCertificate } from "./pkcs11";
import * as path from "path";
import { sha256Hex, sha256File } from "../files";
import { CertificateInfo, generateKeyAndCertificate, generateRsaKey, keyMatchesCertificate, publicKeyPem, readCertificate, tokenCertificate } from "./openssl";
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
    /**
     * Keys made inside a PKCS#11 token (non-extractable), labelled <name>-PK, -KEK, -db, -tpm2-pcr; a
     * rotation n > 0 makes new objects <name>-rotation<n>-PK … (the retired ones stay in the token).
     */
    | { kind: "token"; tokenUri: string; name: string; keySize: number; validityDays: number; rotation: number }
    /** Key files, or keys already in a token (`pkcs11:` URIs), with their certificates. */
    | { kind: "import"; pairs: Record<KeyRole, KeyPairPaths>; tpmPcrKey?: string };

/** The token keys of a key set, by role ("tpm": the PCR key); a role not listed is a file in the key folder. */
export type KeyRefs = Partial<Record<KeyRole | "tpm", string>>;

/** Where each key of `source` lives when it is in a token. */
export function tokenKeyRefs(source: KeySource): KeyRefs {
    if (source.kind === "token") {
        const token = parsePkcs11Uri(source.tokenUri).token!;
        const at = (role: string) => `pkcs11:token=${encodeURIComponent(token)};object=${encodeURIComponent(`${source.name}${source.rotation > 0 ? `-rotation${source.rotation}` : ""}-${role}`)}`;
        return { ...Object.fromEntries(KEY_ROLES.map((r) => [r, at(r)])), tpm: at("tpm2-pcr") };
    }
    if (source.kind === "generate") return {};
    const refs: KeyRefs = Object.fromEntries(KEY_ROLES.filter((r) => isPkcs11Uri(source.pairs[r].key)).map((r) => [r, source.pairs[r].key]));
    if (source.tpmPcrKey && isPkcs11Uri(source.tpmPcrKey)) refs.tpm = source.tpmPcrKey;
    return refs;
}

export interface DerivedFilesOptions {
    ownerGuid?: string;
    /** ISO-8601 UTC, e.g. 2026-01-01T00:00:00Z; default: PK's notBefore. */
    authTimestamp?: string;
    extraSignatureLists?: Partial<Record<KeyRole, string[]>>;
    /** Keys that are in a token: the .auth files are signed there. */
    keyRefs?: KeyRefs;
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
    if (source.kind === "token") {
        // One at a time: a token serialises its sessions anyway, and a failure leaves fewer objects.
        const refs = tokenKeyRefs(source);
        for (const [i, role] of KEY_ROLES.entries()) {
            const label = parsePkcs11Uri(refs[role]!).object!;
            const id = ((source.rotation % 200) + 1).toString(16).padStart(2, "0") + (0x10 + i).toString(16);
            await generateTokenKey(source.tokenUri, label, id, source.keySize);
            await tokenCertificate(refs[role]!, path.join(dir, `${role}.pem`), { commonName: `${source.name}-${role}`, keySize: source.keySize, validityDays: source.validityDays });
            const der = path.join(dir, `.${role}.der`);
            fs.writeFileSync(der, readCertificate(path.join(dir, `${role}.pem`)).der);
            await writeTokenCertificate(source.tokenUri, label, id, der);
            fs.rmSync(der);
        }
        await generateTokenKey(source.tokenUri, parsePkcs11Uri(refs.tpm!).object!, ((source.rotation % 200) + 1).toString(16).padStart(2, "0") + "1f", TPM_PCR_KEY_SIZE);
        return;
    }
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
        // A token key stays in its token; only a key file is copied into the key folder.
        if (!isPkcs11Uri(source.pairs[role].key)) copyPrivate(source.pairs[role].key, path.join(dir, `${role}.key`));
        fs.writeFileSync(path.join(dir, `${role}.pem`), readCertificate(source.pairs[role].certificate).pem, { mode: 0o644 });
    }
    if (source.tpmPcrKey && isPkcs11Uri(source.tpmPcrKey)) return;
    if (source.tpmPcrKey) copyPrivate(source.tpmPcrKey, path.join(dir, TPM_PCR_KEY_FILE));
    else await generateRsaKey(path.join(dir, TPM_PCR_KEY_FILE), TPM_PCR_KEY_SIZE);
}

/** Every reason an import cannot proceed, so the user sees them all at once. */
export function checkImport(source: Extract<KeySource, { kind: "import" }>): string[] {
    const problems: string[] = [];
    for (const role of KEY_ROLES) {
        const { key, certificate } = source.pairs[role];
        if (isPkcs11Uri(key)) {
            const problem = tokenKeyProblem(key);
            if (problem && isPinProblem(problem)) return [problem]; // once: every further try counts towards the token's lockout
            if (problem) {
                problems.push(`${role}: ${problem}`);
                continue;
            }
        }
        const missing = [key, certificate].filter((f) => !isPkcs11Uri(f) && !fs.existsSync(f));
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
    if (source.tpmPcrKey && isPkcs11Uri(source.tpmPcrKey)) {
        const problem = tokenKeyProblem(source.tpmPcrKey);
        if (problem) problems.push(`tpmPcrKey: ${problem}`);
    } else if (source.tpmPcrKey && !fs.existsSync(source.tpmPcrKey)) problems.push(`tpmPcrKey: ${source.tpmPcrKey} does not exist`);
    else if (!source.tpmPcrKey && KEY_ROLES.some((r) => isPkcs11Uri(source.pairs[r].key))) {
        problems.push("tpmPcrKey: the Secure Boot keys are in a token, so give the TPM PCR key as a token key too (import.tpmPcrKey); otherwise a PCR key file would be generated on this machine's disk");
    }
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
            signerKey: opts.keyRefs?.[signer] ?? path.join(keyDir, `${signer}.key`),
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
        tpmPcrPublicKeyPem: publicKeyPem(opts.keyRefs?.tpm ?? path.join(keyDir, TPM_PCR_KEY_FILE)),
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

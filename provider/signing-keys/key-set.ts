// What SigningKeys records about a key set and where its files come from: the checked inputs and
// outputs, the import sources, the key-set stamp and the key-identity comparison.
import * as fs from "fs";
import * as path from "path";
import { BuildReport } from "../build-log";
import { canonicalJson, sha256File, sha256Hex } from "../toolkit/files";
import {
    KEY_ROLES, KeyPairPaths, KeyRole, KeySource, TPM_PCR_KEY_FILE, allKeySetFiles, isPrivateKeyFile, keyFileNames, tokenKeyRefs,
} from "../toolkit/keys/secure-boot-keyset";
import { isPkcs11Uri } from "../toolkit/keys/pkcs11";
import { publicKeyPem } from "../toolkit/keys/openssl";
import { ArtifactLayout } from "../store/stored-artifacts";

export const BUILDER_VERSION = "signing-keys/1";
/** Files that hold or certify key material: never rewritten, only created or retired. */
export const KEY_MATERIAL_FILES = [...KEY_ROLES.flatMap((r) => [`${r}.key`, `${r}.pem`]), TPM_PCR_KEY_FILE];

export interface CheckedInputs {
    name: string;
    outputDir: string;
    keySize: number;
    validityDays: number;
    import?: { dir?: string; PK?: KeyPairPaths; KEK?: KeyPairPaths; db?: KeyPairPaths; tpmPcrKey?: string };
    token?: string;
    extraSignatureLists?: { KEK?: string[]; db?: string[] };
    authTimestamp?: string;
    ownerGuid?: string;
    rotation: number;
    deleteOnDestroy: boolean;
    keyMaterialHash: string;
    /** The named parts of the input hash; preview shows which one changed. */
    hashParts: { keys: string; signatureLists: string; authentication: string; builder: string };
    inputHash: string;
}

export interface Outputs extends CheckedInputs {
    keyDir: string;
    keySource: "generated" | "generated in token" | "imported" | "adopted";
    files: Record<KeyRole, ReturnType<typeof keyFileNames>>;
    tpmPcrKeyFile: string;
    tpmPcrPublicKeyPem: string;
    certificates: Record<KeyRole, { pem: string; sha256Fingerprint: string; subject: string; notBefore: string; notAfter: string }>;
    signatureLists: Record<string, string[]>;
    ownerGuid: string;
    authTimestamp: string;
    fileDigests: Record<string, string>;
    /** Lists an adopted set's .esl holds beyond its own certificate, which no input names (by role). */
    adoptedExtraLists: Record<string, number>;
    drift: string[];
    lastBuild: BuildReport;
}

/** The key folder: where the outputs say the keys are, or (inputs, before a first build) where they go. */
export function keyFolder(p: Record<string, any>): string {
    return p.keyDir ?? p.outputDir;
}

/** What identifies the keys themselves; a change here means new keys, which needs a rotation. */
export const KEY_IDENTITY_FIELDS = ["outputDir", "name", "keySize", "validityDays", "import", "token"] as const;

/** The key folder's recorded files; only the public ones (certificates, .esl, .auth) are ever stored. */
export const signingKeysLayout: ArtifactLayout = {
    root: (p) => keyFolder(p),
    placement: () => "files",
    localFiles: (outs) => Object.keys(outs.fileDigests ?? {}).map((f) => path.join(outs.keyDir, f)),
    storedFiles: (outs) => Object.keys(outs.fileDigests ?? {}).filter((f) => !isPrivateKeyFile(f)).map((f) => path.join(outs.keyDir, f)),
    label: (p) => `SigningKeys ${p.name}`,
};

/** Key-folder file name -> the import source it was copied from. */
export function importedKeyFiles(imp: NonNullable<CheckedInputs["import"]>): Record<string, string> {
    const pairs = importPairs(imp);
    const tpm = importTpmKey(imp);
    return { ...Object.fromEntries(KEY_ROLES.map((r) => [keyFileNames(r).key, pairs[r].key])), ...(tpm ? { [TPM_PCR_KEY_FILE]: tpm } : {}) };
}

export function keySource(inputs: CheckedInputs): KeySource {
    if (inputs.token) return { kind: "token", tokenUri: inputs.token, name: inputs.name, keySize: inputs.keySize, validityDays: inputs.validityDays, rotation: inputs.rotation };
    if (!inputs.import) return { kind: "generate", name: inputs.name, keySize: inputs.keySize, validityDays: inputs.validityDays };
    return { kind: "import", pairs: importPairs(inputs.import), tpmPcrKey: importTpmKey(inputs.import) };
}

export function importPairs(imp: NonNullable<CheckedInputs["import"]>): Record<KeyRole, KeyPairPaths> {
    return Object.fromEntries(
        KEY_ROLES.map((r) => [r, imp[r] ?? { key: path.join(imp.dir ?? "", `${r}.key`), certificate: path.join(imp.dir ?? "", `${r}.pem`) }]),
    ) as Record<KeyRole, KeyPairPaths>;
}

function importTpmKey(imp: NonNullable<CheckedInputs["import"]>): string | undefined {
    if (imp.tpmPcrKey) return imp.tpmPcrKey;
    const inDir = imp.dir && path.join(imp.dir, TPM_PCR_KEY_FILE);
    return inDir && fs.existsSync(inDir) ? inDir : undefined;
}

/**
 * Which key material a folder holds, written with the set and moved in with it: lets a create that was
 * killed after its move (before the engine recorded it) recognise its own keys on the next run.
 */
export const KEY_SET_STAMP = ".kairos-keyset.json";

export function stampedWith(dir: string): { keyMaterialHash?: string } | undefined {
    try {
        return JSON.parse(fs.readFileSync(path.join(dir, KEY_SET_STAMP), "utf8"));
    } catch {
        return undefined;
    }
}

export function madeByAnInterruptedCreate(inputs: CheckedInputs): boolean {
    return stampedWith(inputs.outputDir)?.keyMaterialHash === inputs.keyMaterialHash && KEY_MATERIAL_FILES.every((f) => fs.existsSync(path.join(inputs.outputDir, f)));
}

export function keyFilesIn(dir: string): string[] {
    return allKeySetFiles().filter((f) => fs.existsSync(path.join(dir, f)));
}

/** The key-defining inputs that differ; paths count as changed only when they name another place. */
export function changedIdentity(old: Partial<CheckedInputs>, next: CheckedInputs): (typeof KEY_IDENTITY_FIELDS)[number][] {
    const placeOf = (i: Partial<CheckedInputs>, f: (typeof KEY_IDENTITY_FIELDS)[number]) => {
        if (f === "outputDir") return i.outputDir === undefined ? null : path.resolve(i.outputDir);
        if (f === "import") return i.import ? importPlaces(i.import) : null;
        return i[f] ?? null;
    };
    return KEY_IDENTITY_FIELDS.filter((f) => canonicalJson(placeOf(old, f)) !== canonicalJson(placeOf(next, f)));
}

/** An import that names the same files as before (the keys were copied then; the sources are not re-read). */
export function importUnchanged(olds: Partial<CheckedInputs>, inputs: CheckedInputs): boolean {
    return !!olds.import && !!inputs.import && canonicalJson(importPlaces(olds.import)) === canonicalJson(importPlaces(inputs.import));
}

/** The import's files as the places they name ("keys/db.key" and "./keys/db.key" are one import). */
function importPlaces(imp: NonNullable<CheckedInputs["import"]>): Record<string, unknown> {
    const place = (p?: string) => (p === undefined ? null : path.resolve(p));
    return {
        dir: place(imp.dir),
        tpmPcrKey: place(imp.tpmPcrKey),
        ...Object.fromEntries(KEY_ROLES.map((r) => [r, imp[r] ? { key: place(imp[r]!.key), certificate: place(imp[r]!.certificate) } : null])),
    };
}

export async function importDigests(inputs: CheckedInputs): Promise<Record<string, string> | null> {
    if (!inputs.import) return null;
    const pairs = importPairs(inputs.import);
    const files = [...KEY_ROLES.flatMap((r) => [pairs[r].key, pairs[r].certificate]), importTpmKey(inputs.import)].filter((f): f is string => !!f);
    // A token key is known by its public half (the private one cannot be read, and must not be).
    return Object.fromEntries(await Promise.all(files.map(async (f) => [f, isPkcs11Uri(f) ? `pub:${sha256Hex(publicKeyPem(f))}` : await sha256File(f)] as const)));
}

/** The derived-files options with the token keys of this key set. */
export function withKeyRefs(inputs: CheckedInputs) {
    return { ...inputs, keyRefs: tokenKeyRefs(keySource(inputs)) };
}

export async function extraListDigests(inputs: CheckedInputs): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    for (const [role, files] of Object.entries(inputs.extraSignatureLists ?? {})) {
        out[role] = await Promise.all((files ?? []).map(sha256File));
    }
    return out;
}

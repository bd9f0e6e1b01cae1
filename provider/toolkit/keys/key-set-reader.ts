// Reads a Secure Boot key folder someone else made (`auroraboot genkey`'s layout, or an earlier
// SigningKeys) and says what it is: the name and key parameters behind it, the owner GUID and the
// timestamp signed into its .auth files, and the signature lists beyond each role's own certificate
// (genkey appends Microsoft's UEFI CAs to KEK and db by default). Reads only; every problem at once.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { keyMatchesCertificate, publicKeyPem, readCertificate } from "./openssl";
import { describeSignatureLists, parseSignatureLists } from "./efi-signature-list";
import { KEY_ROLES, KeyRole, KeySetSummary, TPM_PCR_KEY_FILE, keyFileNames } from "./secure-boot-keyset";

export class ExistingKeySetError extends Error {}

export interface ExistingKeySet {
    summary: KeySetSummary;
    /** "Acme Corp" for certificates CN=Acme Corp-PK, -KEK, -db. */
    name: string;
    keySize: number;
    validityDays: number;
    /** Signature lists in each role's .esl after its own certificate, by role (only roles that have any). */
    extraLists: Partial<Record<KeyRole, number>>;
}

const DAY_MS = 86_400_000;
/** EFI_VARIABLE_AUTHENTICATION_2: EFI_TIME (16 bytes), then WIN_CERTIFICATE_UEFI_GUID whose dwLength covers itself. */
const EFI_TIME_SIZE = 16;

/** The EFI_TIME at the start of a signed variable update, as `YYYY-MM-DDTHH:MM:SSZ`. */
export function authTimestampOf(auth: Buffer): string {
    if (auth.length < EFI_TIME_SIZE + 8) throw new ExistingKeySetError("too short for an EFI_VARIABLE_AUTHENTICATION_2 header");
    const pad = (n: number, w = 2) => String(n).padStart(w, "0");
    const [year, month, day, hour, minute, second] = [auth.readUInt16LE(0), auth[2], auth[3], auth[4], auth[5], auth[6]];
    return `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:${pad(second)}Z`;
}

/** The signature list data a signed variable update carries (what follows its authentication header). */
export function authPayload(auth: Buffer): Buffer {
    if (auth.length < EFI_TIME_SIZE + 8) throw new ExistingKeySetError("too short for an EFI_VARIABLE_AUTHENTICATION_2 header");
    const certLength = auth.readUInt32LE(EFI_TIME_SIZE);
    if (EFI_TIME_SIZE + certLength > auth.length) {
        throw new ExistingKeySetError(`its WIN_CERTIFICATE claims ${certLength} bytes, past the end of the ${auth.length}-byte file`);
    }
    return auth.subarray(EFI_TIME_SIZE + certLength);
}

export function readExistingKeySet(dir: string): ExistingKeySet {
    const problems: string[] = [];
    const file = (name: string) => path.join(dir, name);
    const needed = [...KEY_ROLES.flatMap((r) => { const n = keyFileNames(r); return [n.key, n.pem, n.esl, n.auth]; }), TPM_PCR_KEY_FILE];
    const missing = needed.filter((n) => !fs.existsSync(file(n)));
    if (missing.length > 0) {
        throw new ExistingKeySetError(`${dir} is not a complete key set: ${missing.join(", ")} missing (auroraboot genkey writes {PK,KEK,db}.{key,pem,der,esl,auth} and ${TPM_PCR_KEY_FILE})`);
    }

    const certificates = Object.fromEntries(KEY_ROLES.map((r) => [r, readCertificate(file(keyFileNames(r).pem))])) as KeySetSummary["certificates"];
    const names = KEY_ROLES.map((r) => new RegExp(`^CN=(.+)-${r}$`).exec(certificates[r].subject.trim())?.[1]);
    const name = names[0];
    if (!name || names.some((n) => n !== name)) {
        problems.push(`the certificates' subjects are not CN=<name>-PK, -KEK, -db of one name: ${KEY_ROLES.map((r) => certificates[r].subject.trim()).join(", ")}`);
    }
    for (const r of KEY_ROLES) {
        if (!keyMatchesCertificate(file(keyFileNames(r).key), file(keyFileNames(r).pem))) problems.push(`${r}.key does not match ${r}.pem`);
    }
    const keySizes = KEY_ROLES.map((r) => crypto.createPrivateKey(fs.readFileSync(file(keyFileNames(r).key))).asymmetricKeyDetails?.modulusLength);
    if (keySizes.some((s) => s !== keySizes[0])) problems.push(`the keys differ in size (${keySizes.join(", ")} bits)`);

    let ownerGuid: string | undefined;
    let authTimestamp: string | undefined;
    const signatureLists: Record<string, string[]> = {};
    const extraLists: ExistingKeySet["extraLists"] = {};
    for (const r of KEY_ROLES) {
        const n = keyFileNames(r);
        const esl = fs.readFileSync(file(n.esl));
        const auth = fs.readFileSync(file(n.auth));
        let lists;
        try {
            lists = parseSignatureLists(esl);
        } catch (e) {
            problems.push(`${n.esl} is not an EFI signature list (${(e as Error).message})`);
            continue;
        }
        const own = lists[0];
        if (!own || own.type !== "x509" || own.entries.length !== 1 || !own.entries[0].data.equals(certificates[r].der)) {
            problems.push(`${n.esl} does not start with ${n.pem}'s certificate`);
            continue;
        }
        ownerGuid ??= own.entries[0].owner;
        if (own.entries[0].owner !== ownerGuid) problems.push(`${n.esl}'s owner GUID ${own.entries[0].owner} differs from PK's ${ownerGuid}`);
        let payload: Buffer;
        try {
            payload = authPayload(auth);
        } catch (e) {
            problems.push(`${n.auth} is not a signed variable update (${(e as Error).message})`);
            continue;
        }
        if (!payload.equals(esl)) problems.push(`${n.auth} does not carry ${n.esl}`);
        const stamp = authTimestampOf(auth);
        authTimestamp ??= stamp;
        if (stamp !== authTimestamp) problems.push(`${n.auth} is timestamped ${stamp}, PK.auth ${authTimestamp}`);
        signatureLists[r] = describeSignatureLists(lists).map((line, i) => (i === 0 ? `${line} [own]` : line));
        if (lists.length > 1) extraLists[r] = lists.length - 1;
    }
    if (problems.length > 0 || !name) throw new ExistingKeySetError(`cannot adopt the key set in ${dir}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    return {
        name,
        keySize: keySizes[0]!,
        validityDays: Math.round((Date.parse(certificates.PK.notAfter) - Date.parse(certificates.PK.notBefore)) / DAY_MS),
        extraLists,
        summary: { certificates, ownerGuid: ownerGuid!, authTimestamp: authTimestamp!, signatureLists, tpmPcrPublicKeyPem: publicKeyPem(file(TPM_PCR_KEY_FILE)) },
    };
}

// What boot media may carry, judged by the keys they enrol. The firmware runs only EFI images whose
// Authenticode signature chains to a certificate in db; Kairos (immucore) merges only extensions whose
// verity signature chains to a certificate in PK, KEK or db (it copies all three to /run/verity.d). So
// a file on the media that fails these checks either does not boot or does not merge, or it is not what
// the media are for at all (a private key handed over as "a UKI" would be published on the ESP). Each
// check here is the one the toolkit runs on what it builds: sbverify for PE images, openssl smime over
// the root hash for extensions; the certificates come out of the enrolled .auth files themselves.
import { X509Certificate } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { authPayload } from "../keys/key-set-reader";
import { parseSignatureLists } from "../keys/efi-signature-list";
import { certificatesOfSignedData } from "./authenticode";
import { readPeSections } from "./pe";
import { checkEfiSignature } from "./uki";
import { writePemBundle } from "../keys/openssl";
import { readVeritySignature, veritySignatureVerifiesWith } from "../sysext/ddi-verify";
import { KEY_ROLES, KeyRole } from "../keys/secure-boot-keyset";

export const ENROLLED_ROLES = KEY_ROLES;
export type EnrolledRole = KeyRole;

export interface EnrolledCertificate {
    role: EnrolledRole;
    certificate: X509Certificate;
}

/** A loader entry is a few hundred bytes of text; anything near this is not one. */
const MAX_LOADER_ENTRY_BYTES = 64 << 10;
/** Bytes looked at for a PEM header before a file is parsed as a PE image. */
const PEM_PROBE_BYTES = 4096;

/**
 * The X.509 certificates each enrolled .auth carries (EFI_VARIABLE_AUTHENTICATION_2, then EFI signature
 * lists), and one problem per file that is not such an update or carries no certificate.
 */
export function enrolledCertificates(auth: Record<EnrolledRole, string>): { certificates: EnrolledCertificate[]; problems: { role: EnrolledRole; reason: string }[] } {
    const certificates: EnrolledCertificate[] = [];
    const problems: { role: EnrolledRole; reason: string }[] = [];
    for (const role of ENROLLED_ROLES) {
        try {
            const lists = parseSignatureLists(authPayload(fs.readFileSync(auth[role])));
            const x509 = lists.filter((l) => l.type === "x509").flatMap((l) => l.entries.map((e) => new X509Certificate(e.data)));
            if (x509.length === 0) problems.push({ role, reason: `${auth[role]} enrols no X.509 certificate, so nothing it enrols could be trusted` });
            certificates.push(...x509.map((certificate) => ({ role, certificate })));
        } catch (e) {
            problems.push({ role, reason: `${auth[role]} is not a signed EFI variable update with signature lists (${(e as Error).message}); give the ${role}.auth a SigningKeys resource wrote` });
        }
    }
    return { certificates, problems };
}

/** "CN=Acme-db" for messages. */
export function subjectOf(cert: X509Certificate | Buffer): string {
    try {
        return (Buffer.isBuffer(cert) ? new X509Certificate(cert) : cert).subject.replace(/\n/g, ", ");
    } catch {
        return "an unreadable certificate";
    }
}

/**
 * A first PEM header in the first bytes of a file that is not a PE image ("-----BEGIN PRIVATE KEY-----"),
 * if any. A PE image (MZ) is left to the PE reader: a UKI carries a PEM public key in .pcrpkey.
 */
function pemHeaderOf(file: string): string | undefined {
    const fd = fs.openSync(file, "r");
    try {
        const head = Buffer.alloc(PEM_PROBE_BYTES);
        const n = fs.readSync(fd, head, 0, head.length, 0);
        if (head.toString("latin1", 0, 2) === "MZ") return undefined;
        return /-----BEGIN [A-Z0-9 ]+-----/.exec(head.subarray(0, n).toString("latin1"))?.[0];
    } finally {
        fs.closeSync(fd);
    }
}

/**
 * Why `file` may not go on the media as an EFI image (UKI or systemd-boot), or undefined when it is a PE
 * image whose Authenticode signature sbverify accepts against one of `db`. `scratch` is a private folder.
 */
export async function efiImageProblem(file: string, db: X509Certificate[], scratch: string): Promise<string | undefined> {
    const pem = pemHeaderOf(file);
    if (pem) return `${file} holds a PEM block (${pem}), not a signed PE image; key material never goes on boot media`;
    let info;
    try {
        info = readPeSections(file);
    } catch (e) {
        return `${file} is ${(e as Error).message.replace(/^.*?: /, "")}; only signed EFI (PE) images go here`;
    }
    if (info.certificateTable.size === 0) return `${file} is not signed (no Authenticode signature); sign it with the db key whose certificate these media enrol`;
    if (db.length === 0) return `${file} cannot be trusted: the enrolled db holds no certificate`;
    const verdict = await checkEfiSignature(file, db.map((c, i) => writePemBundle([c], path.join(scratch, `db-${i}.pem`))));
    if (verdict.ok) return undefined;
    if (verdict.reason === "unsigned") return `${file} is not signed (no Authenticode signature); sign it with the db key whose certificate these media enrol`;
    if (verdict.reason === "hash-mismatch") return `${file}'s Authenticode signature does not match its bytes (changed after signing); sign it again`;
    const signer = authenticodeSigner(file, info.certificateTable);
    return `${file} is signed by ${signer ?? "a certificate it does not carry"}, which is not in the enrolled db (${db.map(subjectOf).join("; ")}); sign it with the db key, or enrol the db that signed it`;
}

/** The subject of the certificate that made the image's (first) Authenticode signature, if readable. */
function authenticodeSigner(file: string, table: { offset: number; size: number }): string | undefined {
    try {
        const fd = fs.openSync(file, "r");
        const buf = Buffer.alloc(table.size);
        try {
            fs.readSync(fd, buf, 0, table.size, table.offset);
        } finally {
            fs.closeSync(fd);
        }
        // WIN_CERTIFICATE: dwLength, wRevision, wCertificateType, then the PKCS#7 SignedData
        const length = buf.readUInt32LE(0);
        const { signer } = certificatesOfSignedData(buf.subarray(8, Math.min(length, buf.length)));
        return signer ? subjectOf(signer) : undefined;
    } catch {
        return undefined;
    }
}

/**
 * Why `file` may not go on the media as a system extension, or undefined when it is a DDI (GPT with root,
 * root-verity and root-verity-sig partitions) whose verity signature verifies with one of `trusted` as
 * the anchor, as Kairos checks it against /run/verity.d (PK, KEK and db).
 */
export async function extensionImageProblem(file: string, trusted: EnrolledCertificate[], scratch: string): Promise<string | undefined> {
    let read;
    try {
        read = await readVeritySignature(file);
    } catch (e) {
        return `${file} is not a signed extension image (a DDI with root, verity and signature partitions): ${(e as Error).message}`;
    }
    if (!read.signature) return `${file} is not signed (no verity signature partition); Kairos merges only extensions signed by a certificate in PK, KEK or db`;
    if (trusted.length === 0) return `${file} cannot be trusted: the enrolled PK, KEK and db hold no certificate`;
    const anchors = writePemBundle(trusted.map((t) => t.certificate), path.join(scratch, "verity-anchors.pem"));
    if (await veritySignatureVerifiesWith(read.signature, anchors, scratch)) return undefined;
    let signer: string | undefined;
    try {
        const { signer: der } = certificatesOfSignedData(read.signature.signature);
        signer = der ? subjectOf(der) : undefined;
    } catch {
        signer = undefined;
    }
    const known = trusted.map((t) => `${t.role}: ${subjectOf(t.certificate)}`).join("; ");
    return `${file}'s verity signature is by ${signer ?? "a certificate it does not carry"}, which is not among the enrolled PK, KEK and db certificates (${known}); Kairos would refuse to merge it`;
}

/**
 * Why `file` is not a systemd-boot loader entry (loader/entries/NAME.conf: "key value" lines, comments
 * and blank lines), or undefined. Text only: no NUL bytes, no PEM blocks, no binary.
 */
export function loaderEntryProblem(file: string): string | undefined {
    if (!file.endsWith(".conf")) return `${file} is not a loader entry: systemd-boot reads only loader/entries/*.conf`;
    const size = fs.statSync(file).size;
    if (size > MAX_LOADER_ENTRY_BYTES) return `${file} is ${size} bytes; a loader entry is a few lines of text (at most ${MAX_LOADER_ENTRY_BYTES} bytes here)`;
    const bytes = fs.readFileSync(file);
    if (bytes.includes(0)) return `${file} holds NUL bytes: a loader entry is text`;
    let text: string;
    try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
        return `${file} is not UTF-8 text: a loader entry is text`;
    }
    if (/-----BEGIN [A-Z0-9 ]+-----/.test(text)) return `${file} holds a PEM block, not a loader entry; key material never goes on boot media`;
    const bad = text.split("\n").findIndex((line) => {
        const l = line.trim();
        return l !== "" && !l.startsWith("#") && !/^[A-Za-z][A-Za-z0-9_-]*([ \t]+\S.*)?$/.test(l);
    });
    if (bad >= 0) return `${file} line ${bad + 1} is not a "key value" line of a loader entry`;
    return undefined;
}

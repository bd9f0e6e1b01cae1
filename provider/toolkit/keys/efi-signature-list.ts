// EFI_SIGNATURE_LIST parsing (UEFI 2.10 §32.4.1), so extra lists given by users are checked and
// described before they are appended to KEK or db.
import { X509Certificate } from "crypto";

export const EFI_CERT_X509_GUID = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";
export const EFI_CERT_SHA256_GUID = "c1c41626-504c-4092-aca9-41f936934328";

export interface SignatureEntry {
    owner: string;
    /** For X509 lists: the certificate's subject; for hashes: the hex digest. */
    description: string;
    /** The signature data itself (a DER certificate, a hash). */
    data: Buffer;
}

export interface SignatureList {
    type: "x509" | "sha256" | string;
    entries: SignatureEntry[];
}

export class SignatureListFormatError extends Error {}

/** Mixed-endian GUID as stored by UEFI: the first three fields little-endian. */
export function guidFromBytes(b: Buffer): string {
    const hex = (buf: Buffer) => buf.toString("hex");
    const le = (buf: Buffer) => hex(Buffer.from(buf).reverse());
    return [le(b.subarray(0, 4)), le(b.subarray(4, 6)), le(b.subarray(6, 8)), hex(b.subarray(8, 10)), hex(b.subarray(10, 16))].join("-");
}

/** Parses a concatenation of EFI_SIGNATURE_LISTs (an .esl file or an exported db/KEK variable). */
export function parseSignatureLists(data: Buffer): SignatureList[] {
    const lists: SignatureList[] = [];
    let offset = 0;
    while (offset < data.length) {
        if (data.length - offset < 28) throw new SignatureListFormatError(`truncated list header at byte ${offset}`);
        const typeGuid = guidFromBytes(data.subarray(offset, offset + 16));
        const listSize = data.readUInt32LE(offset + 16);
        const headerSize = data.readUInt32LE(offset + 20);
        const signatureSize = data.readUInt32LE(offset + 24);
        const end = offset + listSize;
        // A header that runs past the list's end would leave a negative entry area, and -16 % 16 is -0.
        if (listSize < 28 || end > data.length || signatureSize < 16 || headerSize > listSize - 28 || (listSize - 28 - headerSize) % signatureSize !== 0) {
            throw new SignatureListFormatError(`inconsistent sizes in the list at byte ${offset} (list ${listSize}, signature ${signatureSize})`);
        }
        const entries: SignatureEntry[] = [];
        for (let p = offset + 28 + headerSize; p < end; p += signatureSize) {
            const owner = guidFromBytes(data.subarray(p, p + 16));
            const body = data.subarray(p + 16, p + signatureSize);
            entries.push({ owner, description: describeEntry(typeGuid, body, p), data: Buffer.from(body) });
        }
        lists.push({ type: typeName(typeGuid), entries });
        offset = end;
    }
    if (lists.length === 0) throw new SignatureListFormatError("no signature list found (empty file)");
    return lists;
}

function typeName(guid: string): string {
    if (guid === EFI_CERT_X509_GUID) return "x509";
    if (guid === EFI_CERT_SHA256_GUID) return "sha256";
    return guid;
}

function describeEntry(typeGuid: string, body: Buffer, at: number): string {
    if (typeGuid === EFI_CERT_X509_GUID) {
        try {
            return new X509Certificate(body).subject.replace(/\n/g, ", ");
        } catch {
            throw new SignatureListFormatError(`the X509 entry at byte ${at} is not a DER certificate`);
        }
    }
    return body.toString("hex");
}

/** One line per list, for outputs: "x509: CN=Microsoft Corporation KEK CA 2011 (owner 77fa9abd-…)". */
export function describeSignatureLists(lists: SignatureList[]): string[] {
    return lists.flatMap((l) => l.entries.map((e) => `${l.type}: ${e.description} (owner ${e.owner})`));
}

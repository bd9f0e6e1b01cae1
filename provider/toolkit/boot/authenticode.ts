// A deterministic Authenticode signature for EFI images. sbsign produces the same PKCS#7 structure but
// lets OpenSSL add a signingTime attribute (and S/MIME capabilities), so two signatures of the same image
// never match. Here the SignedData is built by hand with only the two attributes PKCS#7 requires
// (contentType, messageDigest); RSA PKCS#1 v1.5 is deterministic, so the same image, key and certificate
// always give the same bytes. The image digest is computed as sbsign computes it (pe.ts), and sbattach
// (sbsigntool) writes the signature into the image; sbverify checks the result.
import { createHash, X509Certificate, KeyObject } from "crypto";
import { NotRsaKeyError, openSigner, RsaSigner } from "../keys/signer";
import * as fs from "fs";

export class AuthenticodeError extends Error {
    readonly code = "AUTHENTICODE";
}

const OID = {
    signedData: "1.2.840.113549.1.7.2",
    sha256: "2.16.840.1.101.3.4.2.1",
    rsaEncryption: "1.2.840.113549.1.1.1",
    contentType: "1.2.840.113549.1.9.3",
    messageDigest: "1.2.840.113549.1.9.4",
    spcIndirectData: "1.3.6.1.4.1.311.2.1.4",
    spcPeImageData: "1.3.6.1.4.1.311.2.1.15",
};

// ---- minimal DER ---------------------------------------------------------------------------------

function derLength(n: number): Buffer {
    if (n < 0x80) return Buffer.from([n]);
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
    const body = Buffer.concat(content);
    return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const seq = (...c: Buffer[]) => tlv(0x30, ...c);
/** DER SET OF: members sorted by their encodings. */
const setOf = (...c: Buffer[]) => tlv(0x31, ...[...c].sort(Buffer.compare));
const nullDer = () => Buffer.from([0x05, 0x00]);
const octets = (b: Buffer) => tlv(0x04, b);
const int = (n: number) => tlv(0x02, Buffer.from([n]));
const explicit = (n: number, ...c: Buffer[]) => tlv(0xa0 | n, ...c);

export function oid(dotted: string): Buffer {
    const parts = dotted.split(".").map(Number);
    const out: number[] = [parts[0] * 40 + parts[1]];
    for (const p of parts.slice(2)) {
        const chunk: number[] = [p & 0x7f];
        for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
        out.push(...chunk);
    }
    return tlv(0x06, Buffer.from(out));
}

const algorithm = (o: string) => seq(oid(o), nullDer());

interface Tlv {
    tag: number;
    /** Offset of the tag byte. */
    start: number;
    /** Offset of the content. */
    contentStart: number;
    end: number;
}

/** Longest length field read (4 bytes: 4 GiB); DER never needs more for anything this package reads. */
const MAX_LENGTH_BYTES = 4;

export function readTlv(buf: Buffer, at: number): Tlv {
    if (at + 2 > buf.length) throw new AuthenticodeError(`truncated DER: no tag and length at byte ${at}`);
    const tag = buf[at];
    let len = buf[at + 1];
    let p = at + 2;
    if (len & 0x80) {
        const n = len & 0x7f;
        // 0x80 is BER's indefinite length, which DER forbids.
        if (n === 0 || n > MAX_LENGTH_BYTES) throw new AuthenticodeError(`unsupported DER length form 0x${len.toString(16)} at byte ${at}`);
        if (p + n > buf.length) throw new AuthenticodeError(`truncated DER: length field at byte ${at} runs past the end`);
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[p + i];
        p += n;
    }
    if (p + len > buf.length) throw new AuthenticodeError("truncated DER");
    return { tag, start: at, contentStart: p, end: p + len };
}

/** The children of a constructed TLV. */
export function children(buf: Buffer, parent: Tlv): Tlv[] {
    const out: Tlv[] = [];
    for (let p = parent.contentStart; p < parent.end; ) {
        const t = readTlv(buf, p);
        if (t.end > parent.end) throw new AuthenticodeError(`DER element at byte ${p} runs past the end of its parent`);
        out.push(t);
        p = t.end;
    }
    return out;
}

/** Child `index` of `parent`, which a well-formed structure has. */
function child(buf: Buffer, parent: Tlv, index: number, what: string): Tlv {
    const found = children(buf, parent)[index];
    if (!found) throw new AuthenticodeError(`malformed Authenticode signature: no ${what}`);
    return found;
}

/** The issuer Name and serialNumber of a DER certificate, as raw DER. */
function issuerAndSerial(certDer: Buffer): { issuer: Buffer; serial: Buffer } {
    const cert = readTlv(certDer, 0);
    const tbs = children(certDer, cert)[0];
    const fields = children(certDer, tbs);
    const i = fields[0].tag === 0xa0 ? 1 : 0; // [0] version is optional
    const serial = fields[i];
    const issuer = fields[i + 2];
    return { issuer: certDer.subarray(issuer.start, issuer.end), serial: certDer.subarray(serial.start, serial.end) };
}

// ---- Authenticode --------------------------------------------------------------------------------

/** SpcIndirectDataContent for a PE image with this SHA-256 Authenticode digest (same bytes as sbsign). */
export function spcIndirectDataContent(imageDigest: Buffer): Buffer {
    const obsolete = Buffer.from("<<<Obsolete>>>", "utf16le").swap16(); // BMPString is big-endian
    const peImageData = seq(
        Buffer.from([0x03, 0x01, 0x00]), // flags: empty BIT STRING
        explicit(0, tlv(0xa2, tlv(0x80, obsolete))), // file: [2] SpcString unicode [0]
    );
    return seq(seq(oid(OID.spcPeImageData), peImageData), seq(algorithm(OID.sha256), octets(imageDigest)));
}

export interface SignerPair {
    /** The RSA private key: a file path, PEM text, a KeyObject, a `pkcs11:` URI or an opened signer. */
    key: string | KeyObject | RsaSigner;
    /** PEM or DER certificate (file path or contents). */
    certificate: string | Buffer;
}


function loadCertificate(cert: string | Buffer): X509Certificate {
    if (Buffer.isBuffer(cert)) return new X509Certificate(cert);
    return new X509Certificate(cert.includes("-----BEGIN") ? cert : fs.readFileSync(cert));
}

/**
 * A PKCS#7 ContentInfo(SignedData) Authenticode signature over an image digest. Signed attributes are
 * contentType and messageDigest only (no signingTime), so the output is a pure function of its inputs.
 */
export async function authenticodeSignature(imageDigest: Buffer, signer: SignerPair): Promise<Buffer> {
    let key: RsaSigner;
    try {
        key = openSigner(signer.key);
    } catch (e) {
        if (e instanceof NotRsaKeyError) throw new AuthenticodeError(`the Secure Boot signing key must be RSA: ${e.message}`);
        throw e;
    }
    const cert = loadCertificate(signer.certificate);
    const certDer = cert.raw;
    const certSpki = cert.publicKey.export({ type: "spki", format: "der" });
    if (!key.publicKey.export({ type: "spki", format: "der" }).equals(certSpki)) {
        throw new AuthenticodeError("the Secure Boot signing key does not match its certificate");
    }
    const idc = spcIndirectDataContent(imageDigest);
    // Authenticode quirk: the messageDigest covers the SpcIndirectDataContent without its own tag+length.
    const idcBody = idc.subarray(readTlv(idc, 0).contentStart);
    const contentDigest = createHash("sha256").update(idcBody).digest();
    const attributes = [
        seq(oid(OID.contentType), setOf(oid(OID.spcIndirectData))),
        seq(oid(OID.messageDigest), setOf(octets(contentDigest))),
    ];
    const signedAttrs = setOf(...attributes); // signed as a SET (0x31)...
    const signature = await key.sign("sha256", signedAttrs);
    const { issuer, serial } = issuerAndSerial(certDer);
    const signerInfo = seq(
        int(1),
        seq(issuer, serial),
        algorithm(OID.sha256),
        Buffer.concat([Buffer.from([0xa0]), signedAttrs.subarray(1)]), // ...and stored as [0] IMPLICIT
        algorithm(OID.rsaEncryption),
        octets(signature),
    );
    const signedData = seq(
        int(1),
        setOf(algorithm(OID.sha256)),
        seq(oid(OID.spcIndirectData), explicit(0, idc)),
        explicit(0, certDer), // certificates [0] IMPLICIT SET OF Certificate
        setOf(signerInfo),
    );
    return seq(oid(OID.signedData), explicit(0, signedData));
}

function indirectDataContent(p7: Buffer): Tlv {
    const ci = readTlv(p7, 0);
    const signedDataWrap = child(p7, ci, 1, "ContentInfo content");
    const signedData = child(p7, signedDataWrap, 0, "SignedData");
    const contentInfo = child(p7, signedData, 2, "SignedData contentInfo");
    const idcWrap = child(p7, contentInfo, 1, "SpcIndirectDataContent wrapper");
    return child(p7, idcWrap, 0, "SpcIndirectDataContent");
}

/**
 * The bytes an Authenticode signature's messageDigest covers: its SpcIndirectDataContent without the
 * tag and length (the Authenticode quirk), which is what a PKCS#7 verifier is given as the content.
 */
export function signedContentOfSignature(p7: Buffer): Buffer {
    const idc = indirectDataContent(p7);
    return p7.subarray(idc.contentStart, idc.end);
}

/** The SHA-256 image digest inside an Authenticode signature (DER ContentInfo), e.g. one sbsign wrote. */
export function imageDigestOfSignature(p7: Buffer): Buffer {
    const idc = indirectDataContent(p7);
    const digestInfo = child(p7, idc, 1, "DigestInfo");
    const digest = child(p7, digestInfo, 1, "image digest");
    return p7.subarray(digest.contentStart, digest.end);
}

/**
 * The certificates a PKCS#7 SignedData (DER ContentInfo) carries, and which of them signed it (the one
 * its first SignerInfo names by issuer and serial). For error messages that say who signed something;
 * whether the signature is valid is for sbverify / openssl to say.
 */
export function certificatesOfSignedData(p7: Buffer): { certificates: Buffer[]; signer?: Buffer } {
    const ci = readTlv(p7, 0);
    const signedData = child(p7, child(p7, ci, 1, "ContentInfo content"), 0, "SignedData");
    const fields = children(p7, signedData);
    const certSet = fields.find((f) => f.tag === 0xa0);
    const certificates = certSet ? children(p7, certSet).map((c) => p7.subarray(c.start, c.end)) : [];
    const signerInfos = fields[fields.length - 1];
    const first = signerInfos && signerInfos.tag === 0x31 ? children(p7, signerInfos)[0] : undefined;
    const sid = first ? children(p7, first)[1] : undefined;
    if (!sid || sid.tag !== 0x30) return { certificates };
    const [issuer, serial] = children(p7, sid);
    if (!issuer || !serial) return { certificates };
    const want = { issuer: p7.subarray(issuer.start, issuer.end), serial: p7.subarray(serial.start, serial.end) };
    const signer = certificates.find((c) => {
        try {
            const is = issuerAndSerial(c);
            return is.issuer.equals(want.issuer) && is.serial.equals(want.serial);
        } catch {
            return false;
        }
    });
    return { certificates, signer };
}

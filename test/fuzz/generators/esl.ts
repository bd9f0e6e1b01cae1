// EFI_SIGNATURE_LISTs whose size fields are sometimes right, sometimes off by one, zero or huge, with
// X509 entries that hold a real certificate or bytes that only look like one.
import * as fc from "fast-check";
import { bytes } from "./bytes";
import * as fs from "fs";
import * as path from "path";

export const SAMPLE_CERTIFICATE = fs.readFileSync(path.join(__dirname, "data", "cert.der"));

const X509_GUID = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";
const SHA256_GUID = "c1c41626-504c-4092-aca9-41f936934328";

export function guidBytes(guid: string): Buffer {
    const h = guid.replace(/-/g, "");
    const le = (s: string) => Buffer.from(s, "hex").reverse();
    return Buffer.concat([le(h.slice(0, 8)), le(h.slice(8, 12)), le(h.slice(12, 16)), Buffer.from(h.slice(16), "hex")]);
}

const sizeSkew = fc.oneof(
    { weight: 6, arbitrary: fc.constant<"right">("right") },
    { weight: 2, arbitrary: fc.integer({ min: -20, max: 20 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 1, 15, 16, 27, 28, 0x7fffffff, 0xffffffff).map((v) => ({ absolute: v })) },
);

type Skew = "right" | number | { absolute: number };

function apply(right: number, skew: Skew): number {
    if (skew === "right") return right;
    if (typeof skew === "number") return Math.max(0, right + skew) >>> 0;
    return skew.absolute >>> 0;
}

const entryBody = (type: "x509" | "sha256" | "other") =>
    type === "x509"
        ? fc.oneof(
              fc.constant(SAMPLE_CERTIFICATE),
              fc.integer({ min: 0, max: SAMPLE_CERTIFICATE.length }).map((n) => SAMPLE_CERTIFICATE.subarray(0, n)),
              bytes(64),
          )
        : type === "sha256"
          ? bytes(32, 32)
          : bytes(48);

const list = fc.constantFrom("x509" as const, "sha256" as const, "other" as const).chain((type) =>
    fc.record({
        type: fc.constant(type),
        owner: fc.uuid(),
        header: bytes(8),
        bodies: fc.array(entryBody(type), { minLength: 0, maxLength: 3 }),
        listSize: sizeSkew,
        headerSize: sizeSkew,
        signatureSize: sizeSkew,
    }),
);

export const eslInput: fc.Arbitrary<Buffer> = fc.array(list, { minLength: 1, maxLength: 3 }).map((lists) =>
    Buffer.concat(
        lists.map((l) => {
            const typeGuid = l.type === "x509" ? X509_GUID : l.type === "sha256" ? SHA256_GUID : "12345678-9abc-def0-1234-56789abcdef0";
            const width = Math.max(0, ...l.bodies.map((b) => b.length));
            // Entries of one list share a size; shorter bodies are zero-padded, as a careless writer would.
            const entries = l.bodies.map((b) => Buffer.concat([guidBytes(l.owner), b, Buffer.alloc(width - b.length)]));
            const header = Buffer.alloc(28);
            guidBytes(typeGuid).copy(header, 0);
            header.writeUInt32LE(apply(28 + l.header.length + entries.length * (16 + width), l.listSize), 16);
            header.writeUInt32LE(apply(l.header.length, l.headerSize), 20);
            header.writeUInt32LE(apply(16 + width, l.signatureSize), 24);
            return Buffer.concat([header, l.header, ...entries]);
        }),
    ),
);

export const ESL_DICTIONARY = [guidBytes(X509_GUID), guidBytes(SHA256_GUID), Buffer.from([0x30, 0x82]), Buffer.from([28, 0, 0, 0]), Buffer.from([0x10, 0, 0, 0])];

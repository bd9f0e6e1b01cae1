// Tar archives with valid framing and hostile fields: every header gets a correct checksum unless the
// generator chose otherwise, so inputs get past the checksum and reach size, pax, long-name and type
// handling; numbers come as octal, GNU base-256, or text that is not a number at all.
import * as fc from "fast-check";
import { bytes } from "./bytes";

export interface RawTarEntry {
    name: string;
    typeflag: string;
    mode: NumberField;
    size: NumberField;
    /** Bytes written after the header, whatever the size field says. */
    data: Buffer;
    linkname: string;
    magic: "ustar\u000000" | "ustar  \0" | "";
    prefix: string;
    checksum: "unsigned" | "signed" | "wrong";
    /** A pax or GNU long-name record written before this entry. */
    meta?: { typeflag: "x" | "g" | "L" | "K"; body: Buffer };
}

export type NumberField = { octal: number } | { base256: number[] } | { text: string };

const COMPONENTS = ["a", "b", "usr", "etc", "..", ".", "", ".wh.a", ".wh..wh..opq", ".wh..wh.plnk", "blobs", "sha256", "index.json", "manifest.json"];

/** Archive names: mostly short paths from a small alphabet, so that collisions, ".." and links happen often. */
export const tarName: fc.Arbitrary<string> = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.boolean(), fc.array(fc.constantFrom(...COMPONENTS), { minLength: 1, maxLength: 5 }), fc.boolean()).map(([abs, parts, slash]) => `${abs ? "/" : ""}${parts.join("/")}${slash ? "/" : ""}`) },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.constantFrom("a".repeat(100), `${"d/".repeat(60)}f`, "a\0b", "\u00e9t\u00e9") },
);

const numberField = (typical: fc.Arbitrary<number>): fc.Arbitrary<NumberField> =>
    fc.oneof(
        { weight: 8, arbitrary: typical.map((octal) => ({ octal })) },
        { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 11, maxLength: 11 }).map((b) => ({ base256: [0x80, ...b] })) },
        { weight: 1, arbitrary: fc.constantFrom("", " ", "9", "-1", "0x10", "7777777777777777", "\u00ff", "1 2").map((text) => ({ text })) },
    );

const smallSize = fc.oneof(fc.integer({ min: 0, max: 1100 }), fc.constantFrom(0o77777777777, 2 ** 33 - 1, 512, 1 << 20, (1 << 20) + 1));

const paxRecord = fc.tuple(fc.constantFrom("path", "linkpath", "size", "GNU.sparse.map", "mtime", "uid", "comment"), fc.oneof(tarName, fc.constantFrom("0", "1", "512", "99999999999999999", "-5", "1e3", ""))).map(([k, v]) => {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
    return `${len}${rest}`;
});

const paxBody: fc.Arbitrary<Buffer> = fc.oneof(
    { weight: 4, arbitrary: fc.array(paxRecord, { minLength: 1, maxLength: 3 }).map((r) => Buffer.from(r.join(""))) },
    { weight: 1, arbitrary: fc.constantFrom("5 a=\n", "0 path=x\n", "99 path=x\n", "12 path=x", "6 =x\n", "7 path\n", "1000000000 x=y\n").map((s) => Buffer.from(s)) },
);

const meta = fc.oneof(
    paxBody.map((body) => ({ typeflag: "x" as const, body })),
    paxBody.map((body) => ({ typeflag: "g" as const, body })),
    tarName.map((n) => ({ typeflag: "L" as const, body: Buffer.from(`${n}\0`) })),
    tarName.map((n) => ({ typeflag: "K" as const, body: Buffer.from(n) })),
);

export const rawTarEntry: fc.Arbitrary<RawTarEntry> = fc.record({
    name: tarName,
    typeflag: fc.constantFrom("0", "0", "0", "5", "5", "2", "1", "3", "4", "6", "7", "\0", "S", "A", "x", "L"),
    mode: numberField(fc.constantFrom(0o644, 0o755, 0o4755, 0o777, 0o7777, 0o100644)),
    size: numberField(smallSize),
    data: fc.oneof(bytes(600), fc.constant(Buffer.alloc(0))),
    linkname: fc.oneof(tarName, fc.constant("")),
    magic: fc.constantFrom("ustar\u000000" as const, "ustar  \0" as const, "" as const),
    prefix: fc.oneof({ weight: 5, arbitrary: fc.constant("") }, { weight: 1, arbitrary: tarName }),
    checksum: fc.constantFrom("unsigned" as const, "unsigned" as const, "unsigned" as const, "unsigned" as const, "signed" as const, "wrong" as const),
    meta: fc.option(meta, { nil: undefined, freq: 3 }),
});

/** Entries, then an end marker that is sometimes missing, short or followed by more data. */
export const rawTar: fc.Arbitrary<Buffer> = fc
    .tuple(fc.array(rawTarEntry, { maxLength: 6 }), fc.constantFrom("two-zero-blocks", "none", "one-zero-block", "zero-then-junk", "short"))
    .map(([entries, end]) => writeRawTar(entries, end));

export function writeRawTar(entries: RawTarEntry[], end: string): Buffer {
    const blocks: Buffer[] = [];
    for (const e of entries) {
        if (e.meta) {
            blocks.push(rawHeader({ ...e, name: "././@PaxHeader", typeflag: e.meta.typeflag, size: { octal: e.meta.body.length }, checksum: "unsigned", linkname: "", prefix: "" }));
            blocks.push(padded(e.meta.body));
        }
        blocks.push(rawHeader(e));
        blocks.push(padded(e.data));
    }
    if (end === "two-zero-blocks") blocks.push(Buffer.alloc(1024));
    else if (end === "one-zero-block") blocks.push(Buffer.alloc(512));
    else if (end === "zero-then-junk") blocks.push(Buffer.alloc(512), Buffer.alloc(512, 1));
    else if (end === "short") blocks.push(Buffer.alloc(100));
    return Buffer.concat(blocks);
}

export function rawHeader(e: Pick<RawTarEntry, "name" | "typeflag" | "mode" | "size" | "linkname" | "magic" | "prefix" | "checksum">): Buffer {
    const b = Buffer.alloc(512);
    b.write(e.name, 0, 100, "utf8");
    writeNumber(b, 100, 8, e.mode);
    writeNumber(b, 108, 8, { octal: 0 });
    writeNumber(b, 116, 8, { octal: 0 });
    writeNumber(b, 124, 12, e.size);
    writeNumber(b, 136, 12, { octal: 0 });
    b.write(e.typeflag, 156, 1, "latin1");
    b.write(e.linkname, 157, 100, "utf8");
    b.write(e.magic, 257, 8, "latin1");
    b.write(e.prefix, 345, 155, "utf8");
    b.fill(0x20, 148, 156);
    let unsigned = 0;
    let signed = 0;
    for (const byte of b) {
        unsigned += byte;
        signed += byte > 127 ? byte - 256 : byte;
    }
    const sum = e.checksum === "signed" ? signed : e.checksum === "wrong" ? unsigned + 1 : unsigned;
    b.write(`${(sum >>> 0).toString(8).padStart(6, "0").slice(-7)}\0 `, 148, 8, "latin1");
    return b;
}

function writeNumber(b: Buffer, offset: number, length: number, field: NumberField): void {
    if ("octal" in field) b.write(`${field.octal.toString(8).padStart(length - 1, "0").slice(-(length - 1))}\0`, offset, length, "latin1");
    else if ("base256" in field) Buffer.from(field.base256.slice(0, length)).copy(b, offset);
    else b.write(field.text, offset, length, "latin1");
}

function padded(data: Buffer): Buffer {
    const rem = data.length % 512;
    return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rem)]);
}

export const TAR_DICTIONARY = ["ustar\u000000", "ustar  \0", "0000644\0", "00000001000\0", "././@LongLink", " path=", " linkpath=", " size=", "GNU.sparse.", "../", "/", ".wh."].map((s) => Buffer.from(s, "latin1"));

// PE/COFF images laid out the way objcopy lays out an EFI stub (DOS header, PE signature, COFF and
// optional headers, section table, section data), with any field liable to point somewhere else: the PE
// offset, the optional header size, the directory count, SizeOfHeaders, section offsets and sizes.
import * as fc from "fast-check";
import { bytes } from "./bytes";

type Field = "right" | { value: number };

const skewed = (weightRight: number, wrong: fc.Arbitrary<number>): fc.Arbitrary<Field> =>
    fc.oneof({ weight: weightRight, arbitrary: fc.constant<Field>("right") }, { weight: 1, arbitrary: wrong.map((value) => ({ value })) });

const u32Wrong = fc.oneof(fc.integer({ min: 0, max: 0x3000 }), fc.constantFrom(0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff));

const section = fc.record({
    name: fc.constantFrom(".text", ".sdmagic", ".sbat", ".osrel", ".linux", ".reloc", "\0", "12345678"),
    data: bytes(300),
    virtualSize: skewed(4, u32Wrong),
    pointerToRawData: skewed(4, u32Wrong),
    sizeOfRawData: skewed(4, u32Wrong),
});

export const peImage: fc.Arbitrary<Buffer> = fc
    .record({
        pe32plus: fc.boolean(),
        peOffset: skewed(6, fc.oneof(fc.integer({ min: 0, max: 0x200 }), fc.constantFrom(0xffffffff, 0x10000))),
        optSize: skewed(6, fc.integer({ min: 0, max: 0x200 })),
        magic: skewed(8, fc.constantFrom(0, 0x107, 0x10b, 0x20b)),
        dirCount: skewed(6, fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(0xffffffff))),
        sizeOfHeaders: skewed(4, u32Wrong),
        certificate: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.tuple(u32Wrong, u32Wrong) }),
        sections: fc.array(section, { maxLength: 4 }),
        extraSections: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1, 100, 0xffff) }),
        trailer: bytes(64),
    })
    .map(layout);

interface Layout {
    pe32plus: boolean;
    peOffset: Field;
    optSize: Field;
    magic: Field;
    dirCount: Field;
    sizeOfHeaders: Field;
    certificate?: [number, number];
    sections: Array<{ name: string; data: Buffer; virtualSize: Field; pointerToRawData: Field; sizeOfRawData: Field }>;
    extraSections: number;
    trailer: Buffer;
}

/** A well-formed image: the seed the mutator starts from. */
export function samplePeImage(sections: Array<{ name: string; data: Buffer }>, pe32plus = true): Buffer {
    return layout({
        pe32plus, peOffset: "right", optSize: "right", magic: "right", dirCount: "right", sizeOfHeaders: "right", extraSections: 0, trailer: Buffer.alloc(0),
        sections: sections.map((s) => ({ ...s, virtualSize: "right", pointerToRawData: "right", sizeOfRawData: "right" })),
    });
}

const pick = (f: Field, right: number) => (f === "right" ? right : f.value) >>> 0;

function layout(l: Layout): Buffer {
    const peOffset = 0x80;
    const optSize = l.pe32plus ? 240 : 224;
    const headerEnd = peOffset + 24 + optSize + 40 * l.sections.length;
    const sizeOfHeaders = align(headerEnd, 0x200);
    const head = Buffer.alloc(sizeOfHeaders);
    head.write("MZ", 0, "latin1");
    head.writeUInt32LE(pick(l.peOffset, peOffset), 0x3c);
    head.write("PE\0\0", peOffset, "latin1");
    const coff = peOffset + 4;
    head.writeUInt16LE(0x8664, coff);
    head.writeUInt16LE((l.sections.length + l.extraSections) & 0xffff, coff + 2);
    head.writeUInt32LE(0x5eed, coff + 4);
    head.writeUInt16LE(pick(l.optSize, optSize) & 0xffff, coff + 16);
    const opt = coff + 20;
    head.writeUInt16LE(pick(l.magic, l.pe32plus ? 0x20b : 0x10b) & 0xffff, opt);
    head.writeUInt32LE(0x1000, opt + 32);
    head.writeUInt32LE(0x200, opt + 36);
    head.writeUInt32LE(0x10000, opt + 56);
    head.writeUInt32LE(pick(l.sizeOfHeaders, sizeOfHeaders), opt + 60);
    const dirCountAt = l.pe32plus ? opt + 108 : opt + 92;
    const dirs = l.pe32plus ? opt + 112 : opt + 96;
    head.writeUInt32LE(pick(l.dirCount, 16), dirCountAt);
    if (l.certificate) {
        head.writeUInt32LE(l.certificate[0] >>> 0, dirs + 32);
        head.writeUInt32LE(l.certificate[1] >>> 0, dirs + 36);
    }
    const bodies: Buffer[] = [];
    let fileOffset = sizeOfHeaders;
    l.sections.forEach((s, i) => {
        const at = peOffset + 24 + optSize + 40 * i;
        const raw = align(s.data.length, 0x200);
        head.write(s.name, at, 8, "latin1");
        head.writeUInt32LE(pick(s.virtualSize, s.data.length), at + 8);
        head.writeUInt32LE(0x1000 * (i + 1), at + 12);
        head.writeUInt32LE(pick(s.sizeOfRawData, raw), at + 16);
        head.writeUInt32LE(pick(s.pointerToRawData, fileOffset), at + 20);
        bodies.push(Buffer.concat([s.data, Buffer.alloc(raw - s.data.length)]));
        fileOffset += raw;
    });
    return Buffer.concat([head, ...bodies, l.trailer]);
}

function align(n: number, a: number): number {
    return Math.ceil(n / a) * a;
}

export const PE_DICTIONARY = [Buffer.from("MZ"), Buffer.from("PE\0\0"), Buffer.from([0x0b, 0x02]), Buffer.from([0x0b, 0x01]), Buffer.from(".sdmagic"), Buffer.from(".sbat\0\0\0")];

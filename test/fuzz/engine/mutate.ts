// Byte-level mutation of corpus entries, in the manner of libFuzzer's and AFL's "havoc" stage: a few
// stacked edits per input, biased towards what trips parsers that trust length fields (boundary
// integers in both byte orders, octal and decimal digits, tokens of the format).
import { Random } from "./random";

const INTERESTING_8 = [0x00, 0x01, 0x20, 0x2e, 0x2f, 0x30, 0x37, 0x7f, 0x80, 0xff];
const INTERESTING_32 = [0, 1, 8, 16, 27, 28, 29, 511, 512, 513, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

export interface MutationContext {
    random: Random;
    /** Longest input the target accepts from the mutator. */
    maxLength: number;
    /** Format tokens worth inserting or overwriting with ("ustar\0", "PE\0\0", "\"digest\""). */
    dictionary: Buffer[];
    /** Another corpus entry, for splicing. */
    other?: Buffer;
}

type Mutator = (data: Buffer, ctx: MutationContext) => Buffer;

const MUTATORS: Mutator[] = [
    flipBit,
    setInterestingByte,
    setRandomByte,
    overwriteInteger,
    overwriteInteger,
    writeNumberText,
    insertBytes,
    deleteBytes,
    duplicateChunk,
    insertToken,
    overwriteToken,
    splice,
    truncate,
    addToByte,
];

/** One to eight stacked mutations of `seed`; never longer than ctx.maxLength. */
export function mutate(seed: Buffer, ctx: MutationContext): Buffer {
    let data: Buffer = Buffer.from(seed);
    const rounds = 1 << ctx.random.below(4);
    for (let i = 0; i < rounds; i++) data = ctx.random.pick(MUTATORS)(data, ctx);
    return data.length > ctx.maxLength ? data.subarray(0, ctx.maxLength) : data;
}

function position(data: Buffer, r: Random): number {
    return r.below(data.length);
}

function flipBit(data: Buffer, { random }: MutationContext): Buffer {
    if (data.length === 0) return data;
    data[position(data, random)] ^= 1 << random.below(8);
    return data;
}

function setInterestingByte(data: Buffer, { random }: MutationContext): Buffer {
    if (data.length === 0) return data;
    data[position(data, random)] = random.pick(INTERESTING_8);
    return data;
}

function setRandomByte(data: Buffer, { random }: MutationContext): Buffer {
    if (data.length === 0) return data;
    data[position(data, random)] = random.below(256);
    return data;
}

function addToByte(data: Buffer, { random }: MutationContext): Buffer {
    if (data.length === 0) return data;
    const at = position(data, random);
    data[at] = (data[at] + random.between(-16, 16)) & 0xff;
    return data;
}

/** A boundary value (or one near the input's own length) as 16/32/64 bits, either byte order. */
function overwriteInteger(data: Buffer, { random }: MutationContext): Buffer {
    const width = random.pick([2, 4, 4, 8]);
    if (data.length < width) return data;
    const at = random.chance(0.5) ? position(data, random) & ~(width - 1) : position(data, random);
    const offset = Math.min(at, data.length - width);
    const base = random.chance(0.2) ? data.length + random.between(-2, 2) : random.pick(INTERESTING_32);
    const value = BigInt.asUintN(64, BigInt(base) + BigInt(random.chance(0.3) ? random.between(-1, 1) : 0));
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64LE(value);
    const slice = bytes.subarray(0, width);
    if (random.chance(0.3)) slice.reverse();
    slice.copy(data, offset);
    return data;
}

/** Digits where a text format keeps numbers: tar's octal fields, pax and JSON decimals. */
function writeNumberText(data: Buffer, { random }: MutationContext): Buffer {
    if (data.length === 0) return data;
    const n = random.pick([0, 1, 7, 8, 511, 512, 0o77777777777, 2 ** 33, 2 ** 53, random.u32()]);
    const text = random.chance(0.5) ? n.toString(8) : random.chance(0.8) ? String(n) : `-${n}`;
    const token = Buffer.from(text, "latin1");
    token.copy(data, position(data, random));
    return data;
}

function insertBytes(data: Buffer, ctx: MutationContext): Buffer {
    const length = ctx.random.chance(0.8) ? ctx.random.between(1, 16) : ctx.random.between(17, 1024);
    const fill = Buffer.alloc(length, ctx.random.chance(0.5) ? 0 : ctx.random.below(256));
    if (ctx.random.chance(0.5)) for (let i = 0; i < length; i++) fill[i] = ctx.random.below(256);
    const at = ctx.random.below(data.length + 1);
    return Buffer.concat([data.subarray(0, at), fill, data.subarray(at)]);
}

function deleteBytes(data: Buffer, { random }: MutationContext): Buffer {
    if (data.length < 2) return data;
    const at = position(data, random);
    const length = Math.min(data.length - at, random.chance(0.7) ? random.between(1, 16) : random.between(1, 1024));
    return Buffer.concat([data.subarray(0, at), data.subarray(at + length)]);
}

/** Repeats a chunk: blocks, records and list entries come in runs. */
function duplicateChunk(data: Buffer, { random }: MutationContext): Buffer {
    if (data.length === 0) return data;
    const at = position(data, random);
    const length = Math.min(data.length - at, random.pick([1, 4, 16, 28, 40, 512, random.between(1, 2048)]));
    const chunk = data.subarray(at, at + length);
    const to = random.below(data.length + 1);
    return Buffer.concat([data.subarray(0, to), chunk, data.subarray(to)]);
}

function insertToken(data: Buffer, { random, dictionary }: MutationContext): Buffer {
    if (dictionary.length === 0) return data;
    const token = random.pick(dictionary);
    const at = random.below(data.length + 1);
    return Buffer.concat([data.subarray(0, at), token, data.subarray(at)]);
}

function overwriteToken(data: Buffer, { random, dictionary }: MutationContext): Buffer {
    if (dictionary.length === 0 || data.length === 0) return data;
    random.pick(dictionary).copy(data, position(data, random));
    return data;
}

/** The head of this input and the tail of another, cut at random points. */
function splice(data: Buffer, { random, other }: MutationContext): Buffer {
    if (!other || other.length === 0) return data;
    const cut = random.below(data.length + 1);
    const from = random.below(other.length);
    return Buffer.concat([data.subarray(0, cut), other.subarray(from)]);
}

function truncate(data: Buffer, { random }: MutationContext): Buffer {
    if (data.length === 0) return data;
    return data.subarray(0, random.below(data.length));
}

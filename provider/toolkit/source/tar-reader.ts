// A small tar reader for untrusted archives (image layers, docker-save and OCI tarballs): ustar,
// pax (path, linkpath, size) and GNU long names. It only parses; what an entry may do to a file
// system is decided by the caller (layer-extract.ts, tree-writer.ts). Header-only entry types are read the way Go's
// archive/tar reads them, because that is what writes and reads container layers.
import * as fs from "fs";
import { roundUp } from "../files";

const BLOCK = 512;
const MAX_META_SIZE = 1 << 20; // pax and GNU long-name records; real ones are a few hundred bytes
const BODY_CHUNK = 1 << 16;

export class TarFormatError extends Error {
    readonly code = "TAR_FORMAT";
}

export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo" | "unsupported";

export interface TarEntry {
    /** The name as stored (after pax and GNU long-name overrides); not normalised. */
    name: string;
    type: TarEntryType;
    /** The raw type flag, for messages about unsupported entries. */
    typeflag: string;
    /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
    mode: number;
    linkname: string;
    /** Bytes of data that follow the header (0 for header-only types). */
    size: number;
    /** Offset of the data in the archive. */
    dataOffset: number;
    /** Reads the data; only valid until the next entry is requested. */
    body(): AsyncGenerator<Buffer>;
}

/** Sequential bytes: a stream, or a file read at increasing offsets. */
export interface ByteSource {
    readonly position: number;
    /** Up to `n` bytes; fewer only at the end of the input. */
    read(n: number): Promise<Buffer>;
    /** Between 1 and `max` bytes, or an empty buffer at the end of the input. */
    readSome(max: number): Promise<Buffer>;
    /** Skips exactly `n` bytes; throws if the input ends first. */
    skip(n: number): Promise<void>;
}

/** Pulls chunks from an async iterable (a Readable) only as fast as they are consumed. */
export class StreamSource implements ByteSource {
    private readonly iterator: AsyncIterator<Buffer>;
    private chunks: Buffer[] = [];
    private buffered = 0;
    private ended = false;
    position = 0;

    constructor(input: AsyncIterable<Buffer>) {
        this.iterator = input[Symbol.asyncIterator]();
    }

    async read(n: number): Promise<Buffer> {
        while (this.buffered < n && (await this.pull()));
        return this.take(Math.min(n, this.buffered));
    }

    async readSome(max: number): Promise<Buffer> {
        while (this.buffered === 0 && (await this.pull()));
        return this.take(Math.min(max, this.chunks[0]?.length ?? 0));
    }

    async skip(n: number): Promise<void> {
        let left = n;
        while (left > 0) {
            const got = await this.readSome(Math.min(left, BODY_CHUNK * 16));
            if (got.length === 0) throw truncated(this.position);
            left -= got.length;
        }
    }

    /** Reads everything that is left, so a hash over the stream covers trailing padding too. */
    async drain(): Promise<void> {
        do this.take(this.buffered);
        while (await this.pull());
    }

    private async pull(): Promise<boolean> {
        if (this.ended) return false;
        const next = await this.iterator.next();
        if (next.done) {
            this.ended = true;
            return false;
        }
        const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
        if (chunk.length > 0) {
            this.chunks.push(chunk);
            this.buffered += chunk.length;
        }
        return true;
    }

    private take(n: number): Buffer {
        const parts: Buffer[] = [];
        let left = n;
        while (left > 0) {
            const head = this.chunks[0];
            if (head.length <= left) {
                parts.push(head);
                this.chunks.shift();
                left -= head.length;
            } else {
                parts.push(head.subarray(0, left));
                this.chunks[0] = head.subarray(left);
                left = 0;
            }
        }
        this.buffered -= n;
        this.position += n;
        return parts.length === 1 ? parts[0] : Buffer.concat(parts, n);
    }
}

/** Reads a file by offset, so skipping a large member costs nothing (used to index archives). */
export class FileSource implements ByteSource {
    private constructor(
        private readonly handle: fs.promises.FileHandle,
        private readonly size: number,
        public position: number,
    ) {}

    static async open(file: string): Promise<FileSource> {
        const handle = await fs.promises.open(file, "r");
        const { size } = await handle.stat();
        return new FileSource(handle, size, 0);
    }

    async read(n: number): Promise<Buffer> {
        const buf = Buffer.alloc(Math.max(0, Math.min(n, this.size - this.position)));
        let filled = 0;
        while (filled < buf.length) {
            const { bytesRead } = await this.handle.read(buf, filled, buf.length - filled, this.position + filled);
            if (bytesRead === 0) break;
            filled += bytesRead;
        }
        this.position += filled;
        return buf.subarray(0, filled);
    }

    readSome(max: number): Promise<Buffer> {
        return this.read(Math.min(max, BODY_CHUNK));
    }

    async skip(n: number): Promise<void> {
        if (this.position + n > this.size) throw truncated(this.size);
        this.position += n;
    }

    close(): Promise<void> {
        return this.handle.close();
    }
}

/** Yields the archive's entries in order. Stops at the end-of-archive marker or a clean end of input. */
export async function* readTar(src: ByteSource): AsyncGenerator<TarEntry> {
    let meta: PendingMeta = {};
    for (;;) {
        const headerOffset = src.position;
        const block = await src.read(BLOCK);
        if (block.length === 0) return;
        if (block.length < BLOCK) throw truncated(src.position);
        if (isZeroBlock(block)) return await expectEndOfArchive(src);

        const header = parseHeader(block, headerOffset);
        const padded = roundUp(header.size, BLOCK);
        if (isMetaType(header.typeflag)) {
            meta = applyMeta(meta, header, await readMeta(src, header, headerOffset));
            await src.skip(padded - header.size);
            continue;
        }

        const body = new BodyReader(src, dataSize(header, meta));
        yield finishEntry(header, meta, body);
        meta = {};
        await src.skip(body.remaining + roundUp(body.size, BLOCK) - body.size);
    }
}

/** Hands out an entry's data; whatever the caller leaves unread is skipped before the next header. */
class BodyReader {
    readonly dataOffset: number;
    private consumed = 0;

    constructor(private readonly src: ByteSource, readonly size: number) {
        this.dataOffset = src.position;
    }

    get remaining(): number {
        return this.size - this.consumed;
    }

    async *chunks(): AsyncGenerator<Buffer> {
        while (this.consumed < this.size) {
            const chunk = await this.src.readSome(Math.min(BODY_CHUNK, this.size - this.consumed));
            if (chunk.length === 0) throw truncated(this.src.position);
            this.consumed += chunk.length;
            yield chunk;
        }
    }
}

interface RawHeader {
    name: string;
    linkname: string;
    mode: number;
    size: number;
    typeflag: string;
}

interface PendingMeta {
    path?: string;
    linkpath?: string;
    size?: number;
    sparse?: boolean;
}

function parseHeader(block: Buffer, offset: number): RawHeader {
    verifyChecksum(block, offset);
    const magic = block.toString("latin1", 257, 263);
    const name = cString(block, 0, 100);
    // Only POSIX ustar has a prefix field; GNU headers keep other data there.
    const prefix = magic === "ustar\0" ? cString(block, 345, 155) : "";
    let typeflag = String.fromCharCode(block[156] || 0x30);
    // Pre-POSIX archives mark directories only by a trailing slash.
    if (typeflag === "0" && block[156] === 0 && name.endsWith("/")) typeflag = "5";
    return {
        name: prefix ? `${prefix}/${name}` : name,
        linkname: cString(block, 157, 100),
        mode: parseNumeric(block.subarray(100, 108), "mode", offset) & 0o7777,
        size: parseNumeric(block.subarray(124, 136), "size", offset),
        typeflag,
    };
}

function verifyChecksum(block: Buffer, offset: number): void {
    const stored = parseNumeric(block.subarray(148, 156), "checksum", offset);
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < BLOCK; i++) {
        const b = i >= 148 && i < 156 ? 0x20 : block[i];
        unsigned += b;
        signed += b > 127 ? b - 256 : b;
    }
    // Some old writers summed signed bytes; both forms are accepted, as GNU tar and Go do.
    if (stored !== unsigned && stored !== signed) {
        throw new TarFormatError(`tar header at offset ${offset} has a bad checksum: the input is not a tar archive, or it is corrupt`);
    }
}

/** Octal text, or GNU base-256 (high bit set) for values that do not fit. */
function parseNumeric(field: Buffer, what: string, offset: number): number {
    if (field[0] & 0x80) {
        if (field[0] === 0xff) throw new TarFormatError(`tar header at offset ${offset}: negative ${what}`);
        let value = field[0] & 0x7f;
        for (let i = 1; i < field.length; i++) value = value * 256 + field[i];
        if (!Number.isSafeInteger(value)) throw new TarFormatError(`tar header at offset ${offset}: ${what} is too large`);
        return value;
    }
    const text = field.toString("latin1").replace(/[\0 ]+$/, "").replace(/^ +/, "");
    if (text === "") return 0;
    if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`tar header at offset ${offset}: ${what} field ${JSON.stringify(text)} is not octal`);
    return parseInt(text, 8);
}

function cString(block: Buffer, start: number, length: number): string {
    const field = block.subarray(start, start + length);
    const nul = field.indexOf(0);
    return field.subarray(0, nul === -1 ? length : nul).toString("utf8");
}

const TYPES: Record<string, TarEntryType> = {
    "0": "file", "7": "file", "1": "hardlink", "2": "symlink", "3": "char", "4": "block", "5": "dir", "6": "fifo",
};

// Go's archive/tar gives these no data whatever the size field says; layers are written by Go.
const HEADER_ONLY = new Set(["1", "2", "3", "4", "5", "6"]);

function isMetaType(typeflag: string): boolean {
    return typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K";
}

async function readMeta(src: ByteSource, header: RawHeader, offset: number): Promise<Buffer> {
    if (header.size > MAX_META_SIZE) {
        throw new TarFormatError(`tar header at offset ${offset}: '${header.typeflag}' record of ${header.size} bytes is larger than ${MAX_META_SIZE}`);
    }
    const data = await src.read(header.size);
    if (data.length < header.size) throw truncated(src.position);
    return data;
}

function applyMeta(meta: PendingMeta, header: RawHeader, data: Buffer): PendingMeta {
    switch (header.typeflag) {
        case "L":
            return { ...meta, path: nulTerminated(data) };
        case "K":
            return { ...meta, linkpath: nulTerminated(data) };
        case "x":
            return { ...meta, ...paxOverrides(parsePax(data)) };
        default:
            // Global pax headers are ignored, as Go's reader does; they carry no path or size in practice.
            return meta;
    }
}

function nulTerminated(data: Buffer): string {
    const nul = data.indexOf(0);
    return data.subarray(0, nul === -1 ? data.length : nul).toString("utf8");
}

/** Parses "LEN key=value\n" records. */
export function parsePax(data: Buffer): Map<string, string> {
    const records = new Map<string, string>();
    let pos = 0;
    while (pos < data.length) {
        const space = data.indexOf(0x20, pos);
        const lenText = space === -1 ? "" : data.toString("latin1", pos, space);
        const len = /^[1-9][0-9]{0,8}$/.test(lenText) ? parseInt(lenText, 10) : NaN;
        if (!(len > 0) || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
            throw new TarFormatError(`malformed pax record at byte ${pos} of an extended header`);
        }
        const record = data.subarray(space + 1, pos + len - 1);
        const eq = record.indexOf(0x3d);
        if (eq <= 0) throw new TarFormatError(`malformed pax record at byte ${pos} of an extended header: no key`);
        records.set(record.subarray(0, eq).toString("utf8"), record.subarray(eq + 1).toString("utf8"));
        pos += len;
    }
    return records;
}

function paxOverrides(records: Map<string, string>): PendingMeta {
    const out: PendingMeta = {};
    for (const [key, value] of records) {
        // An empty value means "use the header field", which is what leaving it unset does.
        if (value === "") continue;
        if (value.includes("\0")) throw new TarFormatError(`pax record ${key} contains a NUL byte`);
        if (key === "path") out.path = value;
        else if (key === "linkpath") out.linkpath = value;
        else if (key === "size") out.size = parsePaxSize(value);
        else if (key.startsWith("GNU.sparse.")) out.sparse = true;
    }
    return out;
}

function parsePaxSize(value: string): number {
    const size = /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(size)) throw new TarFormatError(`pax size ${JSON.stringify(value)} is not a valid size`);
    return size;
}

function dataSize(header: RawHeader, meta: PendingMeta): number {
    return HEADER_ONLY.has(header.typeflag) ? 0 : meta.size ?? header.size;
}

function finishEntry(header: RawHeader, meta: PendingMeta, body: BodyReader): TarEntry {
    const typeflag = header.typeflag;
    return {
        name: meta.path ?? header.name,
        type: meta.sparse ? "unsupported" : TYPES[typeflag] ?? "unsupported",
        typeflag: meta.sparse ? `${typeflag} (GNU sparse)` : typeflag,
        mode: header.mode,
        linkname: meta.linkpath ?? header.linkname,
        size: body.size,
        dataOffset: body.dataOffset,
        body: () => body.chunks(),
    };
}

function isZeroBlock(block: Buffer): boolean {
    for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
    return true;
}

// A lone zero block followed by more headers is rejected, so that no other reader can see entries
// this one skipped (GNU tar with --ignore-zeros would).
async function expectEndOfArchive(src: ByteSource): Promise<void> {
    const next = await src.read(BLOCK);
    if (next.length === BLOCK && !isZeroBlock(next)) {
        throw new TarFormatError(`tar archive has data after a zero block at offset ${src.position - 2 * BLOCK}`);
    }
}

function truncated(at: number): TarFormatError {
    return new TarFormatError(`tar archive ends unexpectedly at offset ${at}`);
}

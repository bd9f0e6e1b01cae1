// File helpers shared by the build steps: digests, staging directories and rename-into-place.
// Artifacts (UKIs, images, ISOs) run to hundreds of MB: whatever reads one reads it in bounded chunks,
// never whole (issue 12: the provider process stays under 300 MB).
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { pipeline } from "stream/promises";

/** How much of a file the helpers below hold at a time. */
export const READ_CHUNK = 1 << 20;
/**
 * Window of firstMatchInFile. Each window becomes a string for the regex; at 64 KiB those stay in V8's
 * young generation and are freed at once, while 1 MiB strings pile up in the large-object space until a
 * full GC (scanning a 630 MB file: +8 MB of peak RSS against +77 MB).
 */
export const SCAN_CHUNK = 64 << 10;

/**
 * Whether `p` is `root` or lies under it, by the paths' text (symlinks are not followed). A name that
 * merely starts with two dots ("..data") is inside; only a ".." component climbs out.
 */
export function isInside(root: string, p: string): boolean {
    const rel = path.relative(root, p);
    return rel === "" || (rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

export function sha256Hex(data: string | Buffer): string {
    return createHash("sha256").update(data).digest("hex");
}

/**
 * sha256File reads into one buffer, not a stream: a read stream allocates a fresh 64 KiB buffer per read,
 * left to the GC (hashing a 630 MB UKI: +42 MB of peak RSS that way, +4 MB this way). Calls that overlap
 * (tree-digest hashes 8 files at a time, thousands in a row) hand their buffers on instead of allocating
 * 1 MiB each; they are dropped once no call runs.
 */
const spareBuffers: Buffer[] = [];
let hashing = 0;

export async function sha256File(file: string): Promise<string> {
    const hash = createHash("sha256");
    const fh = await fs.promises.open(file, "r");
    hashing++;
    // allocUnsafe: only the bytes read into it are ever hashed
    const buf = spareBuffers.pop() ?? Buffer.allocUnsafe(READ_CHUNK);
    try {
        for (;;) {
            const { bytesRead } = await fh.read(buf, 0, buf.length, null);
            if (bytesRead === 0) break;
            hash.update(buf.subarray(0, bytesRead));
        }
    } finally {
        if (--hashing > 0) spareBuffers.push(buf);
        else spareBuffers.length = 0;
        await fh.close();
    }
    return hash.digest("hex");
}

/** sha256 of a file, or undefined when it does not exist. */
export async function sha256FileIfExists(file: string): Promise<string | undefined> {
    try {
        return await sha256File(file);
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
    }
}

/**
 * True when bytes [offset, offset + size) of `a` and `b` are the same, the range cut at each file's end
 * (as Buffer.subarray cuts it): one file ending inside the range and the other not is a difference.
 */
export async function rangesEqual(a: string, b: string, range: { offset: number; size: number }, opts: { chunkBytes?: number } = {}): Promise<boolean> {
    const chunk = opts.chunkBytes ?? READ_CHUNK;
    const fa = await fs.promises.open(a, "r");
    try {
        const fb = await fs.promises.open(b, "r");
        try {
            const ba = Buffer.alloc(chunk);
            const bb = Buffer.alloc(chunk);
            const end = range.offset + range.size;
            for (let pos = range.offset; pos < end; pos += chunk) {
                const want = Math.min(chunk, end - pos);
                const ra = await readFull(fa, ba, want, pos);
                const rb = await readFull(fb, bb, want, pos);
                if (ra !== rb || !ba.subarray(0, ra).equals(bb.subarray(0, rb))) return false;
                if (ra < want) return true; // both files end here
            }
            return true;
        } finally {
            await fb.close();
        }
    } finally {
        await fa.close();
    }
}

/** Fills buf[0, want) from `position`; fewer bytes only at the end of the file. */
async function readFull(fh: fs.promises.FileHandle, buf: Buffer, want: number, position: number): Promise<number> {
    let got = 0;
    while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
    }
    return got;
}

/**
 * What re.exec(fs.readFileSync(file).toString("latin1")) finds, one chunk in memory at a time; `index` is
 * the file offset, `input` only the window it was found in. Exact for a regex whose matches are at most
 * maxMatchBytes long and that has no anchors, lookarounds or \b (those would see a window's edges):
 * windows overlap by maxMatchBytes - 1 bytes, and a match is taken only once the window holds
 * maxMatchBytes from its start (or the file ends there), so a longer alternative at the same place, or an
 * earlier match cut by the window's end, cannot be missed.
 */
export function firstMatchInFile(file: string, re: RegExp, opts: { maxMatchBytes: number; chunkBytes?: number }): RegExpExecArray | null {
    if (re.global || re.sticky) throw new Error(`firstMatchInFile: ${re} must not be global or sticky`);
    const max = opts.maxMatchBytes;
    const chunk = opts.chunkBytes ?? SCAN_CHUNK;
    if (!(max >= 1 && chunk >= 1)) throw new Error(`firstMatchInFile: maxMatchBytes ${max} and chunkBytes ${chunk} must be at least 1`);
    const buf = Buffer.alloc(max - 1 + chunk);
    const fd = fs.openSync(file, "r");
    try {
        let start = 0; // file offset of buf[0]
        let held = 0; // bytes in buf
        for (;;) {
            let n = 0;
            while (held < buf.length && (n = fs.readSync(fd, buf, held, buf.length - held, start + held)) > 0) held += n;
            const atEnd = held < buf.length; // the loop stops short of a full window only at the end of the file
            const m = re.exec(buf.toString("latin1", 0, held));
            if (m && (atEnd || m.index + max <= held)) {
                m.index += start;
                return m;
            }
            if (atEnd) return null;
            // Keep the last max - 1 bytes: a match starting in them may still be longer than what is here.
            const keep = max - 1;
            buf.copy(buf, 0, held - keep, held);
            start += held - keep;
            held = keep;
        }
    } finally {
        fs.closeSync(fd);
    }
}

/** Stable JSON: object keys sorted at every level, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
    return JSON.stringify(value, (_key, v) =>
        v && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
            : v,
    );
}

/** Runs `fn` over `items`, at most `concurrency` at a time (file hashing: reads overlap, hashing stays on one core). */
export async function forEachConcurrently<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
        while (next < items.length) await fn(items[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

// Byte ranges of files: copied in and out, written and read at an offset, compared while hashing.

const COPY_CHUNK = 1 << 20;


/**
 * Copies all of `source` into `target` at `offset`, handing each chunk to `visit` (in order, whole
 * `chunkBytes` pieces except the last) while the next read and this write run on libuv's threads:
 * one read of the source serves both the copy and whatever `visit` computes from it.
 */
export async function copyIntoVisiting(source: string, target: string, offset: number, visit: (chunk: Buffer) => void, chunkBytes = COPY_CHUNK): Promise<number> {
    const src = await fs.promises.open(source, "r");
    try {
        const dst = await fs.promises.open(target, "r+");
        try {
            const bufs = [Buffer.allocUnsafe(chunkBytes), Buffer.allocUnsafe(chunkBytes)];
            let reading = readFull(src, bufs[0], chunkBytes, 0);
            let writing: Promise<unknown> = Promise.resolve();
            let pos = 0;
            for (let i = 0; ; i++) {
                const n = await reading;
                if (n === 0) break;
                const chunk = bufs[i % 2].subarray(0, n);
                await writing; // the other buffer's write: it is read into next
                reading = n < chunkBytes ? Promise.resolve(0) : readFull(src, bufs[(i + 1) % 2], chunkBytes, pos + n);
                writing = writeFull(dst, chunk, offset + pos);
                visit(chunk);
                pos += n;
            }
            await writing;
            return pos;
        } finally {
            await dst.close();
        }
    } finally {
        await src.close();
    }
}

async function writeFull(fh: fs.promises.FileHandle, data: Buffer, position: number): Promise<void> {
    for (let done = 0; done < data.length; ) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
        done += bytesWritten;
    }
}

export async function copyRange(source: string, offset: number, size: number, target: string): Promise<void> {
    await pipeline(
        fs.createReadStream(source, { start: offset, end: offset + size - 1, highWaterMark: COPY_CHUNK }),
        fs.createWriteStream(target),
    );
}

export function writeAt(file: string, offset: number, data: Buffer): void {
    const fd = fs.openSync(file, "r+");
    try {
        fs.writeSync(fd, data, 0, data.length, offset);
    } finally {
        fs.closeSync(fd);
    }
}

export function readAt(file: string, offset: number, size: number): Buffer {
    const fd = fs.openSync(file, "r");
    try {
        const buf = Buffer.alloc(size);
        const read = fs.readSync(fd, buf, 0, size, offset);
        return buf.subarray(0, read);
    } finally {
        fs.closeSync(fd);
    }
}

/** `n` rounded up to a whole number of `multiple`s (tar blocks, partition alignment, erofs slots). */
export function roundUp(n: number, multiple: number): number {
    return Math.ceil(n / multiple) * multiple;
}

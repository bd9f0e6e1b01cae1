// The check of a freshly written image: its sha256 taken from the file as it is on disk, read front to
// back once, with every range the build meant to write compared (memcmp) against what it meant to write
// there. Reading in steps (readTo) lets the first part overlap the signing, which only the signature
// partition near the end waits for.
import { createHash, Hash } from "crypto";
import * as fs from "fs";
import { READ_CHUNK } from "../files";

/** Bytes the build wrote at `offset`: held in memory, or the whole of a file. */
export type Expected = { name: string; offset: number; bytes: Buffer } | { name: string; offset: number; size: number; file: string };

export class ReadBack {
    private readonly hash: Hash = createHash("sha256");
    private readonly expected: (Expected & { fd?: number })[] = [];
    private position = 0;
    private readonly buf = Buffer.allocUnsafe(READ_CHUNK);
    private readonly theirs = Buffer.allocUnsafe(READ_CHUNK);
    /** The first range that did not hold what was written there. */
    differs?: string;

    private constructor(private readonly fh: fs.promises.FileHandle) {}

    static async open(file: string): Promise<ReadBack> {
        return new ReadBack(await fs.promises.open(file, "r"));
    }

    /** Adds a range to compare; it must lie beyond what was read so far. */
    expect(e: Expected): void {
        if (e.offset < this.position) throw new Error(`internal: ${e.name} at ${e.offset} was already read past (${this.position})`);
        if ("file" in e && fs.statSync(e.file).size !== e.size) this.differs ??= e.name;
        this.expected.push("file" in e ? { ...e, fd: fs.openSync(e.file, "r") } : e);
    }

    /** Reads and hashes the file up to `end` (or its end), comparing the expected ranges on the way. */
    async readTo(end: number): Promise<void> {
        while (this.position < end) {
            const want = Math.min(this.buf.length, end - this.position);
            const { bytesRead } = await this.fh.read(this.buf, 0, want, this.position);
            if (bytesRead === 0) break;
            const chunk = this.buf.subarray(0, bytesRead);
            this.hash.update(chunk);
            if (!this.differs) this.compare(chunk, this.position);
            this.position += bytesRead;
        }
    }

    /** The sha256 of everything read; the file must have ended where the expected ranges do. */
    async finish(): Promise<{ sha256: string; size: number; differs?: string }> {
        try {
            await this.readTo(Number.MAX_SAFE_INTEGER);
            for (const e of this.expected) if (e.offset + sizeOf(e) > this.position) this.differs ??= e.name; // cut short by the file's end
            return { sha256: this.hash.digest("hex"), size: this.position, ...(this.differs ? { differs: this.differs } : {}) };
        } finally {
            await this.close();
        }
    }

    async close(): Promise<void> {
        for (const e of this.expected) if (e.fd !== undefined) fs.closeSync(e.fd);
        this.expected.length = 0;
        await this.fh.close().catch(() => undefined);
    }

    private compare(chunk: Buffer, at: number): void {
        for (const e of this.expected) {
            const from = Math.max(e.offset, at);
            const to = Math.min(e.offset + sizeOf(e), at + chunk.length);
            if (from >= to) continue;
            const mine = chunk.subarray(from - at, to - at);
            let theirs: Buffer;
            if ("bytes" in e) theirs = e.bytes.subarray(from - e.offset, to - e.offset);
            else theirs = this.theirs.subarray(0, fs.readSync(e.fd!, this.theirs, 0, to - from, from - e.offset));
            if (!mine.equals(theirs)) {
                this.differs = e.name;
                return;
            }
        }
    }
}

function sizeOf(e: Expected): number {
    return "bytes" in e ? e.bytes.length : e.size;
}

// One pass over a PE image's bytes, in file order, for the two sums signing needs: the Authenticode
// digest (pe.ts authenticodeRegions says which bytes it covers) and the PE checksum. A writer feeds it
// what it writes, so an image it just wrote is never read back to be hashed (uki-writer.ts); the
// separate readers in pe.ts (authenticodeDigest, peChecksum) give the same values from a file.
import { createHash, Hash } from "crypto";
import * as os from "os";
import { PeError } from "./pe";

const LITTLE_ENDIAN = os.endianness() === "LE";
const ONES = 0xffff;

/**
 * The ones'-complement sum of 16-bit little-endian words at even file offsets, as the PE checksum folds
 * them. Order does not matter (the sum is taken mod 0xffff), so parts of a file can be added in any
 * order, each with its file offset. Folded, the sum is 0 only when every word was 0, else 1..0xffff.
 */
export class OnesComplementSum {
    private total = 0;
    private nonzero = false;

    /** Adds `bytes`, which sit at `fileOffset` in the file (a byte at an odd offset is a word's high half). */
    add(bytes: Uint8Array, fileOffset: number): this {
        let i = 0;
        let off = fileOffset;
        let sum = 0;
        if (off % 2 === 1 && bytes.length > 0) {
            sum += bytes[0] << 8;
            i = 1;
            off++;
        }
        // Two words at a time through a 32-bit view: w = lo + 65536 * hi, and 65536 = 1 mod 0xffff.
        // Each 1 MiB of words stays below 2^53 before it is reduced.
        const at = bytes.byteOffset + i;
        if (LITTLE_ENDIAN && at % 4 === 0 && bytes.length - i >= 8) {
            const n = (bytes.length - i) >> 2;
            const words = new Uint32Array(bytes.buffer, at, n);
            const STEP = 1 << 18;
            for (let s = 0; s < n; s += STEP) {
                let part = 0;
                const e = Math.min(n, s + STEP);
                for (let w = s; w < e; w++) part += words[w];
                sum = (sum + (part % ONES)) % ONES;
                if (part !== 0) this.nonzero = true;
            }
            i += n << 2;
        }
        for (; i + 1 < bytes.length; i += 2) sum += bytes[i] | (bytes[i + 1] << 8);
        if (i < bytes.length) sum += bytes[i]; // a last byte at an even offset: a word's low half
        if (sum !== 0) this.nonzero = true;
        this.total = (this.total + (sum % ONES)) % ONES;
        return this;
    }

    /** Both sums together. */
    plus(other: OnesComplementSum): OnesComplementSum {
        const s = new OnesComplementSum();
        s.total = (this.total + other.total) % ONES;
        s.nonzero = this.nonzero || other.nonzero;
        return s;
    }

    /** The folded 16-bit sum. */
    folded(): number {
        if (!this.nonzero) return 0;
        return this.total === 0 ? ONES : this.total;
    }

    /** The PE checksum of a file of `length` bytes whose words (the checksum field's own left out, i.e. zero) are this sum. */
    checksum(length: number): number {
        return (this.folded() + length) >>> 0;
    }
}

interface Region {
    offset: number;
    size: number;
}

/**
 * The Authenticode digest and the checksum word sum of an image fed to it in file order. `regions` and
 * `dataSize` are authenticodeRegions' for the finished image; the bytes fed must carry zeros in the
 * checksum field and in the security directory entry (as an unsigned image does), so that the word sum
 * is the checksum's.
 */
export class ImageSums {
    private readonly hash: Hash = createHash("sha256");
    private readonly words = new OnesComplementSum();
    private pos = 0;
    private next = 0;

    constructor(private readonly regions: readonly Region[], private readonly dataSize: number) {
        for (let i = 1; i < regions.length; i++) {
            if (regions[i].offset < regions[i - 1].offset + regions[i - 1].size) {
                throw new PeError("the Authenticode regions overlap or are out of order; the image cannot be hashed in one pass");
            }
        }
    }

    /** Bytes fed so far. */
    get position(): number {
        return this.pos;
    }

    update(chunk: Buffer): void {
        const start = this.pos;
        const end = start + chunk.length;
        while (this.next < this.regions.length) {
            const r = this.regions[this.next];
            const rEnd = r.offset + r.size;
            if (rEnd <= start) {
                this.next++;
                continue;
            }
            if (r.offset >= end) break;
            const a = Math.max(r.offset, start);
            const b = Math.min(rEnd, end);
            this.hash.update(chunk.subarray(a - start, b - start));
            if (rEnd > end) break;
            this.next++;
        }
        this.words.add(chunk, start);
        this.pos = end;
    }

    /**
     * The digest, once the whole file was fed: the zero padding sbsign adds up to the 8-byte multiple
     * (dataSize) is hashed here. The word sum covers the file as fed (zeros add nothing).
     */
    finish(): { authenticode: Buffer; words: OnesComplementSum; fileSize: number; dataSize: number } {
        const fileSize = this.pos;
        if (this.dataSize > fileSize) this.update(Buffer.alloc(this.dataSize - fileSize));
        if (this.next < this.regions.length) throw new PeError(`the image ended at byte ${this.pos}, before the regions its headers describe`);
        return { authenticode: this.hash.digest(), words: this.words, fileSize, dataSize: this.dataSize };
    }
}

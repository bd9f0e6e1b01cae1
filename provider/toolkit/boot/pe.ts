// A small PE/COFF reader for EFI binaries (stubs, UKIs, systemd-boot): headers, section table, the
// Authenticode image digest (computed exactly as sbsigntool and EDK2 do) and the PE checksum.
// Only the headers are read to parse; digests stream the file.
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";

export class PeError extends Error {
    readonly code = "PE";
}

export interface PeSection {
    name: string;
    virtualSize: number;
    /** RVA (relative to ImageBase). */
    virtualAddress: number;
    sizeOfRawData: number;
    pointerToRawData: number;
    characteristics: number;
}

export interface PeInfo {
    fileSize: number;
    machine: number;
    /** PE32+ (0x20b) or PE32 (0x10b). */
    magic: number;
    timeDateStamp: number;
    imageBase: bigint;
    sectionAlignment: number;
    fileAlignment: number;
    sizeOfImage: number;
    sizeOfHeaders: number;
    checksum: number;
    majorImageVersion: number;
    minorImageVersion: number;
    /** File offsets of fields this package rewrites or skips when hashing. */
    offsets: { timeDateStamp: number; checksum: number; certificateTableEntry: number };
    /** The security directory: a file offset and size (0, 0 when unsigned). */
    certificateTable: { offset: number; size: number };
    sections: PeSection[];
}

const SECTION_HEADER_SIZE = 40;
const CERT_TABLE_INDEX = 4;
const HEADER_PROBE = 64 * 1024;
const READ_CHUNK = 1 << 20;
/**
 * readSectionData serves small stub sections (.sdmagic, .sbat); a VirtualSize beyond this comes from a
 * corrupt or hostile header, and honouring it would allocate up to 4 GiB of zeros.
 */
const MAX_SECTION_READ = 64 << 20;

/** Parses the PE headers and the section table of `file`. */
export function readPeSections(file: string): PeInfo {
    const fd = fs.openSync(file, "r");
    try {
        const fileSize = fs.fstatSync(fd).size;
        const head = Buffer.alloc(Math.min(fileSize, HEADER_PROBE));
        fs.readSync(fd, head, 0, head.length, 0);
        return parsePeHeaders(head, fileSize, file);
    } finally {
        fs.closeSync(fd);
    }
}

/** Parses PE headers from the first bytes of an image (enough to hold the section table). */
export function parsePeHeaders(head: Buffer, fileSize: number, label = "image"): PeInfo {
    const fail = (why: string): never => {
        throw new PeError(`${label}: not a PE image: ${why}`);
    };
    if (head.length < 0x40 || head.toString("latin1", 0, 2) !== "MZ") fail("no MZ header");
    const peOff = head.readUInt32LE(0x3c);
    if (peOff + 24 > head.length || head.toString("latin1", peOff, peOff + 4) !== "PE\0\0") fail("no PE signature");
    const coff = peOff + 4;
    const machine = head.readUInt16LE(coff);
    const nSections = head.readUInt16LE(coff + 2);
    const timeDateStamp = head.readUInt32LE(coff + 4);
    const optSize = head.readUInt16LE(coff + 16);
    const opt = coff + 20;
    if (opt + optSize > head.length) fail("optional header beyond the headers read");
    if (optSize < 2) fail(`optional header of ${optSize} bytes has no magic`);
    const magic = head.readUInt16LE(opt);
    let dirOff: number;
    if (magic === 0x20b) dirOff = opt + 112;
    else if (magic === 0x10b) dirOff = opt + 96;
    else return fail(`unknown optional header magic 0x${magic.toString(16)}`);
    // Checked before any field is read: a short optional header at the end of a short file would
    // otherwise be read past the buffer.
    if (dirOff + 8 * (CERT_TABLE_INDEX + 1) > opt + optSize) fail("no security directory entry");
    const imageBase = magic === 0x20b ? head.readBigUInt64LE(opt + 24) : BigInt(head.readUInt32LE(opt + 28));
    const nDirs = head.readUInt32LE(dirOff - 4);
    if (nDirs <= CERT_TABLE_INDEX) fail("no security directory entry");
    const certEntry = dirOff + 8 * CERT_TABLE_INDEX;
    const secTable = opt + optSize;
    if (secTable + nSections * SECTION_HEADER_SIZE > head.length) fail("section table beyond the headers read");
    const sections: PeSection[] = [];
    for (let i = 0; i < nSections; i++) {
        const s = secTable + i * SECTION_HEADER_SIZE;
        const rawName = head.subarray(s, s + 8);
        const nul = rawName.indexOf(0);
        sections.push({
            name: rawName.toString("latin1", 0, nul < 0 ? 8 : nul),
            virtualSize: head.readUInt32LE(s + 8),
            virtualAddress: head.readUInt32LE(s + 12),
            sizeOfRawData: head.readUInt32LE(s + 16),
            pointerToRawData: head.readUInt32LE(s + 20),
            characteristics: head.readUInt32LE(s + 36),
        });
    }
    return {
        fileSize,
        machine,
        magic,
        timeDateStamp,
        imageBase,
        sectionAlignment: head.readUInt32LE(opt + 32),
        fileAlignment: head.readUInt32LE(opt + 36),
        sizeOfImage: head.readUInt32LE(opt + 56),
        sizeOfHeaders: head.readUInt32LE(opt + 60),
        checksum: head.readUInt32LE(opt + 64),
        majorImageVersion: head.readUInt16LE(opt + 44),
        minorImageVersion: head.readUInt16LE(opt + 46),
        offsets: { timeDateStamp: coff + 4, checksum: opt + 64, certificateTableEntry: certEntry },
        certificateTable: { offset: head.readUInt32LE(certEntry), size: head.readUInt32LE(certEntry + 4) },
        sections,
    };
}

/** Reads the bytes a section holds (VirtualSize bytes, what the loader and systemd-stub see). */
export function readSectionData(file: string, info: PeInfo, name: string): Buffer | undefined {
    const s = info.sections.find((x) => x.name === name);
    if (!s) return undefined;
    if (s.virtualSize > MAX_SECTION_READ) {
        throw new PeError(`section ${name} claims a VirtualSize of ${s.virtualSize} bytes, more than the ${MAX_SECTION_READ} this reader accepts`);
    }
    const size = Math.min(s.virtualSize, s.sizeOfRawData);
    const buf = Buffer.alloc(s.virtualSize); // bytes past the raw data are zero in memory
    const fd = fs.openSync(file, "r");
    try {
        fs.readSync(fd, buf, 0, size, s.pointerToRawData);
    } finally {
        fs.closeSync(fd);
    }
    return buf;
}

/**
 * A section's bytes as the loader sees them (raw data, zero-padded to VirtualSize), streamed to `out`:
 * for sections too large to hold in memory (.linux, .initrd). The raw data must lie inside the file, and
 * the zero padding past it is held to MAX_SECTION_READ as readSectionData's whole section is (a larger
 * VirtualSize comes from a corrupt or hostile header).
 */
export function copySectionData(file: string, s: PeSection, out: string): void {
    const raw = Math.min(s.virtualSize, s.sizeOfRawData);
    if (s.virtualSize - raw > MAX_SECTION_READ) {
        throw new PeError(`section ${s.name} claims ${s.virtualSize - raw} bytes of zero padding past its raw data, more than the ${MAX_SECTION_READ} this reader accepts`);
    }
    const fd = fs.openSync(file, "r");
    const wd = fs.openSync(out, "w");
    try {
        const buf = Buffer.alloc(Math.min(READ_CHUNK, Math.max(raw, 1)));
        for (let done = 0; done < raw;) {
            const n = fs.readSync(fd, buf, 0, Math.min(buf.length, raw - done), s.pointerToRawData + done);
            if (n <= 0) throw new PeError(`section ${s.name} is cut short by the end of ${file}`);
            fs.writeSync(wd, buf, 0, n);
            done += n;
        }
        if (s.virtualSize > raw) fs.ftruncateSync(wd, s.virtualSize);
    } finally {
        fs.closeSync(fd);
        fs.closeSync(wd);
    }
}

interface Region {
    offset: number;
    size: number;
}

/**
 * The regions an Authenticode digest covers and the padded data size, as sbsigntool's image_find_regions
 * computes them (EDK2 hashes the same bytes): the headers minus the checksum and the security directory
 * entry, each section's raw data in file order, then everything after SizeOfHeaders + sum(raw sizes) up to
 * the certificate table ("endjunk"). The image is zero-padded to a multiple of 8 (the padding is hashed),
 * because the certificate table must start 8-aligned.
 */
export function authenticodeRegions(info: PeInfo): { regions: Region[]; dataSize: number } {
    // The header regions run from the fields to SizeOfHeaders; one that ends before the security directory
    // entry or past the file would be hashed as a negative size or as gigabytes of padding.
    const headerFields = info.offsets.certificateTableEntry + 8;
    if (info.sizeOfHeaders < headerFields || info.sizeOfHeaders > info.fileSize) {
        throw new PeError(`SizeOfHeaders ${info.sizeOfHeaders} does not cover the ${headerFields} bytes of headers within the ${info.fileSize}-byte file`);
    }
    let size = info.fileSize;
    for (;;) {
        const regions: Region[] = [
            { offset: 0, size: info.offsets.checksum },
            { offset: info.offsets.checksum + 4, size: info.offsets.certificateTableEntry - (info.offsets.checksum + 4) },
            { offset: info.offsets.certificateTableEntry + 8, size: info.sizeOfHeaders - (info.offsets.certificateTableEntry + 8) },
        ];
        let bytes = info.sizeOfHeaders;
        for (const s of info.sections) {
            if (s.sizeOfRawData === 0) continue;
            if (s.pointerToRawData + s.sizeOfRawData > size) {
                throw new PeError(`section ${s.name} extends beyond the end of the file`);
            }
            regions.push({ offset: s.pointerToRawData, size: s.sizeOfRawData });
            bytes += s.sizeOfRawData;
        }
        regions.sort((a, b) => a.offset - b.offset);
        const certSize = info.certificateTable.size;
        if (bytes + certSize < size) regions.push({ offset: bytes, size: size - bytes - certSize });
        const last = regions[regions.length - 1];
        const dataSize = align(last.offset + last.size, 8);
        if (dataSize > size) {
            size = dataSize; // sbsign zero-extends the buffer and parses again
            continue;
        }
        return { regions, dataSize };
    }
}

export interface DigestOptions {
    /** Bytes read at a time (default 1 MiB); the image is never held whole. */
    chunkBytes?: number;
}

/** The Authenticode SHA-256 digest of an unsigned image, byte-compatible with sbsign/sbverify. */
export async function authenticodeDigest(file: string, opts: DigestOptions = {}): Promise<{ digest: Buffer; dataSize: number }> {
    const info = readPeSections(file);
    if (info.certificateTable.size !== 0) throw new PeError(`${file} is already signed; sign the unsigned image`);
    const { regions, dataSize } = authenticodeRegions(info);
    const hash = createHash("sha256");
    const fh = await fs.promises.open(file, "r");
    try {
        const buf = Buffer.alloc(opts.chunkBytes ?? READ_CHUNK);
        for (const r of regions) {
            let pos = r.offset;
            const end = r.offset + r.size;
            while (pos < end) {
                const want = Math.min(buf.length, end - pos);
                if (pos >= info.fileSize) {
                    // The zero padding past the end of the file (a few bytes, to the 8-byte multiple sbsign pads to).
                    hash.update(buf.fill(0, 0, want).subarray(0, want));
                    pos += want;
                    continue;
                }
                const { bytesRead } = await fh.read(buf, 0, Math.min(want, info.fileSize - pos), pos);
                if (bytesRead === 0) throw new PeError(`${file} ended at byte ${pos} while it was hashed; it was ${info.fileSize} bytes (changed meanwhile?)`);
                hash.update(buf.subarray(0, bytesRead));
                pos += bytesRead;
            }
        }
    } finally {
        await fh.close();
    }
    return { digest: hash.digest(), dataSize };
}

/**
 * One sequential read of a signed image: the sha256 of the file, and the Authenticode digest of the
 * bytes on disk (what sbverify recomputes: the checksum, the certificate-table entry and the signature
 * itself left out). A writer that signed a digest it computed while writing compares the two here, in
 * the pass that takes the file's sha256 anyway.
 */
export async function signedImageDigests(file: string, opts: DigestOptions = {}): Promise<{ sha256: string; authenticode: Buffer }> {
    const info = readPeSections(file);
    if (info.certificateTable.size === 0) throw new PeError(`${file} is not signed`);
    const { regions, dataSize } = authenticodeRegions(info);
    const whole = createHash("sha256");
    const image = createHash("sha256");
    const fh = await fs.promises.open(file, "r");
    try {
        const buf = Buffer.alloc(opts.chunkBytes ?? READ_CHUNK);
        let next = 0; // the first region not yet fed whole
        for (let pos = 0; pos < info.fileSize;) {
            const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, info.fileSize - pos), pos);
            if (bytesRead === 0) throw new PeError(`${file} ended at byte ${pos} while it was read; it was ${info.fileSize} bytes (changed meanwhile?)`);
            const end = pos + bytesRead;
            whole.update(buf.subarray(0, bytesRead));
            // The regions are sorted and disjoint: feed each one's part that lies in this chunk.
            for (let r = next; r < regions.length && regions[r].offset < end; r++) {
                const from = Math.max(regions[r].offset, pos);
                const to = Math.min(regions[r].offset + regions[r].size, end);
                if (to > from) image.update(buf.subarray(from - pos, to - pos));
                if (regions[r].offset + regions[r].size <= end) next = r + 1;
            }
            pos = end;
        }
        // The zero padding past the end of the file, to the 8-byte multiple sbsign hashes.
        const last = regions[regions.length - 1];
        if (last && dataSize > info.fileSize && last.offset + last.size > info.fileSize) image.update(Buffer.alloc(last.offset + last.size - info.fileSize));
    } finally {
        await fh.close();
    }
    return { sha256: whole.digest("hex"), authenticode: image.digest() };
}

/**
 * The PE checksum (ones'-complement 16-bit sum folded, plus the file length), skipping the field itself.
 * `chunkBytes` must be even, so that 16-bit words never straddle chunks.
 */
export async function peChecksum(file: string, checksumOffset: number, opts: DigestOptions = {}): Promise<number> {
    const chunk = opts.chunkBytes ?? READ_CHUNK;
    if (chunk < 2 || chunk % 2 !== 0) throw new PeError(`peChecksum: chunkBytes ${chunk} must be even`);
    // The PE checksum folds each 16-bit word in with an end-around carry. That running fold is 0 while
    // every word so far was 0 and otherwise ((total - 1) mod 65535) + 1 of the plain total, so the words
    // are simply added (exact in a double: at most 2^32 words of < 2^16) and folded once at the end;
    // adding through a Uint16Array view is ~10x faster than readUInt16LE word by word.
    let total = 0;
    let length = 0;
    const fh = await fs.promises.open(file, "r");
    try {
        const buf = Buffer.alloc(chunk);
        const words = LITTLE_ENDIAN && buf.byteOffset % 2 === 0 ? new Uint16Array(buf.buffer, buf.byteOffset, chunk >> 1) : undefined;
        const wordAt = (i: number, bytesRead: number) => (i + 1 < bytesRead ? buf.readUInt16LE(i) : buf[i]);
        for (;;) {
            const { bytesRead } = await fh.read(buf, 0, buf.length, length);
            if (bytesRead === 0) break;
            const whole = bytesRead >> 1;
            if (words) for (let w = 0; w < whole; w++) total += words[w];
            else for (let i = 0; i < whole * 2; i += 2) total += buf.readUInt16LE(i);
            if (bytesRead % 2 === 1) total += buf[bytesRead - 1]; // a last odd byte counts alone
            // The checksum field's own words (those starting inside it) are left out.
            for (let off = checksumOffset + (checksumOffset % 2); off < checksumOffset + 4; off += 2) {
                if (off >= length && off < length + bytesRead) total -= wordAt(off - length, bytesRead);
            }
            length += bytesRead;
        }
    } finally {
        await fh.close();
    }
    const folded = total === 0 ? 0 : ((total - 1) % 0xffff) + 1;
    return (folded + length) >>> 0;
}

const LITTLE_ENDIAN = os.endianness() === "LE";

/**
 * Sets TimeDateStamp (objcopy writes the current time into every PE it writes) and recomputes the
 * checksum, so the same inputs give the same bytes.
 */
export async function normalizePeTimestamp(file: string, timeDateStamp: number): Promise<void> {
    const info = readPeSections(file);
    const fh = await fs.promises.open(file, "r+");
    try {
        const ts = Buffer.alloc(4);
        ts.writeUInt32LE(timeDateStamp >>> 0, 0);
        await fh.write(ts, 0, 4, info.offsets.timeDateStamp);
    } finally {
        await fh.close();
    }
    const sum = await peChecksum(file, info.offsets.checksum);
    const fh2 = await fs.promises.open(file, "r+");
    try {
        const cs = Buffer.alloc(4);
        cs.writeUInt32LE(sum, 0);
        await fh2.write(cs, 0, 4, info.offsets.checksum);
    } finally {
        await fh2.close();
    }
}

export function align(x: number, a: number): number {
    return Math.ceil(x / a) * a;
}

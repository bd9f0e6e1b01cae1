// A read-only reader of the erofs on-disk format (linux fs/erofs/erofs_fs.h), just enough to list
// one directory of an image without mounting or extracting it: `pulumi preview` needs the
// extension-release name of images that are hundreds of MB, and erofs-utils 1.5 has no way to read a
// filesystem at an offset inside a GPT image. The image is untrusted: every offset is bounds-checked
// against the filesystem, every read is small and positional, and every loop has a fixed bound.
import * as fs from "fs";
import { ExtensionKind, extensionReleaseDir } from "./ddi-layout";
import { roundUp } from "../files";

export class ErofsError extends Error {
    readonly code = "EROFS";
}

export type ErofsEntryType = "file" | "dir" | "symlink" | "other";

export interface ErofsDirEntry {
    name: string;
    type: ErofsEntryType;
}

const SUPERBLOCK_OFFSET = 1024;
const SUPERBLOCK_SIZE = 128;
const EROFS_MAGIC = 0xe0f5e1e2;
const FEATURE_COMPAT_SB_CHKSUM = 0x1;
/** Every incompat bit up to XATTR_PREFIXES changes only compression or xattrs, which a listing never reads;
 * 48BIT (0x80) and METABOX (0x100) move inodes and blocks, so images with them are refused. */
const FEATURE_INCOMPAT_UNDERSTOOD = 0x7f;
/** The kernel takes 512 B up to 64 KiB pages. */
const MIN_BLOCK_BITS = 9;
const MAX_BLOCK_BITS = 16;

/** Inodes are addressed in 32-byte slots from the start of the metadata area. */
const INODE_SLOT_SIZE = 32;
const COMPACT_INODE_SIZE = 32;
const EXTENDED_INODE_SIZE = 64;
/** Bit 0 = extended inode, bits 1-3 = data layout, bit 4 = nlink-is-1 / dot-omitted hints we do not need. */
const INODE_FORMAT_UNDERSTOOD = 0x1f;
const XATTR_IBODY_HEADER_SIZE = 12;

const LAYOUT_FLAT_PLAIN = 0;
const LAYOUT_COMPRESSED_FULL = 1;
const LAYOUT_FLAT_INLINE = 2;
const LAYOUT_COMPRESSED_COMPACT = 3;
const LAYOUT_CHUNK_BASED = 4;

const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;
const CHUNK_FORMAT_INDEXES = 0x20;
/** blkbits and INDEXES; the 48BIT chunk format (0x40) is refused with the 48BIT feature. */
const CHUNK_FORMAT_UNDERSTOOD = 0x3f;
const CHUNK_BLOCK_MAP_ENTRY_SIZE = 4;
const CHUNK_INDEX_SIZE = 8;
const NULL_BLOCK_ADDRESS = 0xffffffff;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

const DIRENT_SIZE = 12;
const NAME_MAX = 255;
/** EROFS_FT_* are the generic FT_* values. */
const FILE_TYPES: Record<number, ErofsEntryType> = { 1: "file", 2: "dir", 7: "symlink" };

/** A directory of this size holds hundreds of thousands of entries; anything larger is a corrupt i_size. */
const MAX_DIRECTORY_BYTES = 16 << 20;
const MAX_PATH_COMPONENTS = 64;

const RELEASE_PREFIX = "extension-release.";

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * The entries of `dirPath` (without "." and ".."), sorted by name, in the erofs filesystem that
 * starts at byte `offset` of `file`; undefined when a component of the path does not exist.
 * Symlinks on the way are not followed: a path through one is "not a directory".
 */
export async function listErofsDirectory(file: string, offset: number, dirPath: string): Promise<ErofsDirEntry[] | undefined> {
    const components = pathComponents(dirPath);
    const handle = await fs.promises.open(file, "r");
    try {
        const image = await openFilesystem(handle, file, offset);
        const dir = await resolveDirectory(image, components);
        if (!dir) return undefined;
        const entries = (await readDirectory(image, dir))
            .filter((e) => e.name !== "." && e.name !== "..")
            .map((e) => ({ name: e.name, type: FILE_TYPES[e.fileType] ?? "other" }));
        return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } finally {
        await handle.close();
    }
}

/** NAME of every `extension-release.NAME` file or symlink the image's release folder holds, sorted; [] without the folder. */
export async function extensionReleaseNames(image: string, rootPartitionOffset: number, kind: ExtensionKind): Promise<string[]> {
    const entries = (await listErofsDirectory(image, rootPartitionOffset, extensionReleaseDir(kind))) ?? [];
    return entries
        .filter((e) => (e.type === "file" || e.type === "symlink") && e.name.startsWith(RELEASE_PREFIX) && e.name.length > RELEASE_PREFIX.length)
        .map((e) => e.name.slice(RELEASE_PREFIX.length));
}

function pathComponents(dirPath: string): string[] {
    const components = dirPath.split("/").filter((c) => c !== "");
    if (components.length > MAX_PATH_COMPONENTS) throw new ErofsError(`path '${dirPath}' has more than ${MAX_PATH_COMPONENTS} components`);
    return components;
}

// ---------------------------------------------------------------------------------------------
// Bounded reads and the superblock
// ---------------------------------------------------------------------------------------------

interface Filesystem {
    file: string;
    handle: fs.promises.FileHandle;
    /** Where the filesystem starts in the file. */
    base: number;
    /** Bytes of filesystem (blocks * block size); no read may reach past it. */
    size: number;
    blockBits: number;
    blockSize: number;
    /** Byte position of inode slot 0. */
    metaStart: number;
    rootNid: number;
    /** Chunk indexes name a device; with no extra devices the kernel masks the id away entirely. */
    deviceIdMask: number;
}

/** `length` bytes at `position` (relative to the start of the filesystem), refusing anything outside it. */
async function readBytes(image: Pick<Filesystem, "file" | "handle" | "base" | "size">, position: number, length: number, what: string): Promise<Buffer> {
    if (!Number.isSafeInteger(position) || position < 0 || length < 0 || position + length > image.size) {
        throw new ErofsError(`${image.file}: ${what} at byte ${position} (+${length}) lies outside the ${image.size}-byte filesystem`);
    }
    const buffer = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
        const { bytesRead } = await image.handle.read(buffer, filled, length - filled, image.base + position + filled);
        if (bytesRead === 0) throw new ErofsError(`${image.file}: ${what} at byte ${position} is cut short by the end of the file`);
        filled += bytesRead;
    }
    return buffer;
}

async function openFilesystem(handle: fs.promises.FileHandle, file: string, offset: number): Promise<Filesystem> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new ErofsError(`filesystem offset must be a non-negative integer, got ${offset}`);
    const available = (await handle.stat()).size - offset;
    // The block size is not known yet: bound the first read by the file alone.
    const probe = { file, handle, base: offset, size: Math.max(0, available) };
    const sb = await readBytes(probe, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, "the superblock");
    const magic = sb.readUInt32LE(0);
    if (magic !== EROFS_MAGIC) {
        throw new ErofsError(`${file}: no erofs filesystem at byte ${offset} (magic 0x${magic.toString(16).padStart(8, "0")}, expected 0x${EROFS_MAGIC.toString(16)})`);
    }
    const blockBits = sb.readUInt8(12);
    if (blockBits < MIN_BLOCK_BITS || blockBits > MAX_BLOCK_BITS) throw new ErofsError(`${file}: unsupported erofs block size 2^${blockBits}`);
    const blockSize = 2 ** blockBits;
    const incompat = sb.readUInt32LE(80);
    if (incompat & ~FEATURE_INCOMPAT_UNDERSTOOD) {
        throw new ErofsError(`${file}: unsupported erofs features 0x${(incompat & ~FEATURE_INCOMPAT_UNDERSTOOD).toString(16)} (incompat)`);
    }
    if (sb.readUInt8(90) !== 0) throw new ErofsError(`${file}: unsupported erofs directory block size (dirblkbits ${sb.readUInt8(90)})`);
    const blocks = sb.readUInt32LE(36);
    const size = blocks * blockSize;
    if (blocks === 0) throw new ErofsError(`${file}: the erofs superblock claims 0 blocks`);
    if (size > available) throw new ErofsError(`${file}: the erofs filesystem at byte ${offset} claims ${size} bytes, but only ${available} follow`);
    const image = { file, handle, base: offset, size };
    if (sb.readUInt32LE(8) & FEATURE_COMPAT_SB_CHKSUM) await verifySuperblockChecksum(image, blockSize, sb.readUInt32LE(4));
    const extraDevices = sb.readUInt16LE(86);
    return {
        ...image,
        blockBits,
        blockSize,
        metaStart: sb.readUInt32LE(40) * blockSize,
        rootNid: sb.readUInt16LE(14),
        deviceIdMask: 2 ** Math.ceil(Math.log2(extraDevices + 1)) - 1,
    };
}

/** The kernel refuses a superblock whose crc32c does not match; so do we, since every later offset comes from it. */
async function verifySuperblockChecksum(image: Pick<Filesystem, "file" | "handle" | "base" | "size">, blockSize: number, expected: number): Promise<void> {
    const length = blockSize > SUPERBLOCK_OFFSET ? blockSize - SUPERBLOCK_OFFSET : blockSize;
    const bytes = await readBytes(image, SUPERBLOCK_OFFSET, length, "the superblock");
    bytes.writeUInt32LE(0, 4); // the checksum is computed with its own field zeroed
    const actual = crc32cUnfinalized(bytes);
    if (actual !== expected) {
        throw new ErofsError(`${image.file}: erofs superblock checksum is 0x${actual.toString(16)}, expected 0x${expected.toString(16)}`);
    }
}

const CRC32C_TABLE = (() => {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
        table[n] = c >>> 0;
    }
    return table;
})();

/** Linux crc32c(~0, data): seeded with all ones and, unlike the textbook CRC-32C, not inverted at the end. */
function crc32cUnfinalized(data: Buffer): number {
    let crc = 0xffffffff;
    for (const byte of data) crc = CRC32C_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
    return crc >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Inodes and their data blocks
// ---------------------------------------------------------------------------------------------

interface Inode {
    nid: number;
    /** Byte position of the on-disk inode. */
    position: number;
    mode: number;
    size: bigint;
    layout: number;
    /** Inode plus inline xattrs: where inline tail data or the chunk table begins. */
    headerSize: number;
    /** i_u: the first block for flat layouts, the chunk format for chunk-based ones. */
    rawBlockAddress: number;
}

async function readInode(image: Filesystem, nid: bigint): Promise<Inode> {
    const maxNid = Math.floor(Math.max(0, image.size - image.metaStart) / INODE_SLOT_SIZE);
    if (nid >= BigInt(maxNid)) throw new ErofsError(`${image.file}: inode ${nid} lies outside the filesystem`);
    const position = image.metaStart + Number(nid) * INODE_SLOT_SIZE;
    const compact = await readBytes(image, position, COMPACT_INODE_SIZE, `inode ${nid}`);
    const format = compact.readUInt16LE(0);
    if (format & ~INODE_FORMAT_UNDERSTOOD) throw new ErofsError(`${image.file}: inode ${nid} has unsupported format bits 0x${format.toString(16)}`);
    const extended = (format & 1) === 1;
    const raw = extended ? await readBytes(image, position, EXTENDED_INODE_SIZE, `inode ${nid}`) : compact;
    const xattrCount = raw.readUInt16LE(2);
    const xattrSize = xattrCount === 0 ? 0 : XATTR_IBODY_HEADER_SIZE + (xattrCount - 1) * 4;
    return {
        nid: Number(nid),
        position,
        mode: raw.readUInt16LE(4),
        size: extended ? raw.readBigUInt64LE(8) : BigInt(raw.readUInt32LE(8)),
        layout: (format >> 1) & 7,
        headerSize: (extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE) + xattrSize,
        rawBlockAddress: raw.readUInt32LE(16),
    };
}

/** Where logical block `index` of an uncompressed inode lives, as a byte position in the filesystem. */
async function blockPosition(image: Filesystem, inode: Inode, index: number, blockCount: number, length: number): Promise<number> {
    switch (inode.layout) {
        case LAYOUT_FLAT_PLAIN:
            return (inode.rawBlockAddress + index) * image.blockSize;
        case LAYOUT_FLAT_INLINE:
            return index < blockCount - 1 ? (inode.rawBlockAddress + index) * image.blockSize : inlineTailPosition(image, inode, length);
        case LAYOUT_CHUNK_BASED:
            return chunkBlockPosition(image, inode, index);
        case LAYOUT_COMPRESSED_FULL:
        case LAYOUT_COMPRESSED_COMPACT:
            throw new ErofsError(`${image.file}: inode ${inode.nid} is a compressed directory, which erofs never writes`);
        default:
            throw new ErofsError(`${image.file}: inode ${inode.nid} has unsupported data layout ${inode.layout}`);
    }
}

/** The tail block of a FLAT_INLINE inode sits right after the inode and its xattrs, within one block. */
function inlineTailPosition(image: Filesystem, inode: Inode, length: number): number {
    const position = inode.position + inode.headerSize;
    if ((position % image.blockSize) + length > image.blockSize) {
        throw new ErofsError(`${image.file}: inline data of inode ${inode.nid} crosses a block boundary`);
    }
    return position;
}

/** A chunk-based inode is followed by a table with one entry per chunk: a bare block address, or an 8-byte index. */
async function chunkBlockPosition(image: Filesystem, inode: Inode, index: number): Promise<number> {
    const format = inode.rawBlockAddress & 0xffff;
    if (format & ~CHUNK_FORMAT_UNDERSTOOD) throw new ErofsError(`${image.file}: inode ${inode.nid} has unsupported chunk format 0x${format.toString(16)}`);
    const chunkSize = image.blockSize * 2 ** (format & CHUNK_FORMAT_BLKBITS_MASK);
    const byteOffset = index * image.blockSize;
    const chunk = Math.floor(byteOffset / chunkSize);
    const indexed = (format & CHUNK_FORMAT_INDEXES) !== 0;
    const entrySize = indexed ? CHUNK_INDEX_SIZE : CHUNK_BLOCK_MAP_ENTRY_SIZE;
    const table = roundUp(inode.position + inode.headerSize, entrySize);
    const entry = await readBytes(image, table + chunk * entrySize, entrySize, `chunk ${chunk} of inode ${inode.nid}`);
    const blockAddress = indexed ? entry.readUInt32LE(4) : entry.readUInt32LE(0);
    if (indexed && (entry.readUInt16LE(2) & image.deviceIdMask) !== 0) {
        throw new ErofsError(`${image.file}: inode ${inode.nid} keeps data on another device, which is unsupported`);
    }
    if (blockAddress === NULL_BLOCK_ADDRESS) throw new ErofsError(`${image.file}: directory inode ${inode.nid} has a hole`);
    return blockAddress * image.blockSize + (byteOffset - chunk * chunkSize);
}

// ---------------------------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------------------------

interface RawDirent {
    name: string;
    nid: bigint;
    fileType: number;
}

async function resolveDirectory(image: Filesystem, components: string[]): Promise<Inode | undefined> {
    let dir = expectDirectory(image, await readInode(image, BigInt(image.rootNid)), []);
    for (let i = 0; i < components.length; i++) {
        const entry = (await readDirectory(image, dir)).find((e) => e.name === components[i]);
        if (!entry) return undefined;
        dir = expectDirectory(image, await readInode(image, entry.nid), components.slice(0, i + 1));
    }
    return dir;
}

/** The inode's own mode decides, not the dirent's file type: the dirent is only a hint. */
function expectDirectory(image: Filesystem, inode: Inode, walked: string[]): Inode {
    if ((inode.mode & S_IFMT) !== S_IFDIR) throw new ErofsError(`${image.file}: '/${walked.join("/")}' is not a directory in the erofs filesystem`);
    return inode;
}

/** Every dirent of a directory inode, "." and ".." included, block by block. */
async function readDirectory(image: Filesystem, dir: Inode): Promise<RawDirent[]> {
    if (dir.size > BigInt(MAX_DIRECTORY_BYTES)) {
        throw new ErofsError(`${image.file}: directory inode ${dir.nid} claims ${dir.size} bytes (more than ${MAX_DIRECTORY_BYTES})`);
    }
    const size = Number(dir.size);
    const blockCount = Math.ceil(size / image.blockSize);
    const entries: RawDirent[] = [];
    for (let index = 0; index < blockCount; index++) {
        const length = Math.min(image.blockSize, size - index * image.blockSize);
        const position = await blockPosition(image, dir, index, blockCount, length);
        const block = await readBytes(image, position, length, `block ${index} of directory inode ${dir.nid}`);
        entries.push(...parseDirectoryBlock(block, () => `${image.file}: block ${index} of directory inode ${dir.nid}`));
    }
    return entries;
}

/**
 * A directory block: 12-byte dirents, then their names. The first dirent's nameoff tells how many
 * dirents there are; each name runs to the next nameoff, the last one to a NUL or the end of the
 * used bytes (as fs/erofs/dir.c reads it).
 */
function parseDirectoryBlock(block: Buffer, where: () => string): RawDirent[] {
    const corrupt = (why: string) => new ErofsError(`${where()} is corrupt: ${why}`);
    if (block.length < DIRENT_SIZE) throw corrupt(`${block.length} bytes cannot hold a dirent`);
    const namesStart = block.readUInt16LE(8);
    if (namesStart < DIRENT_SIZE || namesStart % DIRENT_SIZE !== 0 || namesStart > block.length) {
        throw corrupt(`first name offset ${namesStart} for a ${block.length}-byte block`);
    }
    const count = namesStart / DIRENT_SIZE;
    const entries: RawDirent[] = [];
    for (let i = 0; i < count; i++) {
        const at = i * DIRENT_SIZE;
        const nameStart = block.readUInt16LE(at + 8);
        const nameEnd = i + 1 < count ? block.readUInt16LE(at + DIRENT_SIZE + 8) : nulOrEnd(block, nameStart);
        if (nameStart < namesStart || nameEnd <= nameStart || nameEnd > block.length || nameEnd - nameStart > NAME_MAX) {
            throw corrupt(`dirent ${i} has name bytes ${nameStart}..${nameEnd}`);
        }
        const nameBytes = block.subarray(nameStart, nameEnd);
        // Linux names never hold these; a "name" with a slash would be a path in disguise.
        if (nameBytes.includes(0) || nameBytes.includes(0x2f)) throw corrupt(`dirent ${i} has a NUL or '/' in its name`);
        entries.push({ name: nameBytes.toString("utf8"), nid: block.readBigUInt64LE(at), fileType: block.readUInt8(at + 10) });
    }
    return entries;
}

function nulOrEnd(block: Buffer, from: number): number {
    if (from >= block.length) return from;
    const nul = block.indexOf(0, from);
    return nul === -1 ? block.length : nul;
}

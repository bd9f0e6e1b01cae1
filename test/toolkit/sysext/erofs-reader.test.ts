// The erofs reader against real images made by mkfs.erofs (plain, lz4, lz4hc; compact and extended
// inodes; a directory of many blocks), against hand-made images for layouts mkfs 1.5 never uses for
// directories (chunk-based), and against corrupted copies, which must fail with ErofsError and never hang.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { createHash } from "crypto";
import { run } from "../../../provider/toolkit/run";
import { tempDir } from "../../helpers/temp";
import { buildSysextImage } from "../../../provider/toolkit/sysext/ddi";
import { readPartitionTable } from "../../../provider/toolkit/sysext/ddi-verify";
import { ErofsDirEntry, ErofsError, extensionReleaseNames, listErofsDirectory } from "../../../provider/toolkit/sysext/erofs-reader";

const EPOCH = 1700000000;
const RELEASE_DIR = "usr/lib/extension-release.d";
const MANY_DIR = "usr/share/many";
const MANY_COUNT = 400;
const BLOCK = 4096;

/** The extension tree every mkfs variant is built from. */
function makeTree(root: string): string {
    writeFile(root, `${RELEASE_DIR}/extension-release.k3s`, "ID=_any\nARCHITECTURE=x86-64\n");
    writeFile(root, "usr/bin/k3s", pseudoRandomBytes(200_000));
    writeFile(root, "usr/local/bin/hello", "#!/bin/sh\necho hello\n");
    fs.symlinkSync("hello", path.join(root, "usr/local/bin/hi"));
    fs.mkdirSync(path.join(root, "usr/local/bin/sub"));
    for (let i = 0; i < MANY_COUNT; i++) {
        writeFile(root, `${MANY_DIR}/entry-${String(i).padStart(4, "0")}-${"long-name-".repeat(8)}${i % 7}`, `${i}\n`);
    }
    return root;
}

function writeFile(root: string, rel: string, content: string | Buffer): void {
    const file = path.join(root, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
}

/** Incompressible but reproducible, so lz4 has real work and reruns build the same images. */
function pseudoRandomBytes(length: number): Buffer {
    const chunks: Buffer[] = [];
    for (let i = 0; chunks.length * 32 < length; i++) chunks.push(createHash("sha256").update(`block ${i}`).digest());
    return Buffer.concat(chunks).subarray(0, length);
}

async function mkfs(tree: string, out: string, extra: string[]): Promise<string> {
    await run(["mkfs.erofs", "--quiet", ...extra, out, tree]);
    return out;
}

function sortedReaddir(dir: string): ErofsDirEntry[] {
    return fs
        .readdirSync(dir, { withFileTypes: true })
        .map((d) => ({ name: d.name, type: d.isDirectory() ? "dir" : d.isSymbolicLink() ? "symlink" : d.isFile() ? "file" : "other" }) as ErofsDirEntry)
        .sort((a, b) => (a.name < b.name ? -1 : 1));
}

async function assertErofsError(promise: Promise<unknown>, message: RegExp): Promise<void> {
    await assert.rejects(promise, (e: unknown) => {
        assert.ok(e instanceof ErofsError, `expected ErofsError, got ${(e as Error)?.stack ?? e}`);
        assert.equal(e.code, "EROFS");
        assert.match(e.message, message);
        return true;
    });
}

// ---------------------------------------------------------------------------------------------
// On-disk offsets the corruption tests poke at (fs/erofs/erofs_fs.h)
// ---------------------------------------------------------------------------------------------

const SB = 1024;
const SB_CHECKSUM = SB + 4;
const SB_FEATURE_COMPAT = SB + 8;
const SB_ROOT_NID = SB + 14;
const SB_META_BLKADDR = SB + 40;

/** A copy of `image` changed by `edit`; the superblock checksum flag is cleared so the edit itself is what the reader meets. */
function corruptedCopy(image: string, out: string, edit: (bytes: Buffer) => void): string {
    const bytes = fs.readFileSync(image);
    bytes.writeUInt32LE(bytes.readUInt32LE(SB_FEATURE_COMPAT) & ~1, SB_FEATURE_COMPAT);
    edit(bytes);
    fs.writeFileSync(out, bytes);
    return out;
}

function rootInodePosition(bytes: Buffer): number {
    return bytes.readUInt32LE(SB_META_BLKADDR) * BLOCK + bytes.readUInt16LE(SB_ROOT_NID) * 32;
}

/** i_format of the root inode: bit 0 = extended, bits 1-3 = data layout. */
function rootInodeFormat(image: string): number {
    const bytes = fs.readFileSync(image);
    return bytes.readUInt16LE(rootInodePosition(bytes));
}

// ---------------------------------------------------------------------------------------------
// Hand-made images: a chunk-based root directory, which mkfs.erofs 1.5 never writes
// ---------------------------------------------------------------------------------------------

type CraftedEntry = [name: string, nid: number, fileType: number];

/** One directory block: dirents first, then the names back to back, zero-padded. */
function direntBlock(entries: CraftedEntry[]): Buffer {
    const block = Buffer.alloc(BLOCK);
    let nameAt = entries.length * 12;
    entries.forEach(([name, nid, fileType], i) => {
        block.writeBigUInt64LE(BigInt(nid), i * 12);
        block.writeUInt16LE(nameAt, i * 12 + 8);
        block.writeUInt8(fileType, i * 12 + 10);
        nameAt += block.write(name, nameAt);
    });
    return block;
}

/**
 * Blocks: 0 superblock, 1 root inode (nid 0) + chunk table, 2-3 the two directory blocks stored in
 * reverse, so a reader that ignores the chunk table lists them in the wrong order or not at all.
 */
function craftChunkedImage(opts: { indexed: boolean; secondChunkAddress?: number }): Buffer {
    const image = Buffer.alloc(4 * BLOCK);
    image.writeUInt32LE(0xe0f5e1e2, SB);
    image.writeUInt8(12, SB + 12); // blkszbits
    image.writeUInt16LE(0, SB_ROOT_NID);
    image.writeUInt32LE(4, SB + 36); // blocks
    image.writeUInt32LE(1, SB_META_BLKADDR);
    image.writeUInt32LE(0x4, SB + 80); // CHUNKED_FILE
    const inode = BLOCK;
    image.writeUInt16LE(4 << 1, inode); // compact, CHUNK_BASED
    image.writeUInt16LE(0o40755, inode + 4);
    image.writeUInt16LE(2, inode + 6);
    image.writeUInt32LE(2 * BLOCK, inode + 8);
    image.writeUInt16LE(opts.indexed ? 0x20 : 0, inode + 16); // one block per chunk
    const table = inode + 32;
    const addresses = [3, opts.secondChunkAddress ?? 2];
    addresses.forEach((address, i) => {
        if (opts.indexed) image.writeUInt32LE(address, table + i * 8 + 4);
        else image.writeUInt32LE(address, table + i * 4);
    });
    direntBlock([[".", 0, 2], ["..", 0, 2], ["alpha", 0, 1], ["beta", 0, 1]]).copy(image, 3 * BLOCK);
    direntBlock([["gamma", 0, 2], ["zeta-link", 0, 7]]).copy(image, 2 * BLOCK);
    return image;
}

const CRAFTED_LISTING: ErofsDirEntry[] = [
    { name: "alpha", type: "file" },
    { name: "beta", type: "file" },
    { name: "gamma", type: "dir" },
    { name: "zeta-link", type: "symlink" },
];

// ---------------------------------------------------------------------------------------------

describe("erofs reader", function () {
    let tmp: string;
    let tree: string;
    const images: Record<string, string> = {};

    before(async function () {
        tmp = tempDir("erofs-reader");
        tree = makeTree(path.join(tmp, "tree"));
        // Run one mkfs at a time: the machine is shared.
        images.plain = await mkfs(tree, path.join(tmp, "plain.erofs"), []);
        images.lz4 = await mkfs(tree, path.join(tmp, "lz4.erofs"), ["-zlz4"]);
        images.lz4hc = await mkfs(tree, path.join(tmp, "lz4hc.erofs"), ["-zlz4hc"]);
        // The builder's flags: fixed times and owners give compact inodes.
        images.compact = await mkfs(tree, path.join(tmp, "compact.erofs"), ["-T", String(EPOCH), "--all-root", "-x", "-1"]);
        images.chunked = await mkfs(tree, path.join(tmp, "chunked.erofs"), ["--chunksize=4096"]);
    });

    it("covers both inode kinds with the mkfs variants", function () {
        assert.equal(rootInodeFormat(images.plain) & 1, 1);
        assert.equal(rootInodeFormat(images.compact) & 1, 0);
    });

    it("lists a directory whose last block is too full to inline (FLAT_PLAIN)", async function () {
        // 36 dirents and names filling 4090 bytes: with the inode they exceed a block, so mkfs stores the block apart.
        const full = path.join(tmp, "full-root");
        fs.mkdirSync(full);
        for (let i = 0; i < 35; i++) writeFile(full, `${String(i).padStart(3, "0")}${"x".repeat(97)}`, "");
        writeFile(full, "y".repeat(131), "");
        for (const [label, extra] of [["extended", []], ["compact", ["-T", String(EPOCH), "--all-root"]]] as const) {
            const image = await mkfs(full, path.join(tmp, `full-root-${label}.erofs`), [...extra]);
            assert.equal(rootInodeFormat(image), label === "extended" ? 1 : 0, "FLAT_PLAIN root");
            assert.deepEqual(await listErofsDirectory(image, 0, ""), sortedReaddir(full), label);
        }
    });

    for (const variant of ["plain", "lz4", "lz4hc", "compact", "chunked"]) {
        it(`lists the release folder, the root and typed entries of the ${variant} image`, async function () {
            const image = images[variant];
            assert.deepEqual(await listErofsDirectory(image, 0, RELEASE_DIR), [{ name: "extension-release.k3s", type: "file" }]);
            assert.deepEqual(await listErofsDirectory(image, 0, ""), sortedReaddir(tree));
            assert.deepEqual(await listErofsDirectory(image, 0, "usr/local/bin"), [
                { name: "hello", type: "file" },
                { name: "hi", type: "symlink" },
                { name: "sub", type: "dir" },
            ]);
            assert.deepEqual(await extensionReleaseNames(image, 0, "sysext"), ["k3s"]);
        });

        it(`lists a directory of many blocks in the ${variant} image like readdir does`, async function () {
            const expected = sortedReaddir(path.join(tree, MANY_DIR));
            const bytes = expected.reduce((sum, e) => sum + 12 + e.name.length, 0);
            assert.ok(bytes > 8 * BLOCK, `the fixture must span several blocks, has ${bytes} bytes`);
            assert.deepEqual(await listErofsDirectory(images[variant], 0, MANY_DIR), expected);
        });
    }

    it("accepts leading and trailing slashes", async function () {
        assert.deepEqual(await listErofsDirectory(images.plain, 0, `/${RELEASE_DIR}/`), await listErofsDirectory(images.plain, 0, RELEASE_DIR));
    });

    it("returns undefined for a path that does not exist", async function () {
        assert.equal(await listErofsDirectory(images.plain, 0, "usr/nope"), undefined);
        assert.equal(await listErofsDirectory(images.plain, 0, "nope/deeper/still"), undefined);
        assert.deepEqual(await extensionReleaseNames(images.plain, 0, "confext"), []);
    });

    it("refuses a path through or to a regular file, and does not follow symlinks", async function () {
        await assertErofsError(listErofsDirectory(images.lz4, 0, "usr/bin/k3s/inside"), /'\/usr\/bin\/k3s' is not a directory/);
        await assertErofsError(listErofsDirectory(images.lz4, 0, "usr/bin/k3s"), /not a directory/);
        await assertErofsError(listErofsDirectory(images.lz4, 0, "usr/local/bin/hi"), /'\/usr\/local\/bin\/hi' is not a directory/);
    });

    it("refuses absurdly deep paths", async function () {
        await assertErofsError(listErofsDirectory(images.plain, 0, Array(65).fill("a").join("/")), /more than 64 components/);
    });

    it("reads a filesystem at an offset inside a larger file", async function () {
        const padded = path.join(tmp, "padded.img");
        fs.writeFileSync(padded, Buffer.concat([Buffer.alloc(1 << 20), fs.readFileSync(images.lz4hc), Buffer.alloc(BLOCK, 0xaa)]));
        assert.deepEqual(await listErofsDirectory(padded, 1 << 20, RELEASE_DIR), await listErofsDirectory(images.lz4hc, 0, RELEASE_DIR));
        assert.deepEqual(await listErofsDirectory(padded, 1 << 20, MANY_DIR), await listErofsDirectory(images.lz4hc, 0, MANY_DIR));
        await assertErofsError(listErofsDirectory(padded, 0, RELEASE_DIR), /no erofs filesystem at byte 0/);
        await assertErofsError(listErofsDirectory(padded, -1, RELEASE_DIR), /non-negative integer/);
    });

    it("names only release files and symlinks in the confext folder", async function () {
        const confTree = path.join(tmp, "conf-tree");
        writeFile(confTree, "etc/extension-release.d/extension-release.a", "ID=_any\n");
        fs.symlinkSync("extension-release.a", path.join(confTree, "etc/extension-release.d/extension-release.b"));
        fs.mkdirSync(path.join(confTree, "etc/extension-release.d/extension-release.c"));
        writeFile(confTree, "etc/extension-release.d/extension-release.", "");
        writeFile(confTree, "etc/extension-release.d/README", "");
        const image = await mkfs(confTree, path.join(tmp, "conf.erofs"), []);
        assert.deepEqual(await extensionReleaseNames(image, 0, "confext"), ["a", "b"]);
        assert.deepEqual(await extensionReleaseNames(image, 0, "sysext"), []);
    });

    it("reads a chunk-based directory through a block map and through chunk indexes", async function () {
        for (const indexed of [false, true]) {
            const image = path.join(tmp, `crafted-${indexed}.erofs`);
            fs.writeFileSync(image, craftChunkedImage({ indexed }));
            assert.deepEqual(await listErofsDirectory(image, 0, ""), CRAFTED_LISTING, `indexed=${indexed}`);
        }
    });

    it("refuses a chunk-based directory with a hole or a chunk outside the filesystem", async function () {
        const hole = path.join(tmp, "crafted-hole.erofs");
        fs.writeFileSync(hole, craftChunkedImage({ indexed: true, secondChunkAddress: 0xffffffff }));
        await assertErofsError(listErofsDirectory(hole, 0, ""), /has a hole/);
        const outside = path.join(tmp, "crafted-outside.erofs");
        fs.writeFileSync(outside, craftChunkedImage({ indexed: false, secondChunkAddress: 4 }));
        await assertErofsError(listErofsDirectory(outside, 0, ""), /outside the 16384-byte filesystem/);
    });

    it("refuses a directory block whose dirents are corrupt", async function () {
        const image = craftChunkedImage({ indexed: false });
        image.writeUInt16LE(5, 3 * BLOCK + 8); // first nameoff inside the first dirent
        const file = path.join(tmp, "crafted-dirent.erofs");
        fs.writeFileSync(file, image);
        await assertErofsError(listErofsDirectory(file, 0, ""), /corrupt: first name offset 5/);
        image.writeUInt16LE(4 * 12, 3 * BLOCK + 8);
        image.writeUInt16LE(4 * 12 - 1, 3 * BLOCK + 12 + 8); // second name starts before the first
        fs.writeFileSync(file, image);
        await assertErofsError(listErofsDirectory(file, 0, ""), /corrupt: dirent 0/);
    });

    it("refuses a wrong superblock magic or checksum", async function () {
        const magic = corruptedCopy(images.plain, path.join(tmp, "bad-magic.erofs"), (b) => b.writeUInt32LE(0x12345678, SB));
        await assertErofsError(listErofsDirectory(magic, 0, RELEASE_DIR), /magic 0x12345678/);
        const bytes = fs.readFileSync(images.plain);
        bytes[SB + 64] ^= 0xff; // volume name: harmless, but covered by the checksum
        const checksum = path.join(tmp, "bad-checksum.erofs");
        fs.writeFileSync(checksum, bytes);
        await assertErofsError(listErofsDirectory(checksum, 0, RELEASE_DIR), /checksum/);
        assert.notEqual(bytes.readUInt32LE(SB_CHECKSUM), 0);
    });

    it("refuses a truncated filesystem", async function () {
        const truncated = path.join(tmp, "truncated.erofs");
        fs.writeFileSync(truncated, fs.readFileSync(images.plain).subarray(0, 3 * BLOCK));
        await assertErofsError(listErofsDirectory(truncated, 0, RELEASE_DIR), /claims \d+ bytes, but only 12288 follow/);
        fs.writeFileSync(truncated, Buffer.alloc(100));
        await assertErofsError(listErofsDirectory(truncated, 0, RELEASE_DIR), /outside/);
    });

    it("refuses a root inode outside the filesystem", async function () {
        const image = corruptedCopy(images.plain, path.join(tmp, "bad-meta.erofs"), (b) => b.writeUInt32LE(0xfffffff0, SB_META_BLKADDR));
        await assertErofsError(listErofsDirectory(image, 0, RELEASE_DIR), /inode \d+ lies outside the filesystem/);
    });

    it("refuses a root directory with a huge or wrong size", async function () {
        for (const variant of ["plain", "compact"]) {
            const huge = corruptedCopy(images[variant], path.join(tmp, `huge-${variant}.erofs`), (b) => {
                const inode = rootInodePosition(b);
                if (b.readUInt16LE(inode) & 1) b.writeBigUInt64LE(1n << 62n, inode + 8);
                else b.writeUInt32LE(0xffffffff, inode + 8);
            });
            await assertErofsError(listErofsDirectory(huge, 0, RELEASE_DIR), /claims \d+ bytes \(more than/);
            const wrong = corruptedCopy(images[variant], path.join(tmp, `wrong-${variant}.erofs`), (b) => {
                const inode = rootInodePosition(b);
                b.writeUInt32LE(1 << 20, inode + 8); // under the cap, far beyond the real directory
                if (b.readUInt16LE(inode) & 1) b.writeUInt32LE(0, inode + 12);
            });
            await assertErofsError(listErofsDirectory(wrong, 0, RELEASE_DIR), /corrupt|outside|crosses a block boundary/);
        }
    });

    it("meets random corruption of the metadata with a listing or an ErofsError, never anything else", async function () {
        const pristine = fs.readFileSync(images.compact);
        pristine.writeUInt32LE(pristine.readUInt32LE(SB_FEATURE_COMPAT) & ~1, SB_FEATURE_COMPAT);
        const file = path.join(tmp, "fuzz.erofs");
        let seed = 12345;
        const random = (n: number) => {
            seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
            return seed % n;
        };
        // Metadata (superblock, inodes, inline directories) lives in the first blocks of so small an image.
        const metadataEnd = Math.min(pristine.length, 16 * BLOCK);
        const outcomes = { listed: 0, missing: 0, refused: 0 };
        for (let round = 0; round < 150; round++) {
            const bytes = Buffer.from(pristine);
            for (let flips = 1 + random(8); flips > 0; flips--) bytes[SB + random(metadataEnd - SB)] = random(256);
            fs.writeFileSync(file, bytes);
            for (const dir of [RELEASE_DIR, MANY_DIR]) {
                try {
                    const listed = await listErofsDirectory(file, 0, dir);
                    outcomes[listed ? "listed" : "missing"]++;
                } catch (e) {
                    assert.ok(e instanceof ErofsError, `round ${round}, ${dir}: expected ErofsError, got ${(e as Error)?.stack ?? e}`);
                    outcomes.refused++;
                }
            }
        }
        assert.ok(outcomes.listed > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
    });

    it("finds the release name in a sysext image built by buildSysextImage", async function () {
        const sysTree = path.join(tmp, "sysext-tree");
        writeFile(sysTree, "usr/lib/extension-release.d/extension-release.k3s", "ID=_any\nARCHITECTURE=x86-64\n");
        writeFile(sysTree, "usr/local/bin/k3s", pseudoRandomBytes(300_000));
        fs.mkdirSync(path.join(tmp, "ddi-work"));
        fs.mkdirSync(path.join(tmp, "ddi-out"));
        const image = path.join(tmp, "ddi-out", "k3s.raw");
        await buildSysextImage({
            sourceDir: sysTree,
            outFile: image,
            workDir: path.join(tmp, "ddi-work"),
            name: "k3s",
            kind: "sysext",
            arch: "x86-64",
            compression: "lz4",
            sourceDateEpoch: EPOCH,
        });
        const { partitions } = await readPartitionTable(image);
        assert.ok(partitions.root.offset > 0);
        assert.deepEqual(await extensionReleaseNames(image, partitions.root.offset, "sysext"), ["k3s"]);
        assert.deepEqual(await extensionReleaseNames(image, partitions.root.offset, "confext"), []);
        await assertErofsError(extensionReleaseNames(image, partitions.verity.offset, "sysext"), /no erofs filesystem/);
    });
});

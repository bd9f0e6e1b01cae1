// The UKI initrd: the whole Kairos rootfs as a newc cpio, zstd-compressed (AuroraBoot build-uki §3.3.9).
//
// The cpio is written here rather than by cpio(1), so that it is a pure function of the tree:
// - entries in walk order (pre-order, each directory's children sorted by the bytes of their names, as
//   Go's filepath.Walk that AuroraBoot uses), names relative to the root ("." first, then "bin", "bin/sh"…);
// - mtime 0, uid/gid 0 (as AuroraBoot; `owners: "preserve"` keeps them), dev 0;
// - inode numbers counted from 1 in archive order; hard links inside the tree share one inode number and
//   carry the data on their last entry (GNU cpio's newc convention, which the kernel and cpio -i accept);
//   nlink is the link count inside the tree (2 + subdirectories for a directory);
// - modes (type, permissions, setuid/setgid/sticky), symlink targets and device numbers are kept.
// Top-level sys, run, dev, tmp, proc (AuroraBoot) and boot (the kernel is its own section) are left out.
//
// zstd output is deterministic for a given zstd version when the input is a file (the frame then records
// the content size) and multi-threading is on: -T1, -T2 and -T0 give the same bytes; --single-thread and
// compressing from a pipe give other (equally valid) bytes. So the cpio goes to a file first.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { run } from "../run";
import { forEachConcurrently, isInside, sha256File, sha256Hex } from "../files";
import { TreeDigestCache } from "../source/digest-cache";
import { wallClockNs } from "../file-identity";

export class InitrdError extends Error {
    readonly code = "INITRD";
}

/** zstd level and long-distance window of the initrd: chosen from `npm run bench` on an 880 MB OS tree (README, Performance). */
export const DEFAULT_INITRD_LEVEL = 12;
export const DEFAULT_INITRD_WINDOW_LOG = 27;
/** The largest window the kernel's initramfs unpacker accepts (2^27 = 128 MiB); zstd's --long starts at 2^10. */
export const MAX_KERNEL_WINDOW_LOG = 27;
const MIN_WINDOW_LOG = 10;

export function isInitrdWindowLog(n: number): boolean {
    return n === 0 || (Number.isInteger(n) && n >= MIN_WINDOW_LOG && n <= MAX_KERNEL_WINDOW_LOG);
}

/** Top-level entries that never go into the initrd. */
export const INITRD_EXCLUDES: readonly string[] = ["sys", "run", "dev", "tmp", "proc", "boot"];

export interface CpioOptions {
    /** Top-level names to leave out (default INITRD_EXCLUDES). */
    exclude?: readonly string[];
    /** "root" (default, as AuroraBoot): every entry owned by 0:0. "preserve": the tree's uid/gid. */
    owners?: "root" | "preserve";
    /**
     * Entries archived as if the tree held them, for a tree that must not be changed (a local directory
     * source): the archive is the one the tree with these changes made would give. See CpioOverlay.
     */
    overlay?: CpioOverlay;
    /**
     * Called with the device nodes, FIFOs and sockets found (paths relative to the root); what it returns
     * is thrown. Default: they are archived.
     */
    refuseSpecial?: (names: string[]) => Error;
    /**
     * cpioDigest: reuse the file digests remembered for this root (toolkit/source/digest-cache.ts, the
     * cache a local directory source's tree digest fills) for files whose identity is unchanged.
     */
    digestCache?: boolean;
}

/** Changes to a tree that the archive carries (kairos-rootfs.ts ukiRootfsOverlay). Paths are relative, "/"-separated. */
export interface CpioOverlay {
    /** Symlinks to put at these paths, replacing what the tree has there (which must not be a directory). */
    symlinks?: Record<string, string>;
    /** Empty directories (mode 0755) to put at these paths, which the tree must not hold; parents first. */
    dirs?: string[];
}

export interface BuildInitrdOptions extends CpioOptions {
    /** zstd level 1-19 (default 12). */
    level?: number;
    /**
     * zstd long-distance matching window, as log2 of its size (`--long=N`), or 0 for none. An OS tree
     * repeats itself far apart (firmware, modules), so this makes the initrd both smaller and faster to
     * make than a higher level would. The kernel unpacks windows up to 2^27 (lib/decompress_unzstd.c)
     * and holds one window of memory while it does. @default 27
     */
    windowLog?: number;
    /** zstd worker threads, 0 = one per core (default). Any value >= 1 gives the same bytes. */
    threads?: number;
    /** Also keep the uncompressed cpio at this path. */
    keepCpio?: string;
}

export interface CpioResult {
    sha256: string;
    size: number;
    /** Records written, the trailer excluded. */
    entries: number;
}

export interface InitrdResult {
    /** Of the compressed initrd. */
    sha256: string;
    size: number;
    cpio: CpioResult;
    /** `zstd --version`: the bytes depend on it. */
    zstdVersion: string;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const MAX_FIELD = 0xffffffff;
const CHUNK = 1 << 20;

interface Entry {
    /** Archive name bytes (no NUL). */
    name: Buffer;
    /** Host path (Buffer, names may not be UTF-8). */
    host: Buffer;
    mode: number;
    uid: number;
    gid: number;
    size: number;
    nlink: number;
    ino: number;
    rdevMajor: number;
    rdevMinor: number;
    /** Hard-link group key (dev:ino) when the file has more than one link. */
    linkKey?: string;
    /** The tree's lstat of it; none for an overlay entry. */
    stat?: fs.BigIntStats;
    /** For a hard-linked file: only the last entry of its group carries data. */
    carriesData: boolean;
    linkTarget?: Buffer;
}

function devMajor(rdev: bigint): number {
    return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn & 0xffffffffn));
}

function devMinor(rdev: bigint): number {
    return Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n));
}

async function collect(root: string, opts: CpioOptions): Promise<Entry[]> {
    const exclude = new Set(opts.exclude ?? INITRD_EXCLUDES);
    const preserve = opts.owners === "preserve";
    const rootStat = await fs.promises.stat(root, { bigint: true });
    if ((Number(rootStat.mode) & S_IFMT) !== S_IFDIR) throw new InitrdError(`${root} is not a directory`);
    const entries: Entry[] = [];
    const make = (name: Buffer, host: Buffer, st: fs.BigIntStats): Entry => ({
        name,
        host,
        mode: Number(st.mode),
        uid: preserve ? Number(st.uid) : 0,
        gid: preserve ? Number(st.gid) : 0,
        size: 0,
        nlink: 1,
        ino: 0,
        rdevMajor: devMajor(st.rdev),
        rdevMinor: devMinor(st.rdev),
        carriesData: true,
        linkKey: (Number(st.mode) & S_IFMT) === S_IFREG && st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined,
    });
    // The root is always a 0755 directory owned by root: the staging directory's own mode (often 0700
    // from mkdtemp) must not become the mode of "/" at boot.
    const rootEntry = make(Buffer.from("."), Buffer.from(root), rootStat);
    rootEntry.mode = S_IFDIR | 0o755;
    rootEntry.uid = 0;
    rootEntry.gid = 0;
    rootEntry.rdevMajor = 0;
    rootEntry.rdevMinor = 0;

    // Overlay entries by their parent's path ("" for the root).
    const overlaid = new Map<string, { name: Buffer; target?: Buffer }[]>();
    const addOverlay = (p: string, target?: string) => {
        const parts = p.split("/");
        if (parts.some((x) => x === "" || x === "." || x === "..")) throw new InitrdError(`overlay path '${p}' is not a plain relative path`);
        const parent = parts.slice(0, -1).join("/");
        overlaid.set(parent, [...(overlaid.get(parent) ?? []), { name: Buffer.from(parts[parts.length - 1]), target: target === undefined ? undefined : Buffer.from(target) }]);
    };
    for (const [p, target] of Object.entries(opts.overlay?.symlinks ?? {})) addOverlay(p, target);
    for (const p of opts.overlay?.dirs ?? []) addOverlay(p);
    const ownUid = preserve ? (process.getuid?.() ?? 0) : 0;
    const ownGid = preserve ? (process.getgid?.() ?? 0) : 0;
    const synthetic = (name: Buffer, target: Buffer | undefined): Entry => ({
        name, host: Buffer.alloc(0), uid: ownUid, gid: ownGid, nlink: 1, ino: 0, rdevMajor: 0, rdevMinor: 0, carriesData: true,
        ...(target === undefined ? { mode: S_IFDIR | 0o755, size: 0 } : { mode: S_IFLNK | 0o777, size: target.length, linkTarget: target }),
    });
    const special: string[] = [];

    const walk = async (dirEntry: Entry, rel: Buffer | undefined): Promise<void> => {
        const extra = overlaid.get(rel === undefined ? "" : rel.toString()) ?? [];
        // An overlay directory has no folder in the tree to read.
        const names: Buffer[] = (dirEntry.host.length ? fs.readdirSync(dirEntry.host, { encoding: "buffer" }) : []).filter((n) => !extra.some((x) => x.target !== undefined && x.name.equals(n)));
        for (const x of extra) {
            if (x.target === undefined && names.some((n) => n.equals(x.name))) throw new InitrdError(`overlay directory ${x.name.toString()} is already in the tree`);
            names.push(x.name);
        }
        names.sort(Buffer.compare);
        const kids: { entry: Entry; isDir: boolean }[] = [];
        for (const n of names) {
            if (rel === undefined && exclude.has(n.toString("latin1"))) continue;
            if (n.includes(0)) throw new InitrdError(`a name under ${dirEntry.host.toString()} contains a NUL byte`);
            const name = rel === undefined ? n : Buffer.concat([rel, Buffer.from("/"), n]);
            const over = extra.find((x) => x.name.equals(n));
            if (over) {
                kids.push({ entry: synthetic(name, over.target), isDir: over.target === undefined });
                continue;
            }
            const host = Buffer.concat([dirEntry.host, Buffer.from("/"), n]);
            const st = fs.lstatSync(host, { bigint: true });
            const e = make(name, host, st);
            e.stat = st;
            const type = e.mode & S_IFMT;
            if (type === S_IFREG) e.size = Number(st.size);
            if (type === S_IFLNK) {
                e.linkTarget = fs.readlinkSync(host, { encoding: "buffer" });
                e.size = e.linkTarget.length;
            }
            if (type !== S_IFCHR && type !== S_IFBLK) {
                e.rdevMajor = 0;
                e.rdevMinor = 0;
            }
            if (type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK) special.push(name.toString());
            if (e.size > MAX_FIELD) throw new InitrdError(`${host.toString()} is ${e.size} bytes; newc cpio holds at most 4 GiB per file`);
            kids.push({ entry: e, isDir: type === S_IFDIR });
        }
        dirEntry.nlink = 2 + kids.filter((k) => k.isDir).length;
        entries.push(dirEntry);
        for (const k of kids) {
            if (k.isDir) await walk(k.entry, k.entry.name);
            else entries.push(k.entry);
        }
    };
    await walk(rootEntry, undefined);
    if (special.length > 0 && opts.refuseSpecial) throw opts.refuseSpecial(special);

    // Inode numbers in archive order; hard-link groups share the first member's number.
    const groups = new Map<string, Entry[]>();
    for (const e of entries) if (e.linkKey) groups.set(e.linkKey, [...(groups.get(e.linkKey) ?? []), e]);
    let next = 1;
    const groupIno = new Map<string, number>();
    for (const e of entries) {
        if (e.linkKey) {
            const group = groups.get(e.linkKey)!;
            if (!groupIno.has(e.linkKey)) groupIno.set(e.linkKey, next++);
            e.ino = groupIno.get(e.linkKey)!;
            e.nlink = group.length;
            e.carriesData = group[group.length - 1] === e;
            if (group.length === 1) e.linkKey = undefined; // its other links are outside the tree
        } else {
            e.ino = next++;
        }
    }
    return entries;
}

function hex8(n: number): string {
    if (n < 0 || n > MAX_FIELD) throw new InitrdError(`cpio field value ${n} out of range`);
    return n.toString(16).toUpperCase().padStart(8, "0");
}

function header(e: { name: Buffer; ino: number; mode: number; uid: number; gid: number; nlink: number; size: number; rdevMajor: number; rdevMinor: number }): Buffer {
    const fields = [e.ino, e.mode, e.uid, e.gid, e.nlink, 0 /* mtime */, e.size, 0, 0 /* dev */, e.rdevMajor, e.rdevMinor, e.name.length + 1, 0 /* check */];
    const head = Buffer.from(`070701${fields.map(hex8).join("")}`, "latin1");
    const unpadded = head.length + e.name.length + 1;
    return Buffer.concat([head, e.name, Buffer.alloc(1 + pad4(unpadded))]);
}

function pad4(n: number): number {
    return (4 - (n % 4)) % 4;
}

/** Buffers writes to a file and hashes everything written. One staging buffer: small writes (headers,
 * names, padding) are copied into it; a write of a chunk or more goes straight to the file. */
class HashingWriter {
    private readonly hash = createHash("sha256");
    private readonly staged = Buffer.allocUnsafe(CHUNK);
    private pending = 0;
    size = 0;
    constructor(private readonly fh: fs.promises.FileHandle) {}
    async write(b: Buffer): Promise<void> {
        this.hash.update(b);
        this.size += b.length;
        if (b.length >= CHUNK) {
            await this.flush();
            await this.writeAll(b);
            return;
        }
        if (this.pending + b.length > CHUNK) await this.flush();
        b.copy(this.staged, this.pending); // a copy: callers reuse their read buffers
        this.pending += b.length;
    }
    async flush(): Promise<void> {
        if (this.pending === 0) return;
        const n = this.pending;
        this.pending = 0;
        await this.writeAll(this.staged.subarray(0, n));
    }
    private async writeAll(b: Buffer): Promise<void> {
        let done = 0;
        while (done < b.length) done += (await this.fh.write(b, done, b.length - done, null)).bytesWritten;
    }
    digest(): string {
        return this.hash.digest("hex");
    }
}

/** The bytes an entry's record carries: regular-file data only on the last name of a hard-link group. */
function dataSizeOf(e: Entry): number {
    return (e.mode & S_IFMT) === S_IFREG && !e.carriesData ? 0 : e.size;
}

const TRAILER = { name: Buffer.from("TRAILER!!!"), ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, size: 0, rdevMajor: 0, rdevMinor: 0 };
const DIGEST_CONCURRENCY = 4;

/**
 * A sha256 that names the cpio writeCpio would write for `rootfs` — every record header and link target
 * as written, and the sha256 of every file's data — without writing it. Equal digests mean equal cpio
 * bytes, so a compressed initrd can be reused by it (output/initrd-cache.ts).
 */
export async function cpioDigest(rootfs: string, opts: CpioOptions = {}): Promise<string> {
    const entries = await collect(path.resolve(rootfs), opts);
    const withData = entries.filter((e) => (e.mode & S_IFMT) === S_IFREG && dataSizeOf(e) > 0);
    const fileDigests = new Map<Entry, string>();
    const cache = opts.digestCache ? TreeDigestCache.open(rootfs) : undefined;
    await forEachConcurrently(withData, DIGEST_CONCURRENCY, async (e) => {
        const rel = e.name.toString();
        const remembered = cache?.lookup(rel, e.stat!);
        if (remembered) return void fileDigests.set(e, remembered);
        const started = wallClockNs();
        const digest = await sha256File(e.host.toString());
        cache?.record(rel, e.stat!, digest, started);
        fileDigests.set(e, digest);
    });
    cache?.save();
    const hash = createHash("sha256").update("pulumi-kairos cpio digest v1\n");
    for (const e of entries) {
        hash.update(header({ ...e, size: dataSizeOf(e) }));
        if ((e.mode & S_IFMT) === S_IFLNK) hash.update(e.linkTarget!);
        const data = fileDigests.get(e);
        if (data) hash.update(`${data}\n`);
    }
    hash.update(header(TRAILER));
    return hash.digest("hex");
}

/** Writes the tree at `rootfs` as a deterministic newc cpio. */
export async function writeCpio(rootfs: string, cpioFile: string, opts: CpioOptions = {}): Promise<CpioResult> {
    const root = path.resolve(rootfs);
    if (isInside(root, path.resolve(cpioFile))) throw new InitrdError(`the cpio ${cpioFile} must not be written inside the tree it archives`);
    const entries = await collect(root, opts);
    const fh = await fs.promises.open(cpioFile, "w");
    try {
        const out = new HashingWriter(fh);
        const buf = Buffer.alloc(CHUNK);
        for (const e of entries) {
            const type = e.mode & S_IFMT;
            const dataSize = dataSizeOf(e);
            await out.write(header({ ...e, size: dataSize }));
            if (type === S_IFLNK) {
                await out.write(e.linkTarget!);
            } else if (type === S_IFREG && dataSize > 0) {
                const src = await fs.promises.open(e.host, "r");
                try {
                    let done = 0;
                    while (done < dataSize) {
                        const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, dataSize - done), done);
                        if (bytesRead === 0) break;
                        await out.write(buf.subarray(0, bytesRead));
                        done += bytesRead;
                    }
                    if (done !== dataSize) throw new InitrdError(`${e.host.toString()} changed size while it was archived`);
                } finally {
                    await src.close();
                }
            }
            if (dataSize > 0) await out.write(Buffer.alloc(pad4(dataSize)));
        }
        await out.write(header(TRAILER));
        await out.flush();
        return { sha256: out.digest(), size: out.size, entries: entries.length };
    } finally {
        await fh.close();
    }
}

/** Where compressed initrds can be kept and found again by what they hold (output/initrd-cache.ts). */
export interface InitrdReuse {
    take(key: string, outFile: string): Promise<InitrdResult | undefined>;
    put(key: string, file: string, result: InitrdResult): void;
}

/** The cpio of `rootfs`, compressed with zstd into `outFile`; with `reuse`, taken from there when the same cpio was compressed before. */
export async function buildInitrd(rootfs: string, outFile: string, opts: BuildInitrdOptions = {}, reuse?: InitrdReuse): Promise<InitrdResult & { reused: boolean }> {
    const level = opts.level ?? DEFAULT_INITRD_LEVEL;
    if (!Number.isInteger(level) || level < 1 || level > 19) throw new InitrdError(`zstd level ${level} is not in 1..19`);
    const windowLog = opts.windowLog ?? DEFAULT_INITRD_WINDOW_LOG;
    if (!isInitrdWindowLog(windowLog)) throw new InitrdError(`zstd window log ${windowLog} is not 0 or in ${MIN_WINDOW_LOG}..${MAX_KERNEL_WINDOW_LOG}`);
    const threads = opts.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0) throw new InitrdError(`zstd threads ${threads} is not a non-negative integer`);
    const zstdVersion = (await run(["zstd", "--version"])).stdout.trim();
    // The compressed bytes are a function of the cpio's bytes, the level and the zstd build (not of the thread count).
    const key = reuse && !opts.keepCpio ? sha256Hex(JSON.stringify(["initrd v1", await cpioDigest(rootfs, opts), level, windowLog, zstdVersion])) : undefined;
    if (key) {
        const kept = await reuse!.take(key, outFile);
        if (kept) return { ...kept, reused: true };
    }
    const cpioFile = opts.keepCpio ?? `${outFile}.cpio.tmp`;
    const tmpOut = `${outFile}.tmp`;
    try {
        const cpio = await writeCpio(rootfs, cpioFile, opts);
        await run(["zstd", "-q", "-f", `-${level}`, ...(windowLog ? [`--long=${windowLog}`] : []), `-T${threads}`, "--no-progress", cpioFile, "-o", tmpOut]);
        fs.renameSync(tmpOut, outFile);
        const result: InitrdResult = { sha256: await sha256File(outFile), size: fs.statSync(outFile).size, cpio, zstdVersion };
        if (key) reuse!.put(key, outFile, result);
        return { ...result, reused: false };
    } finally {
        fs.rmSync(tmpOut, { force: true });
        if (!opts.keepCpio) fs.rmSync(cpioFile, { force: true });
    }
}

// A content digest of a directory tree, for local-directory sources: what the tree would put into an
// image (paths, types, permission bits, link targets, file bytes) and nothing the host adds on the
// side (mtimes, owners, inode numbers, the order files were created in).
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { forEachConcurrently, READ_CHUNK, sha256File, sha256Hex } from "../files";
import { TreeDigestCache } from "./digest-cache";
import { wallClockNs } from "../file-identity";

export type TreeEntryType = "dir" | "file" | "symlink" | "fifo" | "socket" | "char" | "block";

export interface TreeEntry {
    /** Relative to the root, "/"-separated. The root itself is not listed. */
    path: string;
    type: TreeEntryType;
    /** Permission bits, including setuid, setgid and sticky. */
    mode: number;
    /** Symlink target, as stored. */
    target?: string;
    /** sha256 hex of a regular file's content. */
    sha256?: string;
    /** Device number of char and block devices. */
    rdev?: number;
}

// Bump when the encoding below changes, so old and new digests can never be confused.
const FORMAT = "pulumi-kairos tree v1\n";
const HASH_CONCURRENCY = 8;

export interface TreeDigestOptions {
    /**
     * Reuse file digests remembered from earlier walks of this root when a file's device, inode, size,
     * mtime and ctime are unchanged (toolkit/source/digest-cache.ts). For sources read on every preview; drift
     * checks of our own artifacts read every byte. @default false
     */
    cache?: boolean;
}

/** "sha256:<hex>" over the sorted entries of the tree at `root`. Links inside the tree are not followed. */
export async function treeDigest(root: string, opts: TreeDigestOptions = {}): Promise<string> {
    const hash = createHash("sha256").update(FORMAT);
    for (const entry of await treeEntries(root, opts)) hash.update(encodeEntry(entry));
    return `sha256:${hash.digest("hex")}`;
}

/** The entries the digest covers, sorted by path (byte order), for showing what changed. */
export async function treeEntries(root: string, opts: TreeDigestOptions = {}): Promise<TreeEntry[]> {
    const stat = await fs.promises.stat(root);
    if (!stat.isDirectory()) throw new Error(`${root} is not a directory`);
    const stats = new Map<TreeEntry, fs.BigIntStats>();
    const entries = walk(root, "", stats);
    sortByPathBytes(entries);
    const cache = opts.cache ? TreeDigestCache.open(root) : undefined;
    await hashFiles(root, entries, stats, cache);
    cache?.save();
    return entries;
}

/** Byte order of the UTF-8 paths (each path encoded once, not once per comparison). */
function sortByPathBytes(entries: TreeEntry[]): void {
    const keyed = entries.map((e) => ({ e, key: Buffer.from(e.path) }));
    keyed.sort((a, b) => Buffer.compare(a.key, b.key));
    keyed.forEach(({ e }, i) => (entries[i] = e));
}

function encodeEntry(e: TreeEntry): string {
    // JSON keeps every field unambiguous whatever characters a name holds.
    return `${JSON.stringify([e.path, e.type, e.mode.toString(8), e.target ?? e.sha256 ?? e.rdev ?? null])}\n`;
}

// The walk and the small files' reads are synchronous: a tree of thousands of small files spends more
// in handing each lstat/open/read/close to the thread pool and back than in the calls themselves
// (4,100 files of 15 KB: ~1 s through fs.promises, ~0.15 s this way; a 17,000-entry OS tree's awaited
// lstats alone cost ~2 s, a whole UKI rebuild's budget).
function walk(root: string, rel: string, stats: Map<TreeEntry, fs.BigIntStats>): TreeEntry[] {
    const out: TreeEntry[] = [];
    for (const name of fs.readdirSync(path.join(root, rel))) {
        const childRel = rel ? `${rel}/${name}` : name;
        const st = fs.lstatSync(path.join(root, childRel), { bigint: true });
        const entry = describe(path.join(root, childRel), childRel, st);
        stats.set(entry, st);
        out.push(entry);
        if (entry.type === "dir") out.push(...walk(root, childRel, stats));
    }
    return out;
}

function describe(file: string, rel: string, st: fs.BigIntStats): TreeEntry {
    const entry: TreeEntry = { path: rel, type: entryType(st), mode: Number(st.mode & 0o7777n) };
    if (entry.type === "symlink") entry.target = fs.readlinkSync(file);
    if (entry.type === "char" || entry.type === "block") entry.rdev = Number(st.rdev);
    return entry;
}

function entryType(st: fs.BigIntStats): TreeEntryType {
    if (st.isDirectory()) return "dir";
    if (st.isFile()) return "file";
    if (st.isSymbolicLink()) return "symlink";
    if (st.isFIFO()) return "fifo";
    if (st.isSocket()) return "socket";
    return st.isCharacterDevice() ? "char" : "block";
}

/**
 * Fills in sha256 for regular files; remembered digests of unchanged files are reused. Files up to one
 * read chunk are read whole, synchronously; bigger ones in chunks, a few at a time (the process's memory
 * stays bounded whatever the tree holds).
 */
async function hashFiles(root: string, entries: TreeEntry[], stats: Map<TreeEntry, fs.BigIntStats>, cache?: TreeDigestCache): Promise<void> {
    const large: TreeEntry[] = [];
    for (const entry of entries) {
        if (entry.type !== "file") continue;
        const st = stats.get(entry)!;
        const remembered = cache?.lookup(entry.path, st);
        if (remembered) entry.sha256 = remembered;
        else if (st.size > BigInt(READ_CHUNK)) large.push(entry);
        else {
            const started = wallClockNs();
            entry.sha256 = sha256Hex(fs.readFileSync(path.join(root, entry.path)));
            cache?.record(entry.path, st, entry.sha256, started);
        }
    }
    await forEachConcurrently(large, HASH_CONCURRENCY, async (entry) => {
        const started = wallClockNs();
        entry.sha256 = await sha256File(path.join(root, entry.path));
        cache?.record(entry.path, stats.get(entry)!, entry.sha256, started);
    });
}

// Remembered file digests for source trees, so a preview or a no-op `up` over an unchanged tree
// (an 800 MB OS rootfs, fifty extension folders) stats its files instead of reading every byte.
//
// A digest is reused only while the file's identity is exactly what it was when the digest was taken,
// and never for a file too fresh to trust (toolkit/file-identity.ts). A cache file that cannot be read or
// is of another format is ignored and rewritten.
// One small JSON file per tree root, rewritten whole (staged, then renamed) with only the files the last
// walk saw; at most MAX_TREES of them, the least recently used removed first.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { FileIdentity, cacheRoot, fileIdentity, tooFreshToTrust, touch } from "../file-identity";

const FORMAT = "pulumi-kairos digest-cache v1";
const MAX_TREES = 256;

/** Set to "off" to hash every file every time. */
export const DIGEST_CACHE_ENV = "PULUMI_KAIROS_DIGEST_CACHE";

interface CacheFile {
    format: string;
    root: string;
    files: Record<string, { id: FileIdentity; sha256: string }>;
}

/** The digests remembered for one tree root; a no-op when the cache is switched off. */
export class TreeDigestCache {
    private readonly seen: CacheFile["files"] = {};
    private changed = false;

    private constructor(
        private readonly file: string | undefined,
        private readonly root: string,
        private readonly known: CacheFile["files"],
    ) {}

    static open(root: string): TreeDigestCache {
        const resolved = path.resolve(root);
        if (process.env[DIGEST_CACHE_ENV] === "off") return new TreeDigestCache(undefined, resolved, {});
        const file = path.join(cacheRoot(), "tree-digests", `${createHash("sha256").update(resolved).digest("hex")}.json`);
        let known: CacheFile["files"] = {};
        try {
            const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as CacheFile;
            if (parsed.format === FORMAT && parsed.root === resolved && parsed.files && typeof parsed.files === "object") known = parsed.files;
        } catch {
            // none yet, or unreadable: start empty
        }
        return new TreeDigestCache(file, resolved, known);
    }

    /** The remembered sha256 of `rel` if `st` is exactly the identity it was taken at. */
    lookup(rel: string, st: fs.BigIntStats): string | undefined {
        const hit = Object.prototype.hasOwnProperty.call(this.known, rel) ? this.known[rel] : undefined;
        if (!hit || !Array.isArray(hit.id) || typeof hit.sha256 !== "string") return undefined;
        const now = fileIdentity(st);
        if (!now.every((v, i) => v === hit.id[i])) return undefined;
        this.seen[rel] = hit;
        return hit.sha256;
    }

    /** Remembers a digest taken from a read that began at `hashStartedNs` (wall clock), unless the file was too fresh to trust. */
    record(rel: string, st: fs.BigIntStats, sha256: string, hashStartedNs: bigint): void {
        if (!this.file) return;
        this.changed = true;
        if (tooFreshToTrust(st, hashStartedNs)) return;
        this.seen[rel] = { id: fileIdentity(st), sha256 };
    }

    /** Writes what this walk saw (and only that), when it differs from what was loaded. */
    save(): void {
        if (!this.file) return;
        if (!this.changed && Object.keys(this.seen).length === Object.keys(this.known).length) {
            touch(this.file); // least recently used is by mtime
            return;
        }
        const dir = path.dirname(this.file);
        try {
            fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
            const staged = `${this.file}.${process.pid}.tmp`;
            fs.writeFileSync(staged, JSON.stringify({ format: FORMAT, root: this.root, files: this.seen } satisfies CacheFile), { mode: 0o600 });
            fs.renameSync(staged, this.file);
            evictBeyond(dir, MAX_TREES);
        } catch {
            // A cache that cannot be written only costs the next walk a full read.
        }
    }
}

function evictBeyond(dir: string, max: number): void {
    const entries = fs.readdirSync(dir).filter((n) => n.endsWith(".json"));
    if (entries.length <= max) return;
    const byAge = entries.map((n) => ({ n, t: fs.statSync(path.join(dir, n), { throwIfNoEntry: false })?.mtimeMs ?? 0 })).sort((a, b) => a.t - b.t);
    for (const { n } of byAge.slice(0, entries.length - max)) fs.rmSync(path.join(dir, n), { force: true });
}

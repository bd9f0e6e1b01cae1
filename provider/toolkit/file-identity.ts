// What "unchanged" means for a file whose earlier reading is reused (source digests, parsed keys):
// the same device, inode, size, mtime and ctime, to the nanosecond. ctime cannot be set from user space,
// so a write, a chmod, a rename over the file or `touch -d` all change it. Timestamps are only as fine as
// the kernel's clock tick, so a reading of a file changed less than RACY_WINDOW_NS before it began is
// never reused (the "racy clean" rule of git's index).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const RACY_WINDOW_NS = 2_000_000_000n;

export type FileIdentity = [dev: string, ino: string, size: string, mtimeNs: string, ctimeNs: string];

export function fileIdentity(st: fs.BigIntStats): FileIdentity {
    return [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].map(String) as FileIdentity;
}

/** True when the file changed within the racy window before `readStartedNs` (wall clock): its reading must not be kept. */
export function tooFreshToTrust(st: fs.BigIntStats, readStartedNs: bigint = wallClockNs()): boolean {
    const newest = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
    return newest + RACY_WINDOW_NS > readStartedNs;
}

/** Wall-clock nanoseconds, comparable with file timestamps. */
export function wallClockNs(): bigint {
    return BigInt(Date.now()) * 1_000_000n;
}

/** The folder pulumi-kairos keeps its caches in: $PULUMI_KAIROS_CACHE, else $XDG_CACHE_HOME/pulumi-kairos or ~/.cache/pulumi-kairos. */
export function cacheRoot(): string {
    return process.env.PULUMI_KAIROS_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "pulumi-kairos");
}

/** Marks a cache entry as just used (least-recently-used eviction goes by mtime); gone meanwhile is fine. */
export function touch(file: string): void {
    try {
        const now = new Date();
        fs.utimesSync(file, now, now);
    } catch {
        // evicted meanwhile: nothing to keep fresh
    }
}

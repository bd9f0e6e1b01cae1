// Per-process memory of what was read from small input files (certificates, keys), so that one preview
// or up with fifty extensions signed by the same db key parses that key once, not three times per
// extension. A result is reused only while every file it came from has the identity it had (device,
// inode, size, mtime, ctime to the nanosecond); a file that cannot be stat'ed, one changed within the
// last RACY_WINDOW_MS (timestamps are only as fine as the kernel's clock tick), or a call that throws,
// is never remembered.
import * as fs from "fs";

const MAX_ENTRIES = 256;
const RACY_WINDOW_MS = 2000;

function identity(file: string): string | undefined {
    try {
        const st = fs.statSync(file, { bigint: true });
        if (Number(st.ctimeNs / 1_000_000n) > Date.now() - RACY_WINDOW_MS || Number(st.mtimeNs / 1_000_000n) > Date.now() - RACY_WINDOW_MS) return undefined;
        return [file, st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join(":");
    } catch {
        return undefined;
    }
}

/** `fn` over file paths, remembered per exact file identities. */
export function memoByFiles<A extends string[], R>(fn: (...files: A) => R): (...files: A) => R {
    const memory = new Map<string, R>();
    return (...files: A): R => {
        const ids = files.map(identity);
        if (ids.some((id) => id === undefined)) return fn(...files);
        const key = JSON.stringify(ids);
        if (memory.has(key)) return memory.get(key)!;
        const result = fn(...files);
        if (memory.size >= MAX_ENTRIES) memory.clear();
        memory.set(key, result);
        return result;
    };
}

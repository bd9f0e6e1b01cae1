// Per-process memory of what was read from small input files (certificates, keys), so that one preview
// or up with fifty extensions signed by the same db key parses that key once, not three times per
// extension. A result is reused only while every file it came from is unchanged (toolkit/file-identity.ts);
// a file that cannot be stat'ed, one too fresh to trust, or a call that throws, is never remembered.
import * as fs from "fs";
import { fileIdentity, tooFreshToTrust } from "./file-identity";

const MAX_ENTRIES = 256;

function identity(file: string): string | undefined {
    try {
        const st = fs.statSync(file, { bigint: true });
        if (tooFreshToTrust(st)) return undefined;
        return [file, ...fileIdentity(st)].join(":");
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

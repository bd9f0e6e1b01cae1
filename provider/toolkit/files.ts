// File helpers shared by the build steps: digests, staging directories and rename-into-place.
import { createHash } from "crypto";
import * as fs from "fs";

export function sha256Hex(data: string | Buffer): string {
    return createHash("sha256").update(data).digest("hex");
}

export async function sha256File(file: string): Promise<string> {
    const hash = createHash("sha256");
    for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
    return hash.digest("hex");
}

/** sha256 of a file, or undefined when it does not exist. */
export async function sha256FileIfExists(file: string): Promise<string | undefined> {
    try {
        return await sha256File(file);
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
    }
}

/** Stable JSON: object keys sorted at every level, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
    return JSON.stringify(value, (_key, v) =>
        v && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
            : v,
    );
}

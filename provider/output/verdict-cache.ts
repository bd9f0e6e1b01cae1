// Remembered passes of the checks BootMedia makes on what it is handed in preview (store of
// media-trust.ts verdicts), so that a preview of unchanged inputs does not run sbverify over every UKI
// again. A pass is reused only for the same check, the same trust anchors and a file whose identity is
// exactly what it was when it passed (toolkit/file-identity.ts: device, inode, size, mtime and ctime to the
// nanosecond, never a file too fresh to trust). Failures are never remembered. The build does not use
// this: it checks its own private copies of the inputs every time.
import * as fs from "fs";
import * as path from "path";
import { DIGEST_CACHE_ENV } from "../toolkit/source/digest-cache";
import { FileIdentity, cacheRoot, fileIdentity, tooFreshToTrust, touch, wallClockNs } from "../toolkit/file-identity";
import { sha256Hex } from "../toolkit/files";

const FORMAT = "pulumi-kairos verdict-cache v1";
const MAX_ENTRIES = 1024;

interface Entry {
    format: string;
    file: string;
    check: string;
    id: FileIdentity;
}

/**
 * Runs `check` (which resolves to a reason for refusal, or undefined for a pass) unless this exact file
 * passed this exact check before. `check` names the check and everything it depends on besides the file
 * (the trust anchors' fingerprints).
 */
export async function rememberedPass(file: string, check: string, run: () => Promise<string | undefined>): Promise<string | undefined> {
    if (process.env[DIGEST_CACHE_ENV] === "off") return run();
    const abs = path.resolve(file);
    const entryFile = path.join(cacheRoot(), "verdicts", `${sha256Hex(`${check}\0${abs}`)}.json`);
    const before = fs.statSync(abs, { bigint: true, throwIfNoEntry: false });
    if (!before) return run();
    const id = fileIdentity(before);
    try {
        const hit = JSON.parse(fs.readFileSync(entryFile, "utf8")) as Entry;
        if (hit.format === FORMAT && hit.file === abs && hit.check === check && Array.isArray(hit.id) && id.every((v, i) => v === hit.id[i])) {
            touch(entryFile);
            return undefined;
        }
    } catch {
        // none yet, or unreadable: check
    }
    const started = wallClockNs();
    const verdict = await run();
    const after = fs.statSync(abs, { bigint: true, throwIfNoEntry: false });
    // Kept only if the file was the same throughout the check and old enough for its timestamps to mean something.
    if (verdict === undefined && after && fileIdentity(after).every((v, i) => v === id[i]) && !tooFreshToTrust(after, started)) {
        try {
            fs.mkdirSync(path.dirname(entryFile), { recursive: true, mode: 0o700 });
            const staged = `${entryFile}.${process.pid}.tmp`;
            fs.writeFileSync(staged, JSON.stringify({ format: FORMAT, file: abs, check, id } satisfies Entry), { mode: 0o600 });
            fs.renameSync(staged, entryFile);
            evictBeyond(path.dirname(entryFile), MAX_ENTRIES);
        } catch {
            // a cache that cannot be written only costs the next preview a check
        }
    }
    return verdict;
}

function evictBeyond(dir: string, max: number): void {
    const entries = fs.readdirSync(dir).filter((n) => n.endsWith(".json"));
    if (entries.length <= max) return;
    const byAge = entries.map((n) => ({ n, t: fs.statSync(path.join(dir, n), { throwIfNoEntry: false })?.mtimeMs ?? 0 })).sort((a, b) => a.t - b.t);
    for (const { n } of byAge.slice(0, entries.length - max)) fs.rmSync(path.join(dir, n), { force: true });
}

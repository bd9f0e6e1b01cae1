// Compressed initrds kept by what they hold, so a UKI rebuild whose OS tree did not change (a new
// command line, a new kernel: the kernel is its own section, not in the initrd) skips the zstd pass,
// which on a real-size OS is the bulk of the build.
//
// The key names the cpio's exact bytes, the zstd level and the zstd build (toolkit/boot/initrd.ts). An entry
// is an initrd plus a JSON record of its sha256; what is copied out is hashed before it is used, and an
// entry whose bytes no longer match its record is deleted and rebuilt, never used. Entries are staged and
// renamed in, so a reader never sees half of one. The folder is bounded: past the byte budget the least
// recently used entries go.
import * as fs from "fs";
import * as path from "path";
import { cacheRoot, touch } from "../toolkit/file-identity";
import { sha256File } from "../toolkit/files";
import type { InitrdResult, InitrdReuse } from "../toolkit/boot/initrd";

/** Megabytes the initrd cache may hold (default 4096); 0 switches it off. */
export const INITRD_CACHE_ENV = "PULUMI_KAIROS_INITRD_CACHE_MB";
const DEFAULT_BUDGET_MB = 4096;

export class InitrdCache implements InitrdReuse {
    constructor(
        private readonly dir = path.join(cacheRoot(), "initrd"),
        private readonly budgetBytes = budgetFromEnv(),
    ) {}

    /** True when the budget allows keeping anything at all. */
    get enabled(): boolean {
        return this.budgetBytes > 0;
    }

    async take(key: string, outFile: string): Promise<InitrdResult | undefined> {
        if (!this.enabled) return undefined;
        const { data, record } = this.paths(key);
        let kept: InitrdResult;
        try {
            kept = JSON.parse(fs.readFileSync(record, "utf8"));
        } catch {
            return undefined;
        }
        let copied: string;
        try {
            fs.copyFileSync(data, outFile); // in the kernel (copy_file_range): no bytes through this process
            copied = await sha256File(outFile);
        } catch {
            fs.rmSync(outFile, { force: true });
            return undefined;
        }
        if (copied !== kept.sha256 || fs.statSync(outFile).size !== kept.size) {
            fs.rmSync(outFile, { force: true });
            this.drop(key);
            return undefined;
        }
        touch(data);
        return kept;
    }

    put(key: string, file: string, result: InitrdResult): void {
        if (!this.enabled || result.size > this.budgetBytes) return;
        const { data, record } = this.paths(key);
        const staged = `${data}.${process.pid}.staging`;
        try {
            fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
            fs.copyFileSync(file, staged);
            fs.writeFileSync(`${staged}.json`, JSON.stringify(result));
            fs.renameSync(`${staged}.json`, record);
            fs.renameSync(staged, data);
            this.evict();
        } catch {
            // Not kept: the next build of this tree compresses again, nothing worse.
            fs.rmSync(staged, { force: true });
            fs.rmSync(`${staged}.json`, { force: true });
        }
    }

    private paths(key: string): { data: string; record: string } {
        if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`initrd cache key ${key} is not a sha256`);
        return { data: path.join(this.dir, `${key}.zst`), record: path.join(this.dir, `${key}.json`) };
    }

    private drop(key: string): void {
        const { data, record } = this.paths(key);
        fs.rmSync(data, { force: true });
        fs.rmSync(record, { force: true });
    }

    /** Least recently used first, until the entries fit the budget. */
    private evict(): void {
        const entries = fs
            .readdirSync(this.dir)
            .filter((n) => /^[0-9a-f]{64}\.zst$/.test(n))
            .map((n) => {
                const st = fs.statSync(path.join(this.dir, n), { throwIfNoEntry: false });
                return { key: n.slice(0, 64), size: st?.size ?? 0, used: st?.mtimeMs ?? 0 };
            })
            .sort((a, b) => a.used - b.used);
        let total = entries.reduce((sum, e) => sum + e.size, 0);
        for (const e of entries) {
            if (total <= this.budgetBytes) break;
            this.drop(e.key);
            total -= e.size;
        }
    }
}

function budgetFromEnv(): number {
    const raw = process.env[INITRD_CACHE_ENV];
    const mb = raw === undefined || raw === "" ? DEFAULT_BUDGET_MB : Number(raw);
    if (!Number.isFinite(mb) || mb < 0) throw new Error(`${INITRD_CACHE_ENV}=${raw} is not a number of megabytes`);
    return Math.floor(mb * 1024 * 1024);
}

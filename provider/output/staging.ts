// Staging-then-rename: a build writes into a fresh directory beside its target and its results are
// renamed into place only when it succeeded, so a failed or killed build leaves the previous files.
import * as fs from "fs";
import * as path from "path";
import { faultPoint } from "../fault-points";
import { processAlive, processTag, taggedProcess } from "../toolkit/process-alive";

/**
 * Runs `build(staging)`; on success moves everything it wrote into `targetDir` (the whole directory
 * with one rename when `targetDir` does not exist yet). On failure nothing in `targetDir` changes.
 * Staging directories are created 0700, so a new key folder is private from its first moment; a new
 * `targetDir` gets `newDirMode` when it is moved into place.
 */
export async function stageThenMove<T>(targetDir: string, build: (staging: string) => Promise<T>, newDirMode = 0o700): Promise<T> {
    fs.mkdirSync(path.dirname(targetDir), { recursive: true });
    const staging = makeBeside(targetDir, `.${path.basename(targetDir)}.staging-`);
    try {
        const result = await build(staging);
        if (!fs.existsSync(targetDir)) {
            fs.chmodSync(staging, newDirMode);
            fs.renameSync(staging, targetDir);
            faultPoint(`moved into place: ${path.basename(targetDir)}`);
        } else {
            for (const entry of fs.readdirSync(staging).sort()) {
                fs.renameSync(path.join(staging, entry), path.join(targetDir, entry));
                faultPoint(`moved into ${path.basename(targetDir)}: ${entry}`);
            }
        }
        return result;
    } finally {
        fs.rmSync(staging, { recursive: true, force: true });
    }
}

/**
 * Like stageThenMove, for a directory the resource owns whole: the new tree replaces the old one, so
 * files a previous build made and this one does not (a dropped boot entry) do not linger.
 */
export async function replaceDirectory<T>(targetDir: string, build: (staging: string) => Promise<T>, newDirMode = 0o755): Promise<T> {
    fs.mkdirSync(path.dirname(targetDir), { recursive: true });
    const staging = makeBeside(targetDir, `.${path.basename(targetDir)}.staging-`);
    let old: string | undefined;
    try {
        const result = await build(staging);
        fs.chmodSync(staging, newDirMode);
        if (fs.existsSync(targetDir)) {
            old = `${staging}.old`;
            fs.renameSync(targetDir, old);
            faultPoint(`set aside ${path.basename(targetDir)}`);
        }
        fs.renameSync(staging, targetDir);
        faultPoint(`moved into place: ${path.basename(targetDir)}`);
        return result;
    } finally {
        fs.rmSync(staging, { recursive: true, force: true });
        if (old) fs.rmSync(old, { recursive: true, force: true });
    }
}

/**
 * Runs `fn` with a scratch folder beside `outputDir` (same filesystem, so big trees are renamed, not
 * copied across devices) and removes it afterwards, whatever happened.
 */
export async function withScratch<T>(outputDir: string, label: string, fn: (work: string) => Promise<T>): Promise<T> {
    fs.mkdirSync(path.dirname(outputDir), { recursive: true });
    const work = makeBeside(outputDir, `.${label}.work-`);
    try {
        return await fn(work);
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/**
 * A fresh folder next to `target`, as an absolute path: `target` may be relative to the project
 * folder, and the tools that get these paths must not depend on the working directory. Its name
 * carries this process's id and start time, so the leftovers of a killed build (a staged key set holds private keys)
 * are recognised as dead and removed by the next build beside the same target.
 */
function makeBeside(target: string, prefix: string): string {
    const dir = path.dirname(target);
    restoreInterruptedSwap(target);
    sweepDeadLeftovers(dir, prefix);
    return path.resolve(fs.mkdtempSync(path.join(dir, `${prefix}${processTag()}-`)));
}

/**
 * replaceDirectory swaps with two renames (old tree aside, new tree in); a build killed between them
 * leaves no `targetDir`, and the previous tree under `.<name>.staging-<pid>-<start>-XXXXXX.old`. This puts that
 * tree back, so what the state records is there again. Resources call it before reading their folder;
 * every build beside the target calls it before sweeping.
 */
export function restoreInterruptedSwap(targetDir: string): boolean {
    if (fs.existsSync(targetDir)) return false;
    const dir = path.dirname(targetDir);
    const aside = deadLeftovers(dir, `.${path.basename(targetDir)}.staging-`).find((name) => name.endsWith(".old"));
    if (!aside) return false;
    fs.renameSync(path.join(dir, aside), targetDir);
    return true;
}

/** Removes `<prefix><pid>-*` folders in `dir` whose process is gone (a live one may be another build's). */
export function sweepDeadLeftovers(dir: string, prefix: string): string[] {
    const removed = deadLeftovers(dir, prefix);
    for (const name of removed) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    return removed;
}

/** The `<prefix><pid>-*` entries of `dir` whose builder process is gone (or whose pid now names another process). */
function deadLeftovers(dir: string, prefix: string): string[] {
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir).filter((name) => {
        if (!name.startsWith(prefix)) return false;
        const owner = taggedProcess(name.slice(prefix.length));
        if (!owner) return false;
        const notAfter = owner.started ? undefined : mtimeOf(path.join(dir, name));
        return !processAlive(owner.pid, { started: owner.started, notAfter });
    });
}

function mtimeOf(file: string): Date | undefined {
    try {
        return fs.lstatSync(file).mtime;
    } catch {
        return undefined;
    }
}

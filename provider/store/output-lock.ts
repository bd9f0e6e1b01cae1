// One writer per artifact. Two `pulumi up`s (two stacks, or two checkouts of one program) that point at
// the same output would otherwise interleave their staging-then-rename steps. The lock is a folder
// beside the artifact, made by one atomic rename, naming its holder: process id and that process's
// start time (so a reused pid is not mistaken for the holder), the resource, the host and since when.
// It dies with its process: a holder that is gone (killed, crashed) no longer counts, and the next
// build takes the lock over at once.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stepFailure } from "../build-log";

export interface LockHolder {
    pid: number;
    /** The holder's start time in clock ticks since boot (/proc/<pid>/stat field 22). */
    started: string;
    host: string;
    owner: string;
    since: string;
}

export class OutputLockedError extends Error {
    constructor(
        readonly target: string,
        readonly holder: LockHolder,
        waitedSeconds: number,
    ) {
        super(
            `${target} is being written by another build: ${holder.owner} (pid ${holder.pid} on ${holder.host}, since ${holder.since}); ` +
                `waited ${waitedSeconds} s. Two stacks must not write the same artifact: give one of them another outputDir or name, ` +
                `or raise ${LOCK_TIMEOUT_ENV} to wait longer. Nothing was changed.`,
        );
    }
}

/** Seconds a build waits for another build of the same artifact before failing. */
export const LOCK_TIMEOUT_ENV = "KAIROS_LOCK_TIMEOUT_SECONDS";
const DEFAULT_TIMEOUT_SECONDS = 600;
const POLL_MS = 200;

/** The lock folder guarding `target` (an artifact file or a folder a resource owns whole). */
export function lockPathFor(target: string): string {
    const abs = path.resolve(target);
    return path.join(path.dirname(abs), `.${path.basename(abs)}.lock`);
}

/**
 * Runs `fn` holding the lock of every target (taken in sorted order, so two builds never wait on each
 * other). While another live build holds one, says so once through `onWait` and waits.
 */
export async function withOutputLock<T>(targets: string[], owner: string, fn: () => Promise<T>, onWait?: (message: string) => void): Promise<T> {
    const byLock = new Map(targets.map((t) => [lockPathFor(t), path.resolve(t)]));
    const held: string[] = [];
    try {
        for (const lock of [...byLock.keys()].sort()) {
            try {
                await acquire(lock, byLock.get(lock)!, owner, onWait);
            } catch (e) {
                throw e instanceof OutputLockedError ? e : stepFailure(owner, "take the output lock", e);
            }
            held.push(lock);
        }
        return await fn();
    } finally {
        for (const lock of held.reverse()) release(lock);
    }
}

async function acquire(lock: string, target: string, owner: string, onWait?: (message: string) => void): Promise<void> {
    const timeoutSeconds = lockTimeoutSeconds();
    const started = Date.now();
    let said = false;
    for (;;) {
        if (tryAcquire(lock, owner)) return;
        const holder = readHolderFile(lock);
        if (!holder) {
            // Released just now, or a folder with no readable holder (a lock is renamed in complete,
            // so that is debris, not a live build): take it over.
            if (fs.existsSync(lock)) breakLock(lock, undefined);
            continue;
        }
        if (!holderAlive(holder)) {
            breakLock(lock, holder);
            continue;
        }
        const waited = (Date.now() - started) / 1000;
        if (waited >= timeoutSeconds) throw new OutputLockedError(target, holder, Math.round(waited));
        if (!said && onWait) {
            onWait(`waiting for ${holder.owner} (pid ${holder.pid} on ${holder.host}, since ${holder.since}), which is writing the same artifact`);
            said = true;
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
    }
}

/** Makes the lock folder complete (holder file inside) under a private name, then renames it in. */
function tryAcquire(lock: string, owner: string): boolean {
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    const pending = fs.mkdtempSync(`${lock}.new-`);
    const holder: LockHolder = { pid: process.pid, started: startTimeOf(process.pid) ?? "", host: os.hostname(), owner, since: new Date().toISOString() };
    try {
        fs.writeFileSync(path.join(pending, "holder.json"), JSON.stringify(holder));
        fs.renameSync(pending, lock); // fails when `lock` exists and is not empty: someone holds it
        return true;
    } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        fs.rmSync(pending, { recursive: true, force: true });
        if (code === "ENOTEMPTY" || code === "EEXIST") return false;
        throw e;
    }
}

/** Alive means: a process with that pid exists and started when the holder did (no pid reuse). */
export function holderAlive(holder: Pick<LockHolder, "pid" | "started" | "host">): boolean {
    if (holder.host !== os.hostname()) return true; // another machine's build on a shared folder: cannot tell, so respect it
    const now = startTimeOf(holder.pid);
    return now !== undefined && (holder.started === "" || now === holder.started);
}

function startTimeOf(pid: number): string | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    } catch {
        return undefined;
    }
}

/**
 * Moves a dead holder's lock aside, then removes it. Two builds may find the same dead holder: the
 * second one's rename may catch the first one's fresh lock instead, so what was moved is checked and a
 * live lock is put back.
 */
function breakLock(lock: string, dead: LockHolder | undefined): void {
    const aside = fs.mkdtempSync(`${lock}.dead-`);
    const moved = path.join(aside, "lock");
    try {
        fs.renameSync(lock, moved);
    } catch {
        fs.rmSync(aside, { recursive: true, force: true });
        return; // someone else broke it first
    }
    const found = readHolderFile(moved);
    if (found && (!dead || !sameHolder(found, dead))) {
        try {
            fs.renameSync(moved, lock);
        } catch {
            /* a third build took the lock meanwhile; the one moved aside was released by its owner's check */
        }
    }
    fs.rmSync(aside, { recursive: true, force: true });
}

/** Releases the lock if it is still this process's (a lock is only ever broken when its holder is dead). */
function release(lock: string): void {
    const holder = readHolderFile(lock);
    if (!holder || holder.pid !== process.pid) return;
    const aside = fs.mkdtempSync(`${lock}.done-`);
    fs.renameSync(lock, path.join(aside, "lock"));
    fs.rmSync(aside, { recursive: true, force: true });
}

function readHolderFile(lock: string): LockHolder | undefined {
    try {
        return JSON.parse(fs.readFileSync(path.join(lock, "holder.json"), "utf8"));
    } catch {
        return undefined;
    }
}

function sameHolder(a: LockHolder, b: LockHolder): boolean {
    return a.pid === b.pid && a.started === b.started && a.host === b.host && a.since === b.since;
}

function lockTimeoutSeconds(): number {
    const raw = process.env[LOCK_TIMEOUT_ENV];
    const n = raw === undefined ? DEFAULT_TIMEOUT_SECONDS : Number(raw);
    return Number.isFinite(n) && n >= 0 ? n : DEFAULT_TIMEOUT_SECONDS;
}

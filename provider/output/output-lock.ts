// One writer per artifact. Two `pulumi up`s (two stacks, or two checkouts of one program) that point at
// the same output would otherwise interleave their staging-then-rename steps. The lock is a folder
// beside the artifact, made by one atomic rename, naming its holder: process id and that process's
// start time (so a reused pid is not mistaken for the holder), the resource, the host and since when.
// It dies with its process: a holder that is gone (killed, crashed) no longer counts, and the next
// build takes the lock over at once.
//
// Taking over a dead holder's lock is the one step where a process moves a lock that is not its own, so
// it runs under a mutex of its own (`<lock>.break`, made the same atomic way): only the mutex holder
// looks at the lock again and removes it, and only if its holder is still dead. Nobody else ever removes
// someone else's lock, so a lock cannot be moved aside while a third build takes the free place (two
// writers). Each acquisition carries a random nonce, and a release removes only the lock with its own
// nonce, never a lock taken over meanwhile by another acquisition of the same process.
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stepFailure } from "../build-log";
import { processAlive, startTimeOf } from "../toolkit/process-alive";

export interface LockHolder {
    pid: number;
    /** The holder's start time in clock ticks since boot (/proc/<pid>/stat field 22). */
    started: string;
    host: string;
    owner: string;
    since: string;
    /** Random per acquisition (absent in locks of older versions). */
    nonce?: string;
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
    const held: { lock: string; nonce: string }[] = [];
    try {
        for (const lock of [...byLock.keys()].sort()) {
            try {
                held.push({ lock, nonce: await acquire(lock, byLock.get(lock)!, owner, onWait) });
            } catch (e) {
                throw e instanceof OutputLockedError ? e : stepFailure(owner, "take the output lock", e);
            }
        }
        return await fn();
    } finally {
        for (const { lock, nonce } of held.reverse()) release(lock, nonce);
    }
}

/** Takes the lock; returns the nonce written into it. */
async function acquire(lock: string, target: string, owner: string, onWait?: (message: string) => void): Promise<string> {
    const timeoutSeconds = lockTimeoutSeconds();
    const started = Date.now();
    let said = false;
    for (;;) {
        const nonce = newNonce();
        if (tryPlace(lock, holderRecord(owner, nonce))) return nonce;
        const holder = readHolderFile(lock);
        if (!holder || !holderAlive(holder)) {
            // Released just now, debris with no readable holder (a lock is renamed in complete), or a dead
            // holder's: take it over, unless another build is doing so right now.
            if (breakLock(lock)) continue;
            const waited = (Date.now() - started) / 1000;
            if (waited >= timeoutSeconds) {
                throw new Error(`${lock}: another build has been taking over its stale lock for ${Math.round(waited)} s (${lock}.break); if no build runs, remove ${lock}.break`);
            }
            await new Promise((r) => setTimeout(r, BREAK_POLL_MS));
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

const BREAK_POLL_MS = 20;

function newNonce(): string {
    return randomBytes(16).toString("hex");
}

function holderRecord(owner: string, nonce: string): LockHolder {
    return { pid: process.pid, started: startTimeOf(process.pid) ?? "", host: os.hostname(), owner, since: new Date().toISOString(), nonce };
}

/**
 * Makes a lock folder complete (holder file inside) under a private name, then renames it in at `lock`;
 * false when the place is taken (rename(2) does not replace a non-empty folder).
 */
function tryPlace(lock: string, holder: LockHolder): boolean {
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    const pending = fs.mkdtempSync(`${lock}.new-`);
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
    return processAlive(holder.pid, { started: holder.started });
}

/**
 * Removes the lock at `lock` if it is debris or its holder is dead, under the break mutex; false when
 * another build holds the mutex (the caller waits a moment and looks again). Under the mutex the lock is
 * read afresh: it can no longer change under us (its holder is dead, other breakers are shut out, and a
 * live owner only ever removes its own), so what is moved aside is what was judged.
 */
function breakLock(lock: string): boolean {
    const mutex = `${lock}.break`;
    const nonce = newNonce();
    if (!tryPlace(mutex, holderRecord("breaking a stale output lock", nonce))) {
        breakDeadMutex(mutex);
        return false;
    }
    try {
        const judged = readHolderFile(lock);
        if (judged) {
            if (!holderAlive(judged)) removeAside(lock, "dead");
            return true;
        }
        const entries = readdirOrUndefined(lock);
        if (!entries) return true; // released meanwhile
        if (entries.length === 0) {
            // An empty folder can be renamed over by a build taking the lock right now, so it is only
            // rmdir'ed, which fails once a lock (never empty) has taken its place.
            try {
                fs.rmdirSync(lock);
            } catch {
                /* taken meanwhile */
            }
            return true;
        }
        const now = readHolderFile(lock); // placed between the two reads above?
        if (!now || !holderAlive(now)) removeAside(lock, "dead"); // a non-empty folder without a readable holder is debris
        return true;
    } finally {
        release(mutex, nonce);
    }
}

/**
 * A breaker killed while holding the mutex would block every later build. Its mutex is moved to a
 * name derived from its nonce (a tombstone, left in place): a second build that judged the same dead
 * breaker then finds that name taken and cannot move a live breaker's mutex by mistake. Tombstones
 * only appear when a process dies inside the few-millisecond break step.
 */
function breakDeadMutex(mutex: string): void {
    const holder = readHolderFile(mutex);
    if (!holder || holderAlive(holder) || !holder.nonce) return; // alive (or still being made): wait for it
    try {
        fs.renameSync(mutex, `${mutex}.dead-${holder.nonce}`);
    } catch {
        // broken by another build already, or released
    }
}

/** Releases `lock` if it carries `nonce`: a lock taken over by another acquisition is left alone. */
function release(lock: string, nonce: string): void {
    const holder = readHolderFile(lock);
    if (!holder || holder.pid !== process.pid || holder.nonce !== nonce) return;
    removeAside(lock, "done");
}

/** Renames `dir` to a private name (atomic: the place is free at once), then deletes it there. */
function removeAside(dir: string, why: string): void {
    const aside = fs.mkdtempSync(`${dir}.${why}-`);
    try {
        fs.renameSync(dir, path.join(aside, "lock"));
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    } finally {
        fs.rmSync(aside, { recursive: true, force: true });
    }
}

function readdirOrUndefined(dir: string): string[] | undefined {
    try {
        return fs.readdirSync(dir);
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
    }
}

function readHolderFile(lock: string): LockHolder | undefined {
    try {
        return JSON.parse(fs.readFileSync(path.join(lock, "holder.json"), "utf8"));
    } catch {
        return undefined;
    }
}

function lockTimeoutSeconds(): number {
    const raw = process.env[LOCK_TIMEOUT_ENV];
    const n = raw === undefined ? DEFAULT_TIMEOUT_SECONDS : Number(raw);
    return Number.isFinite(n) && n >= 0 ? n : DEFAULT_TIMEOUT_SECONDS;
}

// Whether the process that left something behind (a PIN folder, a staging folder, an output lock) is
// still running. A pid alone cannot say: pids are reused, and a dead builder's pid may belong to any
// process by now, so its leftovers would be kept for good (or, for a lock, respected for good). What a
// pid cannot fake is its start time (/proc/<pid>/stat field 22, clock ticks since boot): recorded next
// to the pid, the pair names one process for the life of the machine. Folder names carry it as
// `<pid>-<start>-`; names of older versions carry the pid alone, and for those the folder's own time
// stands in: a process that started after the folder was last written cannot be the one that wrote it.
import * as fs from "fs";

/** The start time of `pid` in clock ticks since boot, or undefined when there is no such process (or /proc cannot show it). */
export function startTimeOf(pid: number): string | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    } catch {
        return undefined;
    }
}

/** This process as it goes into a folder name: `<pid>-<start>` (the pid alone where /proc is missing). */
export function processTag(): string {
    const started = startTimeOf(process.pid);
    return started ? `${process.pid}-${started}` : String(process.pid);
}

/**
 * The process named at the start of `rest` (what follows a folder prefix): `<pid>-<start>-…` as made by
 * processTag, or `<pid>-…` as older versions named them; undefined when `rest` names none.
 */
export function taggedProcess(rest: string): { pid: number; started?: string } | undefined {
    const m = /^(\d+)-(?:(\d+)-)?/.exec(rest);
    const pid = Number(m?.[1]);
    return pid > 0 ? { pid, started: m![2] } : undefined;
}

/** Slack for comparing a folder's time with a start time computed from the boot time (whole seconds, adjusted by NTP). */
const CLOCK_SLACK_MS = 60_000;
/** Clock ticks per second as /proc reports them (USER_HZ): 100 on every architecture Node runs on. */
const USER_HZ = 100;

/**
 * Whether process `pid` is alive and is the one meant: with `started`, the process must have started
 * then; with `notAfter` (a time the meant process already existed, e.g. a folder's mtime), it must not
 * have started later. A process whose start time /proc does not show (another user's under hidepid, no
 * /proc) counts as alive when it exists at all: a leftover kept is cheap, a live one removed is not.
 */
export function processAlive(pid: number, meant: { started?: string; notAfter?: Date } = {}): boolean {
    const now = startTimeOf(pid);
    if (now === undefined) return exists(pid);
    if (meant.started) return now === meant.started;
    if (meant.notAfter) {
        const boot = bootTimeMs();
        if (boot !== undefined && boot + (Number(now) * 1000) / USER_HZ > meant.notAfter.getTime() + CLOCK_SLACK_MS) return false;
    }
    return true;
}

function exists(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
    }
}

function bootTimeMs(): number | undefined {
    try {
        const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync("/proc/stat", "utf8"))?.[1]);
        return btime > 0 ? btime * 1000 : undefined;
    } catch {
        return undefined;
    }
}

// What happened, and why. Each build says what it does, step by step, prefixed with the resource, and
// keeps a small report in the resource's outputs (action, reasons, timed steps) for tools to read.
// Where the lines go is the transport's choice (a LogSink for the current call): the plugin puts them
// on the resource's row in `pulumi up`; a dynamic provider has no resource URN (pulumi/pulumi#6065),
// so there they are engine messages on the stack, or stderr when no engine is reachable.
import { AsyncLocalStorage } from "async_hooks";
import * as fs from "fs";
import * as path from "path";
import { faultPoint } from "./fault-points";

export interface LogSink {
    /** A line to keep (shown with the resource and under Diagnostics). */
    info(message: string): void;
    /** A live status line (a step running now), replaced by the next one. */
    progress(message: string): void;
}

const stderrSink: LogSink = {
    info: (m) => void process.stderr.write(`[kairos] ${m}\n`),
    progress: (m) => void process.stderr.write(`[kairos] ${m}\n`),
};

/**
 * Engine messages on the stack, for a dynamic provider whose process knows the engine's address
 * (the set-up's dynamic-provider wrapper exports it; Pulumi's stock one does not, hence stderr then).
 */
function engineSink(): LogSink | undefined {
    if (!process.env.PULUMI_NODEJS_ENGINE) return undefined;
    const log: typeof import("@pulumi/pulumi").log = require("@pulumi/pulumi").log;
    return { info: (m) => void log.info(m).catch(() => undefined), progress: (m) => void log.info(m).catch(() => undefined) };
}

const currentSink = new AsyncLocalStorage<LogSink>();
let defaultSink: LogSink | undefined;
const sink = (): LogSink => currentSink.getStore() ?? (defaultSink ??= engineSink() ?? stderrSink);

/** Runs `fn` with every BuildLog inside it writing to `sink`. */
export function withLogSink<T>(sink: LogSink, fn: () => Promise<T>): Promise<T> {
    return currentSink.run(sink, fn);
}
/** A kept line outside any build (e.g. waiting for another build's lock). */
export function logLine(message: string): void {
    sink().info(message);
}

export interface BuildReport {
    action: "created" | "updated" | "re-signed" | "restored" | "adopted" | "fetched" | "published" | "moved";
    /** Which parts of the input hash changed (or "new", or the drift that was repaired, or "moved from A to B"). */
    reasons: string[];
    steps: { step: string; seconds: number }[];
    seconds: number;
}

export class BuildLog {
    private readonly steps: BuildReport["steps"] = [];
    private readonly started = process.hrtime.bigint();

    constructor(
        private readonly label: string,
        private readonly action: BuildReport["action"],
        private readonly reasons: string[],
    ) {
        this.say(reasons.length ? `${action}: ${reasons.join("; ")}` : action);
    }

    say(message: string): void {
        sink().info(`${this.label}: ${message}`);
    }

    /** Runs one named build step, timing it; its start is live progress, its end a kept line. */
    async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
        const t = process.hrtime.bigint();
        sink().progress(`${this.label}: ${name}...`);
        faultPoint(`${this.label}: ${name} (start)`);
        let result: T;
        try {
            result = await fn();
        } catch (e) {
            throw stepFailure(this.label, name, e);
        }
        faultPoint(`${this.label}: ${name} (end)`);
        const seconds = Number(process.hrtime.bigint() - t) / 1e9;
        this.steps.push({ step: name, seconds: round(seconds) });
        this.say(`${name} done (${seconds.toFixed(2)} s)`);
        return result;
    }

    report(): BuildReport {
        const seconds = round(Number(process.hrtime.bigint() - this.started) / 1e9);
        return { action: this.action, reasons: this.reasons, steps: this.steps, seconds };
    }
}

/** The named parts of an input hash that differ between two builds; "new" when there was none. */
export function changedParts(olds: Record<string, string> | undefined, news: Record<string, string>): string[] {
    if (!olds) return ["new"];
    return Object.keys({ ...olds, ...news }).filter((k) => olds[k] !== news[k]).sort();
}

/** Reasons for an update: changed hash parts, plus files that refresh found missing or altered. */
export function updateReasons(olds: { hashParts?: Record<string, string>; drift?: string[] }, news: { hashParts: Record<string, string> }): string[] {
    const parts = changedParts(olds.hashParts ?? {}, news.hashParts);
    return [...parts, ...(olds.drift ?? []).map((d) => `drift: ${d}`)];
}

/** "restored" when the only reasons are repaired drift, else "updated". */
export function updateAction(reasons: string[]): "restored" | "updated" {
    return reasons.length > 0 && reasons.every((r) => r.startsWith("drift:")) ? "restored" : "updated";
}

/** A drift entry for an artifact whose current digest is `now` (undefined: missing), or none. */
export function driftOf(file: string, expected: string, now: string | undefined): string[] {
    if (now === expected) return [];
    return [`${file.split("/").pop()}: ${now === undefined ? "missing" : "altered"}`];
}

/**
 * The error of a failed step, named by resource and step (the error keeps its class: callers and tests
 * tell failures apart by it). A full disk gets said in plain words: tools word ENOSPC differently.
 */
export function stepFailure(label: string, step: string, e: unknown): Error {
    const error = e instanceof Error ? e : new Error(String(e));
    const noSpace = (error as NodeJS.ErrnoException).code === "ENOSPC" || /no space left on device|ENOSPC|disk full|not enough space/i.test(error.message);
    const prefix = `${label}: step "${step}" failed${noSpace ? " because the disk is full (no space left on device)" : ""}: `;
    if (!error.message.startsWith(`${label}: step `)) error.message = prefix + error.message;
    if (noSpace && !error.message.includes(NO_SPACE_HINT)) error.message += ` ${NO_SPACE_HINT}`;
    return error;
}

/**
 * Some tools do not check their writes (efitools' cert-to-efi-sig-list leaves an empty file on a full
 * disk and exits 0), so a later step fails on the damage instead. When a build failed and the disk
 * under one of its folders is (nearly) full, the error says so.
 */
export function explainFullDisk(e: unknown, dirs: string[]): unknown {
    if (!(e instanceof Error) || e.message.includes(NO_SPACE_HINT)) return e;
    for (const dir of dirs) {
        const free = freeBytes(dir);
        if (free !== undefined && free < NEARLY_FULL_BYTES) {
            e.message += ` The disk holding ${dir} is full (${free} bytes free), which is the likely cause. ${NO_SPACE_HINT}`;
            break;
        }
    }
    return e;
}

const NEARLY_FULL_BYTES = 1 << 20;

function freeBytes(dir: string): number | undefined {
    for (let d = path.resolve(dir); ; d = path.dirname(d)) {
        try {
            const s = fs.statfsSync(d);
            return s.bavail * s.bsize;
        } catch {
            if (d === path.dirname(d)) return undefined;
        }
    }
}

const NO_SPACE_HINT = "Free space where outputDir is, or point outputDir at a bigger disk; the previous artifacts are untouched and nothing partial was kept.";

function round(s: number): number {
    return Math.round(s * 1000) / 1000;
}

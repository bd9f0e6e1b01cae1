// What happened, and why. Dynamic providers have no log channel to the engine (pulumi/pulumi#6065):
// what a provider writes to stderr reaches `pulumi up` as a message on the stack, not on the
// resource. So each build says what it does there, prefixed with the resource, and also keeps a
// small report in the resource's outputs (action, reasons, timed steps) for tools to read.
export interface BuildReport {
    action: "created" | "updated" | "re-signed" | "restored";
    /** Which parts of the input hash changed (or "new", or the drift that was repaired). */
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
        process.stderr.write(`[kairos] ${this.label}: ${message}\n`);
    }

    /** Runs one named build step, timing it and saying when it starts and ends. */
    async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
        const t = process.hrtime.bigint();
        this.say(`${name}...`);
        const result = await fn();
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

function round(s: number): number {
    return Math.round(s * 1000) / 1000;
}

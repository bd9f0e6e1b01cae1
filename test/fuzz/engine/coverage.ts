// Coverage feedback from V8's own block coverage (the inspector's Profiler domain), since the libFuzzer
// native part of Jazzer.js cannot be loaded on this machine (see test/fuzz/README.md). Taking coverage costs
// about a millisecond, far more than one parser run, so the engine runs inputs in batches, takes coverage
// once per batch, and only replays a batch one input at a time when the batch found something new.
import * as inspector from "inspector";

interface Range {
    startOffset: number;
    endOffset: number;
    count: number;
}

interface FunctionCoverage {
    ranges: Range[];
}

interface ScriptCoverage {
    url: string;
    functions: FunctionCoverage[];
}

export class CoverageMap {
    private readonly session = new inspector.Session();
    /** Every block range seen so far, per function: V8 lists a block only when its count differs from its parent's. */
    private readonly knownRanges = new Map<string, Range[]>();
    private readonly covered = new Set<string>();
    /** Snapshots taken and the time they cost, for the report. */
    takes = 0;
    takeMs = 0;

    /** Starts counting; modules loaded before this may report only function-level coverage. */
    constructor(private readonly include: (url: string) => boolean) {
        this.session.connect();
        this.post("Profiler.enable");
        // Counts, not binary: in binary mode V8 reports a block as covered once and the per-batch view breaks.
        this.post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });
    }

    get size(): number {
        return this.covered.size;
    }

    /** Blocks run since the last call, as keys; resets V8's counters. */
    take(): Set<string> {
        const started = performance.now();
        const { result } = this.post("Profiler.takePreciseCoverage") as { result: ScriptCoverage[] };
        const blocks = new Set<string>();
        for (const script of result) {
            if (!this.include(script.url)) continue;
            for (const fn of script.functions) this.addFunction(script.url, fn.ranges, blocks);
        }
        this.takes++;
        this.takeMs += performance.now() - started;
        return blocks;
    }

    /** Adds `blocks` to the map; returns how many were new. */
    merge(blocks: Set<string>): number {
        let added = 0;
        for (const b of blocks) {
            if (this.covered.has(b)) continue;
            this.covered.add(b);
            added++;
        }
        return added;
    }

    hasNew(blocks: Set<string>): boolean {
        for (const b of blocks) if (!this.covered.has(b)) return true;
        return false;
    }

    stop(): void {
        this.post("Profiler.stopPreciseCoverage");
        this.session.disconnect();
    }

    private addFunction(url: string, ranges: Range[], blocks: Set<string>): void {
        const [own, ...inner] = ranges;
        if (!own || own.count === 0) return;
        const fnKey = `${url}:${own.startOffset}`;
        const known = this.knownRanges.get(fnKey) ?? [];
        for (const r of inner) {
            if (!known.some((k) => k.startOffset === r.startOffset && k.endOffset === r.endOffset)) known.push(r);
        }
        this.knownRanges.set(fnKey, known);
        blocks.add(`${fnKey}`);
        // A known block not listed this time ran exactly as often as the innermost listed range around it.
        for (const k of known) {
            if (countAt(own, inner, k) > 0) blocks.add(`${fnKey}:${k.startOffset}-${k.endOffset}`);
        }
    }

    /** The inspector answers synchronously for a session on its own thread. */
    private post(method: string, params?: object): unknown {
        let answer: unknown;
        let failure: Error | null = null;
        let answered = false;
        this.session.post(method, params ?? {}, (err, result) => {
            failure = err;
            answer = result;
            answered = true;
        });
        if (!answered) throw new Error(`the inspector did not answer ${method} synchronously`);
        if (failure) throw failure;
        return answer;
    }
}

function countAt(own: Range, inner: Range[], block: Range): number {
    let best = own;
    for (const r of inner) {
        const contains = r.startOffset <= block.startOffset && block.endOffset <= r.endOffset;
        if (contains && r.endOffset - r.startOffset <= best.endOffset - best.startOffset) best = r;
    }
    return best.count;
}

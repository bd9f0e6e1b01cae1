// One target's fuzzing campaign: seeds first, then a mix of structure-aware samples from the target's
// fast-check generator and havoc mutations of the corpus; an input joins the corpus when it reaches V8
// blocks no earlier input reached. Crashes are deduplicated by signature and shrunk before they are reported.
import * as fc from "fast-check";
import { CoverageMap } from "./coverage";
import { mutate } from "./mutate";
import { Random } from "./random";
import { FuzzTarget, Scratch, isExpected } from "./target";

export interface CampaignOptions {
    seed: number;
    /** Executions to stop after (the bounded run's reproducible budget). */
    runs: number;
    /** Wall-clock budget in ms; whichever of runs and time ends first ends the campaign. */
    timeMs: number;
    seeds: Buffer[];
    coverage?: CoverageMap;
    scratch: Scratch;
    /** Called before every execution with the input (the worker copies it where a watchdog can read it). */
    beforeExec?: (input: Buffer) => void;
    /** Called with each input that joins the corpus (the long run can save them). */
    onNewInput?: (input: Buffer) => void;
    maxCrashes?: number;
}

export interface CrashReport {
    signature: string;
    /** Stack or message of the first occurrence. */
    error: string;
    /** The shrunk input. */
    input: Buffer;
    originalLength: number;
    /** "generator" or "mutation": how it was found. */
    origin: string;
}

export interface CampaignReport {
    target: string;
    execs: number;
    accepted: number;
    refused: number;
    corpus: number;
    blocks: number;
    ms: number;
    slowestMs: number;
    slowestLength: number;
    stoppedBy: "runs" | "time";
    /** Coverage snapshots and the share of the wall time they took. */
    coverageTakes: number;
    coverageMs: number;
    crashes: CrashReport[];
}

type Outcome = { kind: "accepted" } | { kind: "refused" } | { kind: "crash"; error: unknown };

const GENERATOR_SHARE = 0.4;
const SAMPLE_BATCH = 64;
const MAX_CORPUS = 4000;
const MIN_BATCH = 1;
const MAX_BATCH = 512;

export async function runCampaign(target: FuzzTarget, opts: CampaignOptions): Promise<CampaignReport> {
    const random = new Random(opts.seed);
    const started = Date.now();
    const deadline = started + opts.timeMs;
    const corpus: Buffer[] = [];
    const crashes = new Map<string, CrashReport>();
    const report: CampaignReport = {
        target: target.name, execs: 0, accepted: 0, refused: 0, corpus: 0, blocks: 0, ms: 0,
        slowestMs: 0, slowestLength: 0, stoppedBy: "runs", coverageTakes: 0, coverageMs: 0, crashes: [],
    };
    let samples: Buffer[] = [];
    let batch: Buffer[] = [];

    const execute = async (input: Buffer, origin: string): Promise<Outcome> => {
        opts.beforeExec?.(input);
        const t0 = performance.now();
        const outcome = await outcomeOf(target, input, opts.scratch);
        const ms = performance.now() - t0;
        if (ms > report.slowestMs) {
            report.slowestMs = ms;
            report.slowestLength = input.length;
        }
        report.execs++;
        if (outcome.kind === "accepted") report.accepted++;
        else if (outcome.kind === "refused") report.refused++;
        else await recordCrash(input, outcome.error, origin);
        return outcome;
    };

    const recordCrash = async (input: Buffer, error: unknown, origin: string): Promise<void> => {
        const signature = crashSignature(error);
        if (crashes.has(signature) || crashes.size >= (opts.maxCrashes ?? 20)) return;
        const shrunk = await shrink(target, input, signature, opts.scratch);
        crashes.set(signature, { signature, error: describeError(error), input: shrunk, originalLength: input.length, origin });
    };

    const addToCorpus = (input: Buffer) => {
        if (corpus.length >= MAX_CORPUS) corpus[random.below(corpus.length)] = input;
        else corpus.push(input);
        opts.onNewInput?.(input);
    };

    // Coverage is taken once per batch; a batch that reached new blocks is bisected to the inputs that
    // did, which costs a few takes per discovery instead of one per input.
    let batchSize = MIN_BATCH;
    const replay = async (inputs: Buffer[]): Promise<Set<string>> => {
        opts.coverage!.take();
        for (const input of inputs) await outcomeOf(target, input, opts.scratch);
        return opts.coverage!.take();
    };
    const bisect = async (inputs: Buffer[], blocks: Set<string>): Promise<void> => {
        const cov = opts.coverage!;
        if (!cov.hasNew(blocks)) return;
        if (inputs.length === 1) {
            cov.merge(blocks);
            addToCorpus(inputs[0]);
            return;
        }
        const half = inputs.length >> 1;
        for (const part of [inputs.slice(0, half), inputs.slice(half)]) await bisect(part, await replay(part));
    };
    const flushBatch = async () => {
        const cov = opts.coverage;
        if (!cov || batch.length === 0) return;
        const blocks = cov.take();
        const found = cov.hasNew(blocks);
        if (found) {
            await bisect(batch, blocks);
            cov.merge(blocks);
        }
        // Quiet stretches get longer batches; discoveries make them shorter (one input per snapshot early on,
        // when most inputs find something and bisecting would cost more than it saves).
        batchSize = found ? Math.max(MIN_BATCH, batchSize >> 2) : Math.min(MAX_BATCH, batchSize * 2);
        batch = [];
    };

    const nextSample = (): Buffer => {
        if (samples.length === 0) samples = fc.sample(target.generator, { seed: random.u32() | 0, numRuns: SAMPLE_BATCH });
        return samples.pop()!;
    };

    const timeLeft = () => Date.now() < deadline;

    for (const seed of opts.seeds) {
        if (report.execs >= opts.runs || !timeLeft()) break;
        opts.coverage?.take();
        const outcome = await execute(seed, "seed");
        if (outcome.kind !== "crash") corpus.push(seed);
        if (opts.coverage) opts.coverage.merge(opts.coverage.take());
    }

    while (report.execs < opts.runs) {
        if ((report.execs & 15) === 0 && !timeLeft()) {
            report.stoppedBy = "time";
            break;
        }
        const fromGenerator = corpus.length === 0 || random.chance(GENERATOR_SHARE);
        const input = fromGenerator
            ? nextSample()
            : mutate(random.pick(corpus), { random, maxLength: target.maxLength, dictionary: [...(target.dictionary ?? [])], other: random.pick(corpus) });
        const outcome = await execute(input, fromGenerator ? "generator" : "mutation");
        if (outcome.kind !== "crash") batch.push(input);
        if (batch.length >= batchSize) await flushBatch();
    }
    await flushBatch();

    report.corpus = corpus.length;
    report.blocks = opts.coverage?.size ?? 0;
    report.coverageTakes = opts.coverage?.takes ?? 0;
    report.coverageMs = Math.round(opts.coverage?.takeMs ?? 0);
    report.ms = Date.now() - started;
    report.crashes = [...crashes.values()];
    return report;
}

export async function outcomeOf(target: FuzzTarget, input: Buffer, scratch: Scratch): Promise<Outcome> {
    try {
        await target.run(input, scratch);
        return { kind: "accepted" };
    } catch (error) {
        return isExpected(target, error) ? { kind: "refused" } : { kind: "crash", error };
    }
}

/** Error class, message with numbers blanked, and the first frame in the package: one bug, one signature. */
export function crashSignature(error: unknown): string {
    if (!(error instanceof Error)) return `non-Error thrown: ${String(error).slice(0, 80)}`;
    const message = error.message.split("\n")[0].replace(/[0-9]+/g, "N").replace(/"[^"]*"/g, '"…"').slice(0, 120);
    const frame = (error.stack ?? "").split("\n").find((l) => l.includes("/provider/")) ?? "";
    const where = /\/(provider\/[^:)]+:\d+)/.exec(frame)?.[1] ?? "?";
    return `${error.constructor.name}: ${message} @ ${where}`;
}

export function describeError(error: unknown): string {
    return error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
}

const SHRINK_ATTEMPTS = 4000;
const SHRINK_MS = 10_000;

/** Removes chunks (halves down to single bytes) while the same crash still happens. */
async function shrink(target: FuzzTarget, input: Buffer, signature: string, scratch: Scratch): Promise<Buffer> {
    let best = input;
    let attempts = 0;
    const until = Date.now() + SHRINK_MS;
    const sameCrash = async (candidate: Buffer) => {
        attempts++;
        const outcome = await outcomeOf(target, candidate, scratch);
        return outcome.kind === "crash" && crashSignature(outcome.error) === signature;
    };
    for (let chunk = highestPowerOfTwo(best.length); chunk >= 1; chunk >>= 1) {
        for (let at = 0; at < best.length; ) {
            if (attempts >= SHRINK_ATTEMPTS || Date.now() > until) return best;
            const candidate = Buffer.concat([best.subarray(0, at), best.subarray(at + chunk)]);
            if (candidate.length < best.length && (await sameCrash(candidate))) best = candidate;
            else at += chunk;
        }
    }
    return best;
}

function highestPowerOfTwo(n: number): number {
    let p = 1;
    while (p * 2 <= n) p *= 2;
    return n === 0 ? 0 : p;
}

// A worker thread runs one campaign. Threads give the main thread a watchdog (a parser stuck in a loop
// cannot be interrupted from inside its own thread; the worker can be terminated) and use both cores.
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parentPort, workerData } from "worker_threads";
import { limitBufferAllocations } from "./alloc-guard";
import { CampaignOptions, CrashReport, crashSignature, describeError } from "./campaign";
import { CoverageMap } from "./coverage";
import { Heartbeat } from "./heartbeat";
import { Scratch } from "./target";

export interface WorkerJob {
    target: string;
    targetsModule: string;
    coverageOf?: string;
    seed: number;
    runs: number;
    timeMs: number;
    seeds: string[];
    /** Where inputs that reach new blocks are written (the long run); none in the bounded run. */
    saveNewInputs?: string;
    allocationLimit: number;
    heartbeat: SharedArrayBuffer;
}

async function main(job: WorkerJob): Promise<void> {
    // Coverage starts before the parsers load, so their functions are compiled with block counters.
    const coverageOf = job.coverageOf ?? "/provider/toolkit/";
    const coverage = coverageOf === "" ? undefined : new CoverageMap((url) => url.includes(coverageOf));
    const { targetByName } = (await import(job.targetsModule)) as typeof import("../targets");
    const { runCampaign } = await import("./campaign");
    const target = targetByName(job.target);
    const heartbeat = new Heartbeat(job.heartbeat);
    const scratch = makeScratch(job.target);
    limitBufferAllocations(job.allocationLimit);
    const opts: CampaignOptions = {
        seed: job.seed,
        runs: job.runs,
        timeMs: job.timeMs,
        seeds: job.seeds.map((f) => fs.readFileSync(f)),
        coverage,
        scratch,
        beforeExec: (input) => heartbeat.beat(input),
        onNewInput: job.saveNewInputs ? saver(job.saveNewInputs) : undefined,
    };
    // A promise a parser forgot to await rejects after its run has "passed"; it is still a crash, charged
    // to the input running when it surfaced.
    const stray: CrashReport[] = [];
    process.on("unhandledRejection", (reason) => {
        const signature = `unhandled rejection: ${crashSignature(reason)}`;
        if (stray.some((c) => c.signature === signature)) return;
        stray.push({ signature, error: describeError(reason), input: heartbeat.currentInput(), originalLength: heartbeat.currentInput().length, origin: "stray promise" });
    });
    try {
        const report = await runCampaign(target, opts);
        await new Promise((resolve) => setImmediate(resolve));
        report.crashes.push(...stray);
        parentPort!.postMessage({ type: "done", report });
    } finally {
        coverage?.stop();
        fs.rmSync(scratch.dir, { recursive: true, force: true });
    }
}

function makeScratch(name: string): Scratch {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kairos-fuzz-${name}-`));
    let n = 0;
    return { dir, fresh: (base) => path.join(dir, `${base}-${n++}`) };
}

function saver(dir: string): (input: Buffer) => void {
    fs.mkdirSync(dir, { recursive: true });
    return (input) => {
        fs.writeFileSync(path.join(dir, createHash("sha1").update(input).digest("hex")), input);
    };
}

main(workerData as WorkerJob).catch((e) => {
    parentPort!.postMessage({ type: "error", message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
});

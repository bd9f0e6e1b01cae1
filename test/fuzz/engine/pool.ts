// Runs campaigns in worker threads, a few at a time, with a watchdog: a worker whose execution counter
// stands still for hangMs is terminated and its current input reported as a hang; a worker that dies
// (out of memory, an unhandled rejection) is reported with its current input too.
import * as fs from "fs";
import * as path from "path";
import { Worker } from "worker_threads";
import { CampaignReport, CrashReport } from "./campaign";
import { Heartbeat } from "./heartbeat";
import { INSTALL_HOOK, transpileGraph } from "./transpile";
import type { WorkerJob } from "./worker";

export interface JobSpec {
    target: string;
    /** The module whose targetByName knows `target`; the engine's own tests use a module of broken targets. */
    targetsModule?: string;
    /** Which scripts' blocks guide the campaign (a path fragment); "" runs without coverage feedback. */
    coverageOf?: string;
    seed: number;
    runs: number;
    timeMs: number;
    saveNewInputs?: string;
}

export interface PoolOptions {
    parallel: number;
    hangMs: number;
    allocationLimit: number;
    /** Heap limit per worker; a run past it is reported as a crash. */
    heapMb: number;
    corpusRoot: string;
    onReport?: (report: CampaignReport) => void;
}

const WORKER_FILE = path.join(__dirname, "worker.ts");

export const DEFAULT_TARGETS_MODULE = path.join(__dirname, "..", "targets", "index.ts");

const transpiledByModule = new Map<string, Record<string, string>>();
function transpiled(targetsModule: string): Record<string, string> {
    let code = transpiledByModule.get(targetsModule);
    if (!code) transpiledByModule.set(targetsModule, (code = transpileGraph([WORKER_FILE, targetsModule])));
    return code;
}

export async function runPool(jobs: JobSpec[], opts: PoolOptions): Promise<CampaignReport[]> {
    const reports: CampaignReport[] = new Array(jobs.length);
    let next = 0;
    const lane = async () => {
        for (let i = next++; i < jobs.length; i = next++) {
            reports[i] = await runWorker(jobs[i], opts);
            opts.onReport?.(reports[i]);
        }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.parallel) }, lane));
    return reports;
}

export function seedFiles(corpusRoot: string, target: string): string[] {
    const dir = path.join(corpusRoot, target);
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir).sort().map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).isFile());
}

function runWorker(spec: JobSpec, opts: PoolOptions): Promise<CampaignReport> {
    const heartbeat = new Heartbeat();
    const targetsModule = spec.targetsModule ?? DEFAULT_TARGETS_MODULE;
    const job: WorkerJob = {
        ...spec,
        targetsModule,
        seeds: seedFiles(opts.corpusRoot, spec.target),
        allocationLimit: opts.allocationLimit,
        heartbeat: heartbeat.buffer,
    };
    const started = Date.now();
    const bootstrap = `const CODE = require("worker_threads").workerData.code; ${INSTALL_HOOK} require(${JSON.stringify(WORKER_FILE)});`;
    const worker = new Worker(bootstrap, { eval: true, workerData: { ...job, code: transpiled(targetsModule) }, resourceLimits: { maxOldGenerationSizeMb: opts.heapMb } });
    return new Promise((resolve) => {
        let lastCount = -1;
        let lastChange = Date.now();
        let settled = false;
        const finish = (report: CampaignReport) => {
            if (settled) return;
            settled = true;
            clearInterval(watchdog);
            void worker.terminate();
            resolve(report);
        };
        const died = (kind: string, detail: string) => {
            const crash: CrashReport = { signature: `${kind} in ${spec.target}`, error: detail, input: heartbeat.currentInput(), originalLength: heartbeat.currentInput().length, origin: "worker" };
            finish(emptyReport(spec.target, heartbeat.count, Date.now() - started, [crash]));
        };
        const watchdog = setInterval(() => {
            const count = heartbeat.count;
            if (count !== lastCount) {
                lastCount = count;
                lastChange = Date.now();
            } else if (Date.now() - lastChange > opts.hangMs) {
                died("hang", `no execution finished for ${opts.hangMs} ms`);
            }
        }, 250);
        worker.on("message", (m: { type: string; report?: CampaignReport; message?: string }) => {
            if (m.type === "done") finish(revive(m.report!));
            else died("worker error", m.message ?? "");
        });
        worker.on("error", (e) => died("worker died", e.stack ?? e.message));
        worker.on("exit", (code) => died("worker exited", `exit code ${code} before reporting`));
    });
}

/** Buffers cross the thread boundary as Uint8Arrays. */
function revive(report: CampaignReport): CampaignReport {
    return { ...report, crashes: report.crashes.map((c) => ({ ...c, input: Buffer.from(c.input) })) };
}

function emptyReport(target: string, execs: number, ms: number, crashes: CrashReport[]): CampaignReport {
    return { target, execs, accepted: 0, refused: 0, corpus: 0, blocks: 0, ms, slowestMs: 0, slowestLength: 0, stoppedBy: "runs", coverageTakes: 0, coverageMs: 0, crashes };
}

export function formatReport(r: CampaignReport): string {
    const rate = r.ms > 0 ? Math.round((r.execs * 1000) / r.ms) : 0;
    const lines = [
        `${r.target.padEnd(14)} ${String(r.execs).padStart(8)} execs in ${(r.ms / 1000).toFixed(1).padStart(5)} s (${rate}/s; ${r.accepted} accepted, ${r.refused} refused) corpus ${r.corpus}, ${r.blocks} blocks (${r.coverageTakes} snapshots, ${(r.coverageMs / 1000).toFixed(1)} s), slowest ${r.slowestMs.toFixed(0)} ms${r.stoppedBy === "time" ? ", stopped by the time limit" : ""}`,
    ];
    for (const c of r.crashes) lines.push(`  CRASH ${c.signature} (${c.origin}; input ${c.input.length} bytes, shrunk from ${c.originalLength})`);
    return lines.join("\n");
}

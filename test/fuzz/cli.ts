// `npm run fuzz`: the long run. Every target (or FUZZ_TARGETS) shares FUZZ_SECONDS of wall time over
// FUZZ_JOBS worker threads; prints executions per target; crash inputs go to FUZZ_CRASH_DIR, and with
// FUZZ_SAVE_CORPUS=DIR the inputs that reached new blocks go to DIR/<target>/ for review.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { formatReport, runPool } from "./engine/pool";
import { seedFor } from "./engine/random";
import { TARGETS } from "./targets";

const CORPUS = path.join(__dirname, "corpus");

async function main(): Promise<number> {
    const seconds = Number(process.env.FUZZ_SECONDS ?? 600);
    const names = process.env.FUZZ_TARGETS ? process.env.FUZZ_TARGETS.split(",").map((s) => s.trim()) : TARGETS.map((t) => t.name);
    const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
    if (unknown.length > 0) throw new Error(`unknown targets ${unknown.join(", ")}; there are ${TARGETS.map((t) => t.name).join(", ")}`);
    const parallel = Math.max(1, Number(process.env.FUZZ_JOBS ?? os.cpus().length));
    const runSeed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
    const crashDir = process.env.FUZZ_CRASH_DIR ?? path.join(os.tmpdir(), "kairos-fuzz-crashes");
    const perTargetMs = Math.max(1000, Math.floor((seconds * 1000 * parallel) / names.length));
    console.log(`fuzzing ${names.length} targets for ${seconds} s in ${parallel} threads (${(perTargetMs / 1000).toFixed(0)} s each), seed ${runSeed} (FUZZ_SEED=${runSeed} repeats the run)`);
    const started = Date.now();
    const reports = await runPool(
        names.map((target) => ({
            target,
            seed: seedFor(target, runSeed),
            runs: Number.MAX_SAFE_INTEGER,
            timeMs: perTargetMs,
            saveNewInputs: process.env.FUZZ_SAVE_CORPUS ? path.join(process.env.FUZZ_SAVE_CORPUS, target) : undefined,
        })),
        { parallel, hangMs: 20_000, allocationLimit: 256 << 20, heapMb: 2048, corpusRoot: CORPUS, onReport: (r) => console.log(formatReport(r)) },
    );
    let crashes = 0;
    for (const r of reports) {
        for (const c of r.crashes) {
            fs.mkdirSync(path.join(crashDir, r.target), { recursive: true });
            const file = path.join(crashDir, r.target, `crash-${crashes++}.bin`);
            fs.writeFileSync(file, c.input);
            console.log(`\n${r.target}: ${c.signature}\n  input: ${file}\n  ${c.error.split("\n").slice(0, 6).join("\n  ")}`);
        }
    }
    const total = reports.reduce((n, r) => n + r.execs, 0);
    console.log(`\n${total} executions in ${((Date.now() - started) / 1000).toFixed(0)} s; ${crashes} distinct crash${crashes === 1 ? "" : "es"}`);
    return crashes === 0 ? 0 : 1;
}

main().then(
    (code) => process.exit(code),
    (e) => {
        console.error(e);
        process.exit(2);
    },
);

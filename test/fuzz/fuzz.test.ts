// The bounded fuzzing run in `npm test`: every target for a fixed number of executions from a fixed seed
// (reproducible; about a minute for all of them on two cores), in worker threads with a hang watchdog and a
// cap on Buffer allocations. Prints executions per target; any crash fails the test with its shrunk input.
// `npm run fuzz` is the long, time-bounded run (test/fuzz/README.md).
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CampaignReport } from "./engine/campaign";
import { formatReport, runPool } from "./engine/pool";
import { seedFor } from "./engine/random";
import { TARGETS } from "./targets";

/**
 * Executions per target: 37 s for all of them on this two-core machine when idle, about a minute when
 * other work shares it. FUZZ_SCALE multiplies them.
 */
const RUNS: Record<string, number> = {
    tar: 5000,
    pax: 150_000,
    "oci-archive": 1300,
    "docker-save": 1300,
    "layer-extract": 500,
    esl: 50_000,
    pe: 4000,
    authenticode: 100_000,
    "efi-auth": 150_000,
    erofs: 3000,
};
/** A slower machine stops a target here rather than stretching npm test; the report says so. */
const TIME_CAP_MS = 20_000;
const RUN_SEED = 1;

describe("fuzzing (bounded run)", function () {
    this.timeout(300_000);

    it("every target has a budget", () => {
        assert.deepStrictEqual(TARGETS.map((t) => t.name).filter((n) => RUNS[n] === undefined), []);
    });

    it("no target crashes, hangs or allocates without bound", async () => {
        const scale = Number(process.env.FUZZ_SCALE ?? 1);
        const started = Date.now();
        const reports = await runPool(
            TARGETS.map((t) => ({ target: t.name, seed: seedFor(t.name, RUN_SEED), runs: Math.max(1, Math.round(RUNS[t.name] * scale)), timeMs: TIME_CAP_MS })),
            { parallel: Math.min(2, os.cpus().length), hangMs: 15_000, allocationLimit: 256 << 20, heapMb: 2048, corpusRoot: path.join(__dirname, "corpus") },
        );
        console.log(`      fuzzing: ${reports.reduce((n, r) => n + r.execs, 0)} executions in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${RUN_SEED})`);
        for (const r of reports) console.log(formatReport(r).replace(/^/gm, "        "));
        const crashes = reports.flatMap((r) => r.crashes.map((c) => describeCrash(r, c)));
        assert.deepStrictEqual(crashes, [], "fuzzing found crashes (inputs written to the paths above)");
    });
});

function describeCrash(r: CampaignReport, c: CampaignReport["crashes"][number]): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kairos-fuzz-crash-${r.target}-`));
    const file = path.join(dir, "input.bin");
    fs.writeFileSync(file, c.input);
    return `${r.target}: ${c.signature}\n  input (${c.input.length} bytes): ${file}\n  ${c.error.split("\n").slice(0, 8).join("\n  ")}`;
}

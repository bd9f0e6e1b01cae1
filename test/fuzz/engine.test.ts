// The fuzzing engine against targets with known bugs: coverage guidance must find a crash random bytes
// cannot, and the watchdog, the allocation cap and a stray rejected promise must each turn into a crash report.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { JobSpec, PoolOptions, runPool } from "./engine/pool";
import { tempDir } from "../helpers/temp";

const SELFTEST = path.join(__dirname, "engine", "selftest-targets.ts");
let OPTIONS: PoolOptions;

function job(target: string, extra: Partial<JobSpec> = {}): JobSpec {
    return { target, targetsModule: SELFTEST, coverageOf: "/test/fuzz/engine/selftest-targets", seed: 7, runs: 60_000, timeMs: 30_000, ...extra };
}

describe("fuzzing engine", function () {
    this.timeout(120_000);

    before(() => {
        // One seed, "AAAA", so that both runs below mutate the same corpus; only the guided one may grow it.
        const corpusRoot = tempDir("fuzz-selftest-corpus");
        fs.mkdirSync(path.join(corpusRoot, "magic-bytes"));
        fs.writeFileSync(path.join(corpusRoot, "magic-bytes", "seed"), "AAAA");
        OPTIONS = { parallel: 2, hangMs: 2000, allocationLimit: 64 << 20, heapMb: 512, corpusRoot };
    });

    it("coverage guidance finds a crash behind four nested range checks, which blind mutation does not", async () => {
        const [guided, blind] = await runPool([job("magic-bytes"), job("magic-bytes", { coverageOf: "" })], OPTIONS);
        assert.strictEqual(guided.crashes.length, 1, `guided: ${guided.execs} executions, no crash`);
        assert.match(guided.crashes[0].signature, /^TypeError/);
        const [a, b, c, d] = guided.crashes[0].input;
        assert.ok(a >= 0xf0 && b <= 0x0f && c >= 0x40 && c <= 0x4f && d >= 0x60 && d <= 0x6f, `shrunk input ${guided.crashes[0].input.toString("hex")}`);
        assert.ok(blind.refused + blind.accepted === blind.execs && blind.execs === 60_000, "the blind run did not run its budget");
        assert.strictEqual(blind.crashes.length, 0, "without coverage the same budget should not have found it (the test would prove nothing)");
    });

    it("a target that never returns is reported as a hang with its input", async () => {
        const [report] = await runPool([job("hangs")], OPTIONS);
        assert.match(report.crashes[0]?.signature ?? "", /^hang/);
        assert.strictEqual(report.crashes[0].input.toString("latin1"), "AAAA");
    });

    it("an allocation a length field asked for is a crash, not a slow test", async () => {
        const [report] = await runPool([job("allocates", { runs: 10 })], OPTIONS);
        assert.match(report.crashes[0]?.signature ?? "", /^AllocationLimitError/);
    });

    it("a promise a target forgot to await, rejecting later, is reported as a crash, not lost", async () => {
        const [report] = await runPool([job("rejects-later", { runs: 10 })], OPTIONS);
        assert.match(report.crashes[0]?.error ?? "", /stray promise/);
    });
});

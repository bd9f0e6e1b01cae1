import * as assert from "assert";
import { BuildLog, changedParts, updateReasons, withLogSink } from "../../provider/build-log";

describe("build log", () => {
    it("names the hash parts that changed", () => {
        assert.deepStrictEqual(changedParts(undefined, { a: "1" }), ["new"]);
        assert.deepStrictEqual(changedParts({ source: "1", signing: "x", options: "o" }, { source: "2", signing: "y", options: "o" }), ["signing", "source"]);
        assert.deepStrictEqual(changedParts({ a: "1" }, { a: "1" }), []);
    });

    it("adds repaired drift to the reasons", () => {
        assert.deepStrictEqual(updateReasons({ hashParts: { a: "1" }, drift: ["x.raw: missing"] }, { hashParts: { a: "1" } }), ["drift: x.raw: missing"]);
    });

    it("reports each named step in order, with its duration, and says it through the current sink", async () => {
        const said: string[] = [];
        const sink = { info: (m: string) => said.push(`info ${m}`), progress: (m: string) => said.push(`progress ${m}`) };
        let outer = 0;
        const report = await withLogSink(sink, async () => {
            const log = new BuildLog("SystemExtension k3s", "updated", ["source"]);
            assert.strictEqual(await log.step("read source", async () => 41), 41);
            const before = process.hrtime.bigint();
            assert.strictEqual(await log.step("build image", () => new Promise((resolve) => setTimeout(() => resolve(42), 50))), 42);
            outer = Number(process.hrtime.bigint() - before) / 1e9;
            return log.report();
        });
        assert.strictEqual(report.action, "updated");
        assert.deepStrictEqual(report.reasons, ["source"]);
        assert.deepStrictEqual(report.steps.map((s) => s.step), ["read source", "build image"]);
        // What the report records is what the log said, in seconds: a step that waited 50 ms took at
        // least that, and no longer than the test saw from outside it (seconds, not milliseconds, with
        // no absolute bound a loaded machine could break); the whole build covers its steps.
        const printed = said.filter((l) => l.includes(" done (")).map((l) => Number(/\((\d+\.\d\d) s\)/.exec(l)![1]));
        report.steps.forEach((s, k) => assert.ok(Math.abs(s.seconds - printed[k]) <= 0.0051, `${s.step}: report ${s.seconds} s, log ${printed[k]} s`));
        assert.ok(report.steps[1].seconds >= 0.045, `a 50 ms step counted in seconds: ${report.steps[1].seconds}`);
        assert.ok(report.steps[1].seconds <= outer + 0.0051, `the step's ${report.steps[1].seconds} s is within the ${outer} s seen around it`);
        assert.ok(report.seconds >= report.steps[0].seconds + report.steps[1].seconds - 0.002, `total ${report.seconds} covers the steps`);
        assert.deepStrictEqual(said.map((l) => l.replace(/\(\d+\.\d\d s\)/, "(T s)")), [
            "info SystemExtension k3s: updated: source",
            "progress SystemExtension k3s: read source...",
            "info SystemExtension k3s: read source done (T s)",
            "progress SystemExtension k3s: build image...",
            "info SystemExtension k3s: build image done (T s)",
        ]);
    });

    it("a failed step keeps its error class, is named by resource and step, and is not reported as done", async () => {
        const said: string[] = [];
        const sink = { info: (m: string) => said.push(m), progress: () => undefined };
        class ToolBroke extends Error {}
        const report = await withLogSink(sink, async () => {
            const log = new BuildLog("BootMedia kairos", "created", ["new"]);
            await log.step("predict PCR 13", async () => 1);
            const e = await log.step("build hybrid ISO", async () => { throw new ToolBroke("xorriso exited with status 5"); }).catch((x) => x);
            assert.ok(e instanceof ToolBroke);
            assert.equal(e.message, 'BootMedia kairos: step "build hybrid ISO" failed: xorriso exited with status 5');
            return log.report();
        });
        assert.deepStrictEqual(report.steps.map((s) => s.step), ["predict PCR 13"]);
        assert.ok(!said.some((l) => l.includes("build hybrid ISO done")));
    });

    it("writes to stderr, prefixed, when no sink and no engine are there", () => {
        const lines: string[] = [];
        const write = process.stderr.write;
        process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
        try {
            new BuildLog("BootMedia kairos", "created", ["new"]);
        } finally {
            process.stderr.write = write;
        }
        assert.deepStrictEqual(lines, ["[kairos] BootMedia kairos: created: new\n"]);
    });
});

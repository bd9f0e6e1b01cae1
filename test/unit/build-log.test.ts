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
        const report = await withLogSink(sink, async () => {
            const log = new BuildLog("SystemExtension k3s", "updated", ["source"]);
            assert.strictEqual(await log.step("read source", async () => 41), 41);
            assert.strictEqual(await log.step("build image", async () => 42), 42);
            return log.report();
        });
        assert.strictEqual(report.action, "updated");
        assert.deepStrictEqual(report.reasons, ["source"]);
        assert.deepStrictEqual(report.steps.map((s) => s.step), ["read source", "build image"]);
        for (const s of [...report.steps.map((x) => x.seconds), report.seconds]) assert.equal(typeof s, "number");
        assert.deepStrictEqual(said.map((l) => l.replace(/\(\d+\.\d\d s\)/, "(T s)")), [
            "info SystemExtension k3s: updated: source",
            "progress SystemExtension k3s: read source...",
            "info SystemExtension k3s: read source done (T s)",
            "progress SystemExtension k3s: build image...",
            "info SystemExtension k3s: build image done (T s)",
        ]);
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

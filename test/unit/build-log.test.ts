import * as assert from "assert";
import { BuildLog, changedParts, updateReasons } from "../../provider/build-log";

describe("build log", () => {
    it("names the hash parts that changed", () => {
        assert.deepStrictEqual(changedParts(undefined, { a: "1" }), ["new"]);
        assert.deepStrictEqual(changedParts({ source: "1", signing: "x", options: "o" }, { source: "2", signing: "y", options: "o" }), ["signing", "source"]);
        assert.deepStrictEqual(changedParts({ a: "1" }, { a: "1" }), []);
    });

    it("adds repaired drift to the reasons", () => {
        assert.deepStrictEqual(updateReasons({ hashParts: { a: "1" }, drift: ["x.raw: missing"] }, { hashParts: { a: "1" } }), ["drift: x.raw: missing"]);
    });

    it("times named steps, says them on stderr and reports them", async () => {
        const lines: string[] = [];
        const write = process.stderr.write;
        process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
        try {
            const log = new BuildLog("SystemExtension k3s", "updated", ["source"]);
            const value = await log.step("build image", async () => {
                await new Promise((r) => setTimeout(r, 20));
                return 42;
            });
            assert.strictEqual(value, 42);
            const report = log.report();
            assert.strictEqual(report.action, "updated");
            assert.deepStrictEqual(report.reasons, ["source"]);
            assert.strictEqual(report.steps[0].step, "build image");
            assert.ok(report.steps[0].seconds >= 0.015 && report.seconds >= report.steps[0].seconds);
        } finally {
            process.stderr.write = write;
        }
        assert.strictEqual(lines[0], "[kairos] SystemExtension k3s: updated: source\n");
        assert.match(lines[2], /^\[kairos\] SystemExtension k3s: build image done \(0\.\d\d s\)\n$/);
    });
});

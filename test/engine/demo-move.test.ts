// The demo moved between two runs (issue 22): its output folder, which is its Pulumi project folder and
// holds its state, goes elsewhere, as it does with a moved checkout. The program's paths are relative
// to that folder, so the second run finds nothing to change and writes no file. No boot
// (KAIROS_DEMO_BOOT=0): demo.test.ts boots the ISO; this is about the state and the files.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { sha256File } from "../../provider/toolkit/files";
import { tempDir } from "../helpers/engine";

const REPO = path.resolve(__dirname, "..", "..");

/**
 * Every file the demo keeps in its folder, with its sha256 and mtime; not the Pulumi state (each `up`
 * records a new checkpoint) nor Pulumi.yaml (the Automation API writes it on every run; it names the
 * state backend, which is where the folder is now).
 */
async function demoFiles(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const rel of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
        if (rel === ".state" || rel.startsWith(`.state${path.sep}`) || rel === "Pulumi.yaml") continue;
        const st = fs.lstatSync(path.join(dir, rel));
        if (st.isFile()) out[rel] = `${await sha256File(path.join(dir, rel))} ${st.mtimeMs}`;
    }
    return out;
}

describe("npm run demo moved to another folder between two runs", function () {
    this.timeout(900000);

    it("the second run says no changes and touches no file; state and outputs name no folder of the first place", async () => {
        const parent = tempDir("demo-move");
        const demo = (out: string) =>
            run(["bash", path.join(REPO, "scripts", "run-demo.sh")], { env: { KAIROS_DEMO_OUT: out, KAIROS_DEMO_BOOT: "0" }, timeoutMs: 840000 });
        const first = path.join(parent, "a", "out", "demo");
        const made = await demo(first);
        assert.match(made.stdout, /demo: 7 create in/, made.stdout);
        const files = await demoFiles(first);
        assert.ok(Object.keys(files).length > 100, `${Object.keys(files).length} files`);
        const outputs = fs.readFileSync(path.join(first, "outputs.json"), "utf8");
        assert.strictEqual(JSON.parse(outputs).iso.path, path.join("media", "kairos-demo.iso"));

        fs.renameSync(path.join(parent, "a"), path.join(parent, "b"));
        const moved = path.join(parent, "b", "out", "demo");
        const again = await demo(moved);
        assert.match(again.stdout, /demo: no changes/, again.stdout);
        assert.doesNotMatch(again.stdout, /: (created|updated|restored|moved|re-signed|fetched) \(/);
        assert.deepStrictEqual(await demoFiles(moved), files);
        assert.strictEqual(fs.readFileSync(path.join(moved, "outputs.json"), "utf8"), outputs);
        assert.ok(!fs.existsSync(path.join(parent, "a")), "nothing was made at the first place");

        // The state holds no path of the first place (Pulumi's sourcePosition notes name the program's files, in the repo).
        const stacks = path.join(moved, ".state", ".pulumi", "stacks");
        const stateFiles = (fs.readdirSync(stacks, { recursive: true }) as string[]).filter((f) => f.endsWith(".json"));
        assert.ok(stateFiles.length > 0);
        for (const f of stateFiles) assert.ok(!fs.readFileSync(path.join(stacks, f), "utf8").includes(parent), `${f} names ${parent}`);
    });
});

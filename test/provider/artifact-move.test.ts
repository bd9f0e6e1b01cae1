// The move rules (provider/artifact-move.ts) around a recording handler whose diff answers "replace
// outputDir" for a new folder, as the real ones do: what is asserted is the wrapper's own decision, on
// real files. The engine tests (test/engine/moves.engine.test.ts) run the five resources through it.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { MoveSpec, relocatedPath, sameInputHash, withMoves } from "../../provider/artifact-move";
import { withLogSink } from "../../provider/build-log";
import type { Handler } from "../../provider/artifact-contract";
import { sha256File } from "../../provider/toolkit/files";
import { tempDir } from "../helpers/temp";

const spec: MoveSpec = {
    label: (p) => `Thing ${p.name}`,
    placeFields: ["outputDir"],
    root: (p) => p.outputDir,
    sameArtifact: sameInputHash,
    files: (olds, _news, at) => [{ from: olds.path, to: at(olds.path), sha256: olds.sha256 }],
    moved: (olds, _news, at) => ({ path: at(olds.path) }),
};

function recordingHandler(calls: string[]): Handler {
    return {
        check: async (_olds, news) => ({ inputs: news }),
        diff: async (_id, olds, news) => (calls.push("diff"), olds.outputDir === news.outputDir ? { changes: false, replaces: [] } : { changes: true, replaces: ["outputDir"] }),
        create: async (inputs) => (calls.push("create"), { id: "x", outs: inputs }),
        read: async (id, props) => ({ id, props }),
        update: async (_id, _olds, news) => (calls.push("update"), { outs: { ...news, built: true } }),
        delete: async () => undefined,
    };
}

describe("moves (artifact-move.ts)", () => {
    let root: string;
    let olds: Record<string, any>;
    const news = (outputDir: string, inputHash = "h1") => ({ name: "t", outputDir, inputHash });
    const said: string[] = [];
    const logged = <T>(fn: () => Promise<T>) => withLogSink({ info: (m) => said.push(m), progress: () => undefined }, fn);

    beforeEach(async () => {
        root = tempDir("artifact-move");
        fs.mkdirSync(path.join(root, "a"));
        fs.writeFileSync(path.join(root, "a", "t.raw"), "the artifact\n");
        olds = { name: "t", outputDir: path.join(root, "a"), inputHash: "h1", path: path.join(root, "a", "t.raw"), sha256: await sha256File(path.join(root, "a", "t.raw")), drift: [] };
        said.length = 0;
    });

    it("relocates recorded paths into the new folder, keeping its form (relative stays relative)", () => {
        assert.equal(relocatedPath("/x/a/b/f.raw", "/x/a", "/y/c"), "/y/c/b/f.raw");
        assert.equal(relocatedPath("/x/a", "/x/a", "/y/c"), "/y/c");
        assert.equal(relocatedPath(path.resolve("out/keys/db.key"), path.resolve("out/keys"), "keys"), path.join("keys", "db.key"));
        assert.equal(relocatedPath("out/keys/db.key", "./out/keys", "k2"), path.join("k2", "db.key"));
        assert.equal(relocatedPath("/elsewhere/f", "/x/a", "/y/c"), "/elsewhere/f");
        // a name starting with ".." is inside the folder; only ".." itself climbs out
        assert.equal(relocatedPath("/x/a/..data/f", "/x/a", "/y/c"), "/y/c/..data/f");
        assert.equal(relocatedPath("/x/a/..", "/x/a", "/y/c"), "/x/a/..");
        assert.equal(relocatedPath("/x/ab/f", "/x/a", "/y/c"), "/x/ab/f");
    });

    it("the recorded artifact found at the new folder: diff says update (no replace) and says moved; update takes it over without building", async () => {
        const calls: string[] = [];
        const h = withMoves(recordingHandler(calls), spec);
        fs.renameSync(path.join(root, "a"), path.join(root, "b"));
        const to = path.join(root, "b");
        const diff = await logged(() => h.diff("x", olds, news(to)));
        assert.deepEqual(diff, { changes: true, replaces: [] });
        assert.deepEqual(said, [`Thing t: moved from ${olds.outputDir} to ${to}: the recorded artifact is there (t.raw, same sha256), so the update takes it over and rebuilds nothing; ${olds.outputDir} is left as it is`]);
        const { outs } = await logged(() => h.update("x", olds, news(to)));
        assert.deepEqual(calls, ["diff"]); // the inner update (a build) never ran
        assert.equal(outs!.path, path.join(to, "t.raw"));
        assert.equal(outs!.sha256, olds.sha256);
        assert.equal(outs!.outputDir, to);
        assert.equal(outs!.lastBuild.action, "moved");
        assert.deepEqual(outs!.lastBuild.reasons, [`moved from ${olds.outputDir} to ${to}`]);
        assert.deepEqual(outs!.lastBuild.steps.map((s: { step: string }) => s.step), ["verify the recorded digests at the new place"]);
        assert.ok(!fs.existsSync(olds.outputDir), "nothing was made at the old place");
    });

    it("a stored artifact keeps its store record; the local paths it stands for move with it", async () => {
        const calls: string[] = [];
        const h = withMoves(recordingHandler(calls), spec);
        const store = { location: "s3://bucket/p", manifest: "s3://bucket/p/manifests/x.json", objects: { [olds.path]: "s3://bucket/p/blobs/sha256/ab" } };
        fs.renameSync(path.join(root, "a"), path.join(root, "b"));
        const { outs } = await logged(() => h.update("x", { ...olds, store }, news(path.join(root, "b"))));
        assert.deepEqual(calls, []);
        assert.deepEqual(outs!.store, { ...store, objects: { [path.join(root, "b", "t.raw")]: "s3://bucket/p/blobs/sha256/ab" } });
    });

    it("moved into a store that lacks it: the update publishes it, and lastBuild still says moved (nothing was built)", async () => {
        const calls: string[] = [];
        const publishing: Handler = {
            ...recordingHandler(calls),
            update: async (_id, moved, news) => (calls.push("update"), { outs: { ...moved, ...news, lastBuild: { action: "published", reasons: ["not yet in s3://bucket/p"], steps: [{ step: "publish", seconds: 0 }], seconds: 0 } } }),
        };
        const h = withMoves(publishing, spec);
        fs.renameSync(path.join(root, "a"), path.join(root, "b"));
        const to = path.join(root, "b");
        const { outs } = await logged(() => h.update("x", olds, { ...news(to), artifactStore: { bucket: "bucket", prefix: "p", endpoint: "http://127.0.0.1:9" } }));
        assert.deepEqual(calls, ["update"]);
        assert.equal(outs!.path, path.join(to, "t.raw"));
        assert.equal(outs!.lastBuild.action, "moved");
        assert.deepEqual(outs!.lastBuild.reasons, [`moved from ${olds.outputDir} to ${to}`, "not yet in s3://bucket/p"]);
        assert.deepEqual(outs!.lastBuild.steps.map((s: { step: string }) => s.step), ["verify the recorded digests at the new place", "publish"]);
    });

    it("an empty new folder, other bytes there, or changed inputs: the inner diff's replace stands", async () => {
        const calls: string[] = [];
        const h = withMoves(recordingHandler(calls), spec);
        const empty = path.join(root, "empty");
        assert.deepEqual(await logged(() => h.diff("x", olds, news(empty))), { changes: true, replaces: ["outputDir"] });
        const other = path.join(root, "other");
        fs.mkdirSync(other);
        fs.writeFileSync(path.join(other, "t.raw"), "another artifact\n");
        assert.deepEqual(await logged(() => h.diff("x", olds, news(other))), { changes: true, replaces: ["outputDir"] });
        fs.cpSync(path.join(root, "a"), path.join(root, "copy"), { recursive: true });
        assert.deepEqual(await logged(() => h.diff("x", olds, news(path.join(root, "copy"), "h2"))), { changes: true, replaces: ["outputDir"] });
        assert.deepEqual(said, []);
        // an update with changed inputs builds, as before
        await logged(() => h.update("x", olds, news(path.join(root, "copy"), "h2")));
        assert.deepEqual(calls.filter((c) => c === "update"), ["update"]);
    });

    it("inputs still unknown in a preview: moved if the artifact is there, with the proviso said", async () => {
        const h = withMoves(recordingHandler([]), spec);
        fs.cpSync(path.join(root, "a"), path.join(root, "b"), { recursive: true });
        const diff = await logged(() => h.diff("x", olds, { name: "t", outputDir: path.join(root, "b") }));
        assert.deepEqual(diff, { changes: true, replaces: [] });
        assert.match(said[0], /rebuilds nothing \(if its other inputs, known only then, are unchanged\)/);
    });

    it("a spec's refusal stops the diff when the new place holds something else", async () => {
        const h = withMoves(recordingHandler([]), { ...spec, refusal: (_o, n, differing) => new Error(`${n.outputDir}: ${differing.map((f) => path.basename(f.to)).join()} is someone else's`) });
        const other = path.join(root, "other");
        fs.mkdirSync(other);
        fs.writeFileSync(path.join(other, "t.raw"), "another artifact\n");
        await assert.rejects(h.diff("x", olds, news(other)), new RegExp(`${other}: t.raw is someone else's`));
        assert.equal(fs.readFileSync(path.join(other, "t.raw"), "utf8"), "another artifact\n");
    });
});

// Property tests for path normalisation: no name an archive or a user can give ever lands outside the
// tree it is meant for. Seeds are fixed, so a failure replays; fast-check shrinks it to a small example.
import * as assert from "assert";
import * as fc from "fast-check";
import * as path from "path";
import { unsafeMediaPath } from "../../provider/boot-media/check";
import { UnsafePathError, joinParts, resolveLinkTarget, splitRelative } from "../../provider/toolkit/tree-path";
import { rawTar, tarName } from "./generators/tar";
import { layerExtractTarget } from "./targets/layer-extract";
import { outcomeOf } from "./engine/campaign";
import { tempDir } from "../helpers/temp";

const ROOT = "/tree";
const SEED = 20261130;

/** Path-ish strings: components from a hostile alphabet, plus arbitrary unicode. */
const pathLike = fc.oneof(
    { weight: 4, arbitrary: fc.array(fc.constantFrom("a", "b", ".", "..", "", "...", ". .", "a..", "..a", "\\..", "%2e%2e", "\0"), { maxLength: 8 }).map((p) => p.join("/")) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom("/", "//", "./", "../"), fc.string()).map(([a, b]) => a + b) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
);

function inside(root: string, resolved: string): boolean {
    return resolved === root || resolved.startsWith(`${root}/`);
}

/** Depth bookkeeping, independent of tree-path.ts: undefined once ".." climbs above the root. */
function lexicalDepthNeverNegative(start: number, target: string): boolean {
    let depth = start;
    for (const part of target.split("/")) {
        if (part === "..") depth--;
        else if (part !== "" && part !== ".") depth++;
        if (depth < 0) return false;
    }
    return true;
}

describe("path normalisation properties", () => {
    it("splitRelative: an accepted name has only plain components and resolves inside the tree", () => {
        fc.assert(
            fc.property(fc.oneof(pathLike, tarName), (name) => {
                let parts: string[];
                try {
                    parts = splitRelative(name);
                } catch (e) {
                    assert.ok(e instanceof UnsafePathError, `unexpected ${String(e)}`);
                    return;
                }
                for (const p of parts) assert.ok(p !== "" && p !== "." && p !== ".." && !p.includes("/") && !p.includes("\0"), `component ${JSON.stringify(p)} of ${JSON.stringify(name)}`);
                assert.ok(inside(ROOT, path.posix.resolve(ROOT, ...parts)), `${JSON.stringify(name)} resolves to ${path.posix.resolve(ROOT, ...parts)}`);
                assert.deepStrictEqual(splitRelative(joinParts(parts)), parts, "splitting the joined parts again changes them");
            }),
            { seed: SEED, numRuns: 5000 },
        );
    });

    it("resolveLinkTarget: a target is refused exactly when it climbs above the root, and agrees with path.posix otherwise", () => {
        const linkParts = fc.array(fc.constantFrom("usr", "lib", "a", "b"), { minLength: 1, maxLength: 4 });
        fc.assert(
            fc.property(linkParts, fc.oneof(pathLike, tarName), (link, target) => {
                const resolved = resolveLinkTarget(link, target);
                const absolute = target.startsWith("/");
                const base = absolute ? [] : link.slice(0, -1);
                const climbs = !lexicalDepthNeverNegative(base.length, target);
                if (target.includes("\0") || climbs) {
                    assert.strictEqual(resolved, undefined, `${link.join("/")} -> ${JSON.stringify(target)} should be refused, got ${JSON.stringify(resolved)}`);
                    return;
                }
                assert.ok(resolved, `${link.join("/")} -> ${JSON.stringify(target)} was refused but stays inside`);
                for (const p of resolved) assert.ok(p !== "" && p !== "." && p !== "..", `component ${JSON.stringify(p)}`);
                const expected = path.posix.join("/", ...base, target).replace(/\/+$/, "") || "/";
                assert.strictEqual(`/${resolved.join("/")}`, expected);
            }),
            { seed: SEED, numRuns: 5000 },
        );
    });

    it("unsafeMediaPath: an overlay path BootMedia accepts always resolves to a file inside the media", () => {
        fc.assert(
            fc.property(fc.oneof(pathLike, tarName), (p) => {
                if (unsafeMediaPath(p) !== undefined) return;
                const media = "/media";
                assert.ok(inside(media, path.posix.resolve(media, p)), `${JSON.stringify(p)} was accepted but resolves to ${path.posix.resolve(media, p)}`);
                assert.notStrictEqual(path.posix.resolve(media, p), media, `${JSON.stringify(p)} was accepted but names the media root itself`);
            }),
            { seed: SEED, numRuns: 5000 },
        );
    });

    it("extractLayers: no generated layer writes, links or deletes outside the target", async function () {
        this.timeout(120_000);
        const dir = tempDir("fuzz-extract-property");
        let n = 0;
        const scratch = { dir, fresh: (name: string) => path.join(dir, `${name}-${n++}`) };
        await fc.assert(
            fc.asyncProperty(rawTar, async (tar) => {
                const outcome = await outcomeOf(layerExtractTarget, tar, scratch);
                if (outcome.kind === "crash") throw outcome.error;
            }),
            { seed: SEED, numRuns: 150 },
        );
    });
});

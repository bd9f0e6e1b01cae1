// Layer extraction: last layer vs all layers with whiteouts, modes and links kept, the prefix filter,
// and hostile layers that try to write, link or delete outside the target.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { createHash, randomBytes } from "crypto";
import {
    ExtractOptions,
    extractImage,
    extractLayers,
} from "../../../provider/toolkit/source/layer-extract";
import {
    ExtractSummary,
    FilterViolationError,
    UnsafeEntryError,
} from "../../../provider/toolkit/source/tree-writer";
import { DigestMismatchError } from "../../../provider/toolkit/source/layer-stream";
import { openImage } from "../../../provider/toolkit/source/oci-image";
import { run } from "../../../provider/toolkit/run";
import { treeEntries } from "../../../provider/toolkit/source/tree-digest";
import { TarOptions, TarSpec, buildImage, buildTar, makeLayer, tempDir, writeOciLayout } from "../../helpers/oci-fixtures";

/** The tree as "path: description" lines, easy to compare and to read in a failure. */
async function describeTree(root: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const e of await treeEntries(root)) {
        const mode = e.mode.toString(8).padStart(4, "0");
        if (e.type === "file") out[e.path] = `file ${mode} ${fs.readFileSync(path.join(root, e.path), "utf8")}`;
        else if (e.type === "symlink") out[e.path] = `-> ${e.target}`;
        else out[e.path] = `${e.type} ${mode}`;
    }
    return out;
}

const BASE: TarSpec[] = [
    { name: "usr/", type: "dir" },
    { name: "usr/bin/", type: "dir" },
    { name: "usr/bin/a", content: "a1", mode: 0o755 },
    { name: "usr/bin/b", content: "b1", mode: 0o755 },
    { name: "usr/lib/", type: "dir" },
    { name: "usr/lib/libx.so", content: "x" },
    { name: "etc/", type: "dir" },
    { name: "etc/conf", content: "c", mode: 0o640 },
    { name: "etc/app/", type: "dir", mode: 0o750 },
    { name: "etc/app/old", content: "o1" },
    { name: "etc/app/sub/", type: "dir" },
    { name: "etc/app/sub/old", content: "o2" },
    { name: "opt/", type: "dir" },
    { name: "opt/gone/", type: "dir" },
    { name: "opt/gone/f", content: "g" },
];

const MIDDLE: TarSpec[] = [
    { name: "usr/", type: "dir" },
    { name: "usr/bin/", type: "dir" },
    { name: "usr/bin/a", content: "a2", mode: 0o755 },
    { name: "usr/bin/.wh.b" },
    { name: "usr/bin/hl", type: "hardlink", linkname: "usr/bin/a" },
    { name: "usr/lib/", type: "dir" },
    { name: "usr/lib/libx.so.1", type: "symlink", linkname: "libx.so" },
    { name: "usr/lib/abs", type: "symlink", linkname: "/usr/lib/libx.so" },
    { name: "etc/", type: "dir" },
    { name: "etc/app/", type: "dir", mode: 0o750 },
    { name: "etc/app/new", content: "n" },
    { name: "etc/app/.wh..wh..opq" }, // after this layer's own file, which must survive it
    { name: "opt/", type: "dir" },
    { name: "opt/.wh.gone" },
];

const TOP: TarSpec[] = [
    { name: "./", type: "dir" },
    { name: "./usr/", type: "dir" },
    { name: "./usr/share/", type: "dir" },
    { name: "./usr/share/doc", content: "d", mode: 0o600 },
    { name: "./usr/lib/", type: "dir" },
    { name: "./usr/lib/.wh.libx.so" },
    { name: "./usr/bin/", type: "dir" },
    { name: "./usr/bin/suid", content: "s", mode: 0o4755 },
];

describe("extractLayers", () => {
    let tmp: string;
    let imageDir: string;
    let counter = 0;
    const target = () => path.join(tmp, `target-${++counter}`);

    before(async () => {
        tmp = tempDir();
        imageDir = path.join(tmp, "image");
        const layers = [await makeLayer(BASE, "gzip"), await makeLayer(MIDDLE, "zstd"), await makeLayer(TOP, "none")];
        writeOciLayout(imageDir, [{ image: buildImage({ layers }) }]);
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    /** Writes each layer as a tar file and extracts them; returns the target. */
    async function extractSpecs(layers: TarSpec[][], opts: ExtractOptions, tarOpts: TarOptions = {}): Promise<{ dir: string; summary: ExtractSummary }> {
        const files = layers.map((entries, i) => {
            const file = path.join(tmp, `layer-${counter}-${i}.tar`);
            fs.writeFileSync(file, buildTar(entries, tarOpts));
            return file;
        });
        const dir = target();
        return { dir, summary: await extractLayers(files, dir, opts) };
    }

    describe("modes", () => {
        it("all: applies every layer in order, with whiteouts and an opaque directory", async () => {
            const dir = target();
            const summary = await extractImage(await openImage(imageDir), dir, { mode: "all" });
            assert.deepStrictEqual(await describeTree(dir), {
                etc: "dir 0755",
                "etc/app": "dir 0750",
                "etc/app/new": "file 0644 n",
                "etc/conf": "file 0640 c",
                opt: "dir 0755",
                usr: "dir 0755",
                "usr/bin": "dir 0755",
                "usr/bin/a": "file 0755 a2",
                "usr/bin/hl": "file 0755 a2",
                "usr/bin/suid": "file 4755 s",
                "usr/lib": "dir 0755",
                "usr/lib/abs": "-> /usr/lib/libx.so",
                "usr/lib/libx.so.1": "-> libx.so",
                "usr/share": "dir 0755",
                "usr/share/doc": "file 0600 d",
            });
            assert.deepStrictEqual(summary.whiteouts, ["usr/bin/.wh.b", "etc/app/.wh..wh..opq", "opt/.wh.gone", "usr/lib/.wh.libx.so"]);
            assert.deepStrictEqual([summary.files, summary.dirs, summary.symlinks, summary.hardlinks], [6, 7, 2, 1]);
            assert.strictEqual(summary.layers.length, 3);
            assert.strictEqual(fs.statSync(path.join(dir, "usr/bin/hl")).ino, fs.statSync(path.join(dir, "usr/bin/a")).ino);
        });

        it("last: only the last layer; its whiteouts are reported, never written as files", async () => {
            const dir = target();
            const summary = await extractImage(await openImage(imageDir), dir, { mode: "last" });
            assert.deepStrictEqual(await describeTree(dir), {
                usr: "dir 0755",
                "usr/bin": "dir 0755",
                "usr/bin/suid": "file 4755 s",
                "usr/lib": "dir 0755",
                "usr/share": "dir 0755",
                "usr/share/doc": "file 0600 d",
            });
            assert.deepStrictEqual(summary.ignoredWhiteouts, ["usr/lib/.wh.libx.so"]);
            assert.deepStrictEqual(summary.whiteouts, []);
            assert.strictEqual(summary.layers.length, 1);
        });

        it("an opaque marker before the layer's files hides lower content, also in re-declared subdirectories", async () => {
            const { dir } = await extractSpecs([
                [{ name: "d/", type: "dir" }, { name: "d/old", content: "1" }, { name: "d/keep/", type: "dir" }, { name: "d/keep/old", content: "2" }],
                [{ name: "d/", type: "dir" }, { name: "d/.wh..wh..opq" }, { name: "d/keep/", type: "dir" }, { name: "d/keep/new", content: "3" }],
            ], { mode: "all" });
            assert.deepStrictEqual(await describeTree(dir), { d: "dir 0755", "d/keep": "dir 0755", "d/keep/new": "file 0644 3" });
        });

        it("a whiteout hides lower layers only, not a file of its own layer", async () => {
            const { dir } = await extractSpecs([
                [{ name: "x", content: "lower" }],
                [{ name: "x", content: "same layer" }, { name: ".wh.x" }],
            ], { mode: "all" });
            assert.deepStrictEqual(await describeTree(dir), { x: "file 0644 same layer" });
        });

        it("creates parent directories a layer leaves out, and sets read-only directory modes last", async () => {
            const { dir } = await extractSpecs([[{ name: "ro/", type: "dir", mode: 0o555 }, { name: "ro/f", content: "1" }, { name: "deep/er/f", content: "2" }]], { mode: "all" });
            assert.deepStrictEqual(await describeTree(dir), {
                deep: "dir 0755", "deep/er": "dir 0755", "deep/er/f": "file 0644 2", ro: "dir 0555", "ro/f": "file 0644 1",
            });
        });

        it("replaces a file with a directory, a directory with a symlink, and never writes into a hard-linked file", async () => {
            const { dir } = await extractSpecs([
                [{ name: "a", content: "file" }, { name: "b/", type: "dir" }, { name: "b/c", content: "1" }, { name: "f", content: "shared" }, { name: "g", type: "hardlink", linkname: "f" }],
                [{ name: "a/", type: "dir" }, { name: "b", type: "symlink", linkname: "a" }, { name: "f", content: "new" }],
            ], { mode: "all" });
            assert.deepStrictEqual(await describeTree(dir), { a: "dir 0755", b: "-> a", f: "file 0644 new", g: "file 0644 shared" });
        });

        it("streams a large file through a gzip layer intact, with its mode", async () => {
            const big = randomBytes(3 << 20);
            const layer = await makeLayer([{ name: "usr/lib/big.bin", content: big, mode: 0o751 }], "gzip");
            const file = path.join(tmp, "big.tar.gz");
            fs.writeFileSync(file, layer.blob);
            const dir = target();
            await extractLayers([file], dir, { mode: "all" });
            const out = path.join(dir, "usr/lib/big.bin");
            assert.ok(fs.readFileSync(out).equals(big));
            assert.strictEqual(fs.statSync(out).mode & 0o7777, 0o751);
        });

        it("extracts a layer written by GNU tar (long names, links) from a file path", async () => {
            const src = path.join(tmp, "gnu-src");
            const long = path.join("usr", "share", "x".repeat(80), "y".repeat(80));
            fs.mkdirSync(path.join(src, long), { recursive: true });
            fs.writeFileSync(path.join(src, long, "z".repeat(100)), "deep");
            fs.writeFileSync(path.join(src, "usr", "tool"), "t", { mode: 0o750 });
            fs.chmodSync(path.join(src, "usr", "tool"), 0o750);
            fs.linkSync(path.join(src, "usr", "tool"), path.join(src, "usr", "tool2"));
            fs.symlinkSync("tool", path.join(src, "usr", "link"));
            const file = path.join(tmp, "gnu.tar.gz");
            await run(["tar", "--format=gnu", "-z", "--sort=name", "--owner=0", "--group=0", "--mtime=@0", "-C", src, "-cf", file, "."]);
            const dir = target();
            await extractLayers([file], dir, { mode: "all" });
            const tree = await describeTree(dir);
            assert.strictEqual(tree[`${long}/${"z".repeat(100)}`], "file 0644 deep");
            assert.deepStrictEqual([tree["usr/tool"], tree["usr/tool2"], tree["usr/link"]], ["file 0750 t", "file 0750 t", "-> tool"]);
        });

        it("fails when the target is not empty", async () => {
            const dir = target();
            fs.mkdirSync(dir);
            fs.writeFileSync(path.join(dir, "x"), "");
            await assert.rejects(extractLayers([], dir, { mode: "all" }), /must be empty/);
        });
    });

    describe("filter", () => {
        const LAYER: TarSpec[] = [
            { name: "usr/", type: "dir" },
            { name: "usr/bin/x", content: "x" },
            { name: "usr/lib/y", content: "y" },
            { name: "etc/", type: "dir" },
            { name: "etc/motd", content: "m" },
            { name: "var/log/z", content: "z" },
            { name: "usrfoo/w", content: "w" }, // looks like usr to a regex "^usr", but is not under usr/
            { name: "opt/tool", content: "t" },
            { name: ".wh.srv" },
        ];
        const OUTSIDE_USR = ["etc", "etc/motd", "var/log/z", "usrfoo/w", "opt/tool", "srv"];

        it("error: fails listing every entry outside the allowed prefixes", async () => {
            await assert.rejects(extractSpecs([LAYER], { mode: "last", filter: { allow: ["usr"], onViolation: "error" } }), (e: Error) => {
                assert.ok(e instanceof FilterViolationError);
                assert.deepStrictEqual(e.paths, OUTSIDE_USR);
                for (const p of OUTSIDE_USR) assert.ok(e.message.includes(`\n  ${p}`), `message lists ${p}`);
                assert.match(e.message, /^6 entries are outside the allowed paths \(usr\)/);
                return true;
            });
        });

        it("drop: skips them and returns them", async () => {
            const { dir, summary } = await extractSpecs([LAYER], { mode: "last", filter: { allow: ["usr"], onViolation: "drop" } });
            assert.deepStrictEqual(summary.dropped, OUTSIDE_USR);
            assert.deepStrictEqual(Object.keys(await describeTree(dir)), ["usr", "usr/bin", "usr/bin/x", "usr/lib", "usr/lib/y"]);
        });

        it("several prefixes, and a deeper prefix keeps the directories above it", async () => {
            const both = await extractSpecs([LAYER], { mode: "last", filter: { allow: ["usr", "opt"], onViolation: "drop" } });
            assert.ok(!both.summary.dropped.includes("opt/tool"));
            assert.ok(fs.existsSync(path.join(both.dir, "opt/tool")));
            const deep = await extractSpecs([LAYER], { mode: "last", filter: { allow: ["usr/lib"], onViolation: "drop" } });
            assert.deepStrictEqual(Object.keys(await describeTree(deep.dir)), ["usr", "usr/lib", "usr/lib/y"]);
        });

        it("a hostile entry fails even where the filter would drop it", async () => {
            await assert.rejects(
                extractSpecs([[{ name: "etc/esc", type: "symlink", linkname: "../../x" }]], { mode: "last", filter: { allow: ["usr"], onViolation: "drop" } }),
                UnsafeEntryError,
            );
        });

        it("a hardlink to a dropped file names the filter as the reason", async () => {
            await assert.rejects(
                extractSpecs([[{ name: "etc/f", content: "1" }, { name: "usr/f", type: "hardlink", linkname: "etc/f" }]], { mode: "all", filter: { allow: ["usr"], onViolation: "drop" } }),
                /entry "usr\/f" refused: its hardlink target "etc\/f" was dropped by the filter/,
            );
        });
    });

    describe("hostile layers", () => {
        const tag = randomBytes(4).toString("hex");
        const ROOT_PROBE = `/kairos-escape-${tag}`;

        interface Case {
            title: string;
            layers: TarSpec[][];
            error: RegExp;
            tarOpts?: TarOptions;
        }

        const CASES: Case[] = [
            { title: "a '..' name", layers: [[{ name: "../evil", content: "x" }]], error: /entry "\.\.\/evil" refused: the name has a '\.\.' component/ },
            { title: "a '..' in the middle", layers: [[{ name: "usr/../../evil", content: "x" }]], error: /'\.\.' component/ },
            { title: "an absolute name", layers: [[{ name: ROOT_PROBE, content: "x" }]], error: /refused: the name is absolute/ },
            { title: "a pax path with '..'", layers: [[{ name: "benign", content: "x", pax: { path: "../pax-evil" } }]], error: /entry "\.\.\/pax-evil" refused: the name has a '\.\.' component/ },
            { title: "a GNU long name with '..'", layers: [[{ name: `${"a".repeat(120)}/../../gnu-evil`, content: "x" }]], error: /'\.\.' component/, tarOpts: { longNames: "gnu" } },
            { title: "a symlink climbing out", layers: [[{ name: "esc", type: "symlink", linkname: "../outside" }]], error: /entry "esc" refused: it is a symlink to "\.\.\/outside", which points outside the tree/ },
            { title: "a deep symlink climbing out", layers: [[{ name: "usr/bin/x", type: "symlink", linkname: "../../../etc/passwd" }]], error: /points outside the tree/ },
            { title: "a hardlink to /etc/passwd", layers: [[{ name: "h", type: "hardlink", linkname: "/etc/passwd" }]], error: /entry "h" refused: its hardlink target "\/etc\/passwd" is refused: the name is absolute/ },
            { title: "a hardlink with '..'", layers: [[{ name: "h", type: "hardlink", linkname: "../x" }]], error: /hardlink target "\.\.\/x" is refused/ },
            { title: "a hardlink to a later entry", layers: [[{ name: "h", type: "hardlink", linkname: "later" }, { name: "later", content: "x" }]], error: /hardlink target "later" was not extracted before it/ },
            { title: "a hardlink to a directory", layers: [[{ name: "d/", type: "dir" }, { name: "h", type: "hardlink", linkname: "d" }]], error: /hardlink target "d" is not a regular file/ },
            { title: "a character device", layers: [[{ name: "dev/console", type: "char" }]], error: /entry "dev\/console" refused: it is a char device; device nodes and fifos are never extracted/ },
            { title: "a block device", layers: [[{ name: "dev/sda", type: "block" }]], error: /it is a block device/ },
            { title: "a fifo", layers: [[{ name: "pipe", type: "fifo" }]], error: /it is a fifo/ },
            { title: "an unsupported entry type", layers: [[{ name: "sparse", typeflag: "S" }]], error: /tar entry type 'S' is not supported/ },
            {
                title: "a write through a symlink planted earlier in the layer",
                layers: [[{ name: "usr", type: "symlink", linkname: "/" }, { name: `usr${ROOT_PROBE}`, content: "x" }]],
                error: /its parent usr is a symlink, and writing through a link could leave the tree/,
            },
            {
                title: "a write through a symlink planted by a lower layer",
                layers: [[{ name: "lib", type: "symlink", linkname: "/tmp" }], [{ name: `lib/kairos-escape-${tag}`, content: "x" }]],
                error: /layer 2\/2 .*its parent lib is a symlink/,
            },
            {
                title: "a hardlink through a planted symlink",
                layers: [[{ name: "e", type: "symlink", linkname: "/etc" }], [{ name: "h", type: "hardlink", linkname: "e/passwd" }]],
                error: /hardlink target "e\/passwd" was not extracted before it/,
            },
            {
                title: "a whiteout through a planted symlink",
                layers: [[{ name: "usr", type: "symlink", linkname: "/" }], [{ name: "usr/.wh.etc" }]],
                error: /usr is a symlink, and deleting through a link could leave the tree/,
            },
            { title: "a whiteout of '..'", layers: [[{ name: "d/", type: "dir" }, { name: "d/.wh..." }]], error: /it is a whiteout for "\.\.", which is not a file name/ },
            { title: "a file posing as the root", layers: [[{ name: "./", content: "x" }]], error: /names the tree root but is not a directory/ },
        ];

        let passwdBefore: string;
        let rootBefore: string[];
        before(() => {
            passwdBefore = hashFile("/etc/passwd");
            rootBefore = fs.readdirSync("/").sort();
        });

        for (const c of CASES) {
            it(`refuses ${c.title}, writing nothing outside the target`, async () => {
                const box = path.join(tmp, `box-${++counter}`);
                const inner = path.join(box, "a", "b");
                fs.mkdirSync(inner, { recursive: true });
                const before = listRecursive(box);
                const files = c.layers.map((entries, i) => {
                    const file = path.join(tmp, `hostile-${counter}-${i}.tar`);
                    fs.writeFileSync(file, buildTar(entries, c.tarOpts));
                    return file;
                });
                await assert.rejects(extractLayers(files, path.join(inner, "target"), { mode: "all" }), (e: Error) => {
                    assert.ok(e instanceof UnsafeEntryError, `UnsafeEntryError, got ${e}`);
                    assert.match(e.message, c.error);
                    return true;
                });
                assert.deepStrictEqual(listRecursive(box).filter((p) => !p.startsWith("a/b/target")), before);
                assert.deepStrictEqual(fs.readdirSync("/").sort(), rootBefore);
                assert.strictEqual(fs.existsSync(`/tmp/kairos-escape-${tag}`), false);
                assert.strictEqual(hashFile("/etc/passwd"), passwdBefore);
            });
        }

        it("replaces a planted symlink with a file instead of writing through it", async () => {
            const { dir } = await extractSpecs([
                [{ name: "f", type: "symlink", linkname: "/etc/passwd" }, { name: "usr", type: "symlink", linkname: "/" }],
                [{ name: "f", content: "mine" }, { name: "usr/", type: "dir" }, { name: "usr/x", content: "inside" }],
            ], { mode: "all" });
            assert.deepStrictEqual(await describeTree(dir), { f: "file 0644 mine", usr: "dir 0755", "usr/x": "file 0644 inside" });
            assert.strictEqual(hashFile("/etc/passwd"), passwdBefore);
        });
    });

    describe("digests", () => {
        it("fails when a layer does not match its digest", async () => {
            const layer = await makeLayer([{ name: "a", content: "original" }], "none");
            const dir = path.join(tmp, "tampered");
            writeOciLayout(dir, [{ image: buildImage({ layers: [layer] }) }]);
            const image = await openImage(dir);
            const blob = fs.readFileSync(image.layers[0].path);
            blob[blob.indexOf("original")] = "O".charCodeAt(0);
            fs.writeFileSync(image.layers[0].path, blob);
            await assert.rejects(extractImage(image, target(), { mode: "all" }), DigestMismatchError);
        });

        it("fails when the uncompressed layer does not match the config's diff ID", async () => {
            const layer = await makeLayer([{ name: "a", content: "1" }], "gzip");
            const other = await makeLayer([{ name: "a", content: "2" }], "gzip");
            const dir = path.join(tmp, "wrong-diffid");
            writeOciLayout(dir, [{ image: buildImage({ layers: [{ ...layer, diffId: other.diffId }] }) }]);
            await assert.rejects(extractImage(await openImage(dir), target(), { mode: "all" }), /uncompressed tar hash to .*, not sha256:/);
        });
    });
});

function hashFile(file: string): string {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

function listRecursive(root: string, rel = ""): string[] {
    const out: string[] = [];
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
        const childRel = rel ? `${rel}/${name}` : name;
        out.push(childRel);
        if (fs.lstatSync(path.join(root, childRel)).isDirectory()) out.push(...listRecursive(root, childRel));
    }
    return out;
}

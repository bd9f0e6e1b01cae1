// The digest of a local directory source: it follows what an image would hold and ignores what the
// host adds (mtimes, creation order).
import * as assert from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { extractLayers } from "../../../provider/toolkit/source/layer-extract";
import { treeDigest, treeEntries } from "../../../provider/toolkit/source/tree-digest";
import { buildTar, tempDir } from "../../helpers/oci-fixtures";

type Builder = (root: string) => void;

/** The same small tree; `reverse` creates its entries in another order (readdir order follows it). */
function sampleTree(root: string, reverse = false): void {
    const p = (...parts: string[]) => path.join(root, ...parts);
    const steps: Builder[] = [
        () => fs.mkdirSync(p("usr", "bin"), { recursive: true }),
        () => fs.writeFileSync(p("usr", "bin", "tool"), "#!/bin/sh\n", { mode: 0o755 }),
        () => fs.symlinkSync("../etc/motd", p("usr", "motd")),
        () => fs.mkdirSync(p("etc")),
        () => fs.writeFileSync(p("etc", "motd"), "hello"),
    ];
    fs.mkdirSync(root);
    const order = reverse ? [3, 4, 0, 2, 1] : [0, 1, 2, 3, 4];
    for (const i of order) steps[i](root);
    fs.chmodSync(p("usr", "bin", "tool"), 0o755); // whatever the umask took away
}

describe("treeDigest", () => {
    let tmp: string;
    let n = 0;
    let reference: string;
    const fresh = (reverse = false) => {
        const root = path.join(tmp, `tree-${++n}`);
        sampleTree(root, reverse);
        return root;
    };

    before(async () => {
        tmp = tempDir();
        reference = await treeDigest(fresh());
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it("is a sha256 digest, and the same for an identical tree built in another order", async () => {
        assert.match(reference, /^sha256:[0-9a-f]{64}$/);
        assert.strictEqual(await treeDigest(fresh(true)), reference);
    });

    it("ignores mtimes", async () => {
        const root = fresh();
        fs.utimesSync(path.join(root, "etc", "motd"), new Date(0), new Date(0));
        fs.utimesSync(path.join(root, "usr"), new Date(1e12), new Date(1e12));
        fs.lutimesSync(path.join(root, "usr", "motd"), new Date(0), new Date(0));
        assert.strictEqual(await treeDigest(root), reference);
    });

    const CHANGES: Array<[string, Builder]> = [
        ["file content", (r) => fs.writeFileSync(path.join(r, "etc", "motd"), "hellO")],
        ["file mode", (r) => fs.chmodSync(path.join(r, "etc", "motd"), 0o600)],
        ["directory mode", (r) => fs.chmodSync(path.join(r, "etc"), 0o700)],
        ["setuid bit", (r) => fs.chmodSync(path.join(r, "usr", "bin", "tool"), 0o4755)],
        ["symlink target", (r) => (fs.unlinkSync(path.join(r, "usr", "motd")), fs.symlinkSync("/etc/motd", path.join(r, "usr", "motd")))],
        ["symlink replaced by a copy", (r) => (fs.unlinkSync(path.join(r, "usr", "motd")), fs.writeFileSync(path.join(r, "usr", "motd"), "hello"))],
        ["rename", (r) => fs.renameSync(path.join(r, "etc", "motd"), path.join(r, "etc", "motd2"))],
        ["an added empty directory", (r) => fs.mkdirSync(path.join(r, "var"))],
        ["an added empty file", (r) => fs.writeFileSync(path.join(r, "etc", "empty"), "")],
    ];
    for (const [what, change] of CHANGES) {
        it(`changes with ${what}`, async () => {
            const root = fresh();
            change(root);
            assert.notStrictEqual(await treeDigest(root), reference);
        });
    }

    it("does not follow symlinks", async () => {
        const root = fresh();
        const elsewhere = path.join(tmp, "elsewhere");
        fs.mkdirSync(elsewhere);
        fs.symlinkSync(elsewhere, path.join(root, "out"));
        const before = await treeDigest(root);
        fs.writeFileSync(path.join(elsewhere, "new"), "x");
        assert.strictEqual(await treeDigest(root), before);
    });

    it("lists entries sorted by path with type, mode, target and content hash", async () => {
        const entries = await treeEntries(fresh());
        const sha = (s: string) => createHash("sha256").update(s).digest("hex");
        assert.deepStrictEqual(entries.map((e) => [e.path, e.type, e.mode.toString(8), e.target ?? e.sha256]), [
            ["etc", "dir", "755", undefined],
            ["etc/motd", "file", "644", sha("hello")],
            ["usr", "dir", "755", undefined],
            ["usr/bin", "dir", "755", undefined],
            ["usr/bin/tool", "file", "755", sha("#!/bin/sh\n")],
            ["usr/motd", "symlink", "777", "../etc/motd"],
        ]);
    });

    it("matches between an extracted layer and the same tree made by hand", async () => {
        const layer = path.join(tmp, "layer.tar");
        fs.writeFileSync(layer, buildTar([
            { name: "usr/", type: "dir" },
            { name: "usr/bin/", type: "dir" },
            { name: "usr/bin/tool", content: "#!/bin/sh\n", mode: 0o755 },
            { name: "usr/motd", type: "symlink", linkname: "../etc/motd" },
            { name: "etc/", type: "dir" },
            { name: "etc/motd", content: "hello" },
        ]));
        const extracted = path.join(tmp, "extracted");
        await extractLayers([layer], extracted, { mode: "all" });
        assert.strictEqual(await treeDigest(extracted), reference);
    });
});

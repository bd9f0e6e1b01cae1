// resolveInTree: links inside an extracted tree followed as the booted system follows them (the tree is
// "/"), on real folders and links; whatever the links say, the result stays inside the tree.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { TreeLinkError, resolveInTree } from "../../provider/toolkit/tree-chase";
import { resolveLinkTarget } from "../../provider/toolkit/tree-path";
import { tempDir } from "../helpers/temp";

describe("resolveInTree", () => {
    let root: string;
    let host: string;
    before(() => {
        host = tempDir("chase-host");
        root = tempDir("chase-tree");
        fs.mkdirSync(path.join(root, "usr", "share", "rel"), { recursive: true });
        fs.mkdirSync(path.join(root, "etc"));
        fs.symlinkSync(host, path.join(root, "usr", "abs")); // the host's folder by its absolute name
        fs.symlinkSync("/usr/share/rel", path.join(root, "usr", "share", "abs-inside"));
        fs.symlinkSync("../../../../../../..", path.join(root, "usr", "up")); // climbs far above the root
        fs.symlinkSync("loop-b", path.join(root, "etc", "loop-a"));
        fs.symlinkSync("loop-a", path.join(root, "etc", "loop-b"));
        fs.writeFileSync(path.join(root, "etc", "file"), "x");
    });

    it("roots an absolute target at the tree, never at the host", () => {
        assert.strictEqual(resolveInTree(root, "usr/abs/x"), path.join(root, host, "x"));
        assert.strictEqual(resolveInTree(root, "usr/share/abs-inside/f"), path.join(root, "usr/share/rel/f"));
    });

    it("clamps '..' at the tree root, in names and in link targets", () => {
        assert.strictEqual(resolveInTree(root, "usr/up/etc"), path.join(root, "etc"));
        assert.strictEqual(resolveInTree(root, "../../../etc/passwd"), path.join(root, "etc/passwd"));
    });

    it("keeps components that do not exist yet (the place to create them), and can leave the last link alone", () => {
        assert.strictEqual(resolveInTree(root, "usr/lib/extension-release.d/x"), path.join(root, "usr/lib/extension-release.d/x"));
        assert.strictEqual(resolveInTree(root, "usr/abs", { followLast: false }), path.join(root, "usr/abs"));
    });

    it("refuses link loops and a file used as a folder", () => {
        assert.throws(() => resolveInTree(root, "etc/loop-a/x"), (e: Error) => e instanceof TreeLinkError && /more than 40 symbolic links/.test(e.message));
        assert.throws(() => resolveInTree(root, "etc/file/x"), (e: Error) => e instanceof TreeLinkError && /\/etc\/file in the tree is not a directory/.test(e.message));
    });

    it("follows one link exactly where the lexical resolver says with aboveRoot 'stay'; layer extraction's 'refuse' rejects the same climbing targets", () => {
        const tree = tempDir("chase-agree");
        fs.mkdirSync(path.join(tree, "usr", "lib"), { recursive: true });
        const targets = ["../share/x", "/etc/y", "../../../../z", "./a/./b/", "/../../usr/lib/c", "../../..", "d/../../e"];
        for (const [i, target] of targets.entries()) {
            const link = ["usr", "lib", `link-${i}`];
            fs.symlinkSync(target, path.join(tree, ...link));
            const lexical = resolveLinkTarget(link, target, "stay")!;
            assert.strictEqual(resolveInTree(tree, link.join("/")), path.join(tree, ...lexical), `${link.join("/")} -> ${target}`);
            const climbs = ["../../../../z", "/../../usr/lib/c", "../../.."].includes(target);
            assert.strictEqual(resolveLinkTarget(link, target, "refuse") === undefined, climbs, `${target}: refused by layer extraction`);
        }
    });
});

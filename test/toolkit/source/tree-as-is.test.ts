// usableAsIs: a source folder stands for its own mirror only when the mirror would be the same tree.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import { AsIsRequirements, usableAsIs } from "../../../provider/toolkit/source/tree-as-is";
import { tempDir } from "../../helpers/temp";

const REQ: AsIsRequirements = { rootMode: 0o755, allowedTop: ["usr", "opt"], present: ["usr/lib/extension-release.d/extension-release.x"] };

describe("toolkit/source/tree-as-is", function () {
    let base: string;
    let n = 0;
    before(() => (base = tempDir("as-is")));

    /** A fresh tree that is usable as it is, changed by `change`. */
    const tree = (change: (root: string) => void = () => undefined): string => {
        const root = path.join(base, `t${n++}`);
        fs.mkdirSync(path.join(root, "usr/lib/extension-release.d"), { recursive: true });
        fs.chmodSync(root, 0o755);
        fs.writeFileSync(path.join(root, "usr/lib/extension-release.d/extension-release.x"), "ID=_any\n");
        fs.mkdirSync(path.join(root, "usr/bin"));
        fs.writeFileSync(path.join(root, "usr/bin/a"), "a");
        fs.symlinkSync("a", path.join(root, "usr/bin/link"));
        change(root);
        return root;
    };

    it("takes a plain tree: folders, files, symlinks, an inode linked from outside the tree", function () {
        assert.equal(usableAsIs(tree(), REQ), true);
        assert.equal(usableAsIs(tree((r) => fs.linkSync(path.join(r, "usr/bin/a"), path.join(base, `outside-${n}`))), REQ), true);
    });

    it("refuses what would make the mirror differ", function () {
        const cases: [string, (root: string) => void][] = [
            ["another root mode", (r) => fs.chmodSync(r, 0o700)],
            ["a top-level name the build drops or refuses", (r) => fs.mkdirSync(path.join(r, "etc"))],
            ["no release file (the build would write one)", (r) => fs.rmSync(path.join(r, "usr/lib/extension-release.d/extension-release.x"))],
            ["a release file reached through a symlink", (r) => {
                fs.renameSync(path.join(r, "usr/lib/extension-release.d"), path.join(r, "usr/lib/real"));
                fs.symlinkSync("real", path.join(r, "usr/lib/extension-release.d"));
            }],
            ["an inode with two names in the tree (the mirror copies the second)", (r) => fs.linkSync(path.join(r, "usr/bin/a"), path.join(r, "usr/bin/b"))],
            ["a FIFO", (r) => execFileSync("mkfifo", [path.join(r, "usr/bin/fifo")])],
        ];
        for (const [what, change] of cases) assert.equal(usableAsIs(tree(change), REQ), false, what);
        assert.equal(usableAsIs(path.join(base, "missing"), REQ), false, "a missing folder");
    });
});

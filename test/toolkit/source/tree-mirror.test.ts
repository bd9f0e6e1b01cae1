// The build's view of a source folder (toolkit/source/tree-mirror.ts): hard links instead of copied bytes, with
// the same tree digest and the same erofs image a copy gives, and the user's files never written.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { mirrorTree, newMirrorState } from "../../../provider/toolkit/source/tree-mirror";
import { treeDigest } from "../../../provider/toolkit/source/tree-digest";
import { run } from "../../../provider/toolkit/run";
import { sha256File } from "../../../provider/toolkit/files";
import { tempDir } from "../../helpers/oci-fixtures";

function sourceTree(root: string): void {
    fs.mkdirSync(path.join(root, "usr", "bin"), { recursive: true });
    fs.mkdirSync(path.join(root, "usr", "share", "private"), { recursive: true, mode: 0o700 });
    fs.chmodSync(path.join(root, "usr", "share", "private"), 0o700);
    fs.writeFileSync(path.join(root, "usr", "bin", "k3s"), Buffer.alloc(300_000, 7));
    fs.chmodSync(path.join(root, "usr", "bin", "k3s"), 0o4755);
    fs.writeFileSync(path.join(root, "usr", "share", "private", "note"), "only root\n", { mode: 0o600 });
    fs.symlinkSync("k3s", path.join(root, "usr", "bin", "kubectl"));
    // A second name for the same inode: a copy (fs.cpSync) gives two files, and so must the mirror.
    fs.linkSync(path.join(root, "usr", "bin", "k3s"), path.join(root, "usr", "bin", "crictl"));
}

async function erofs(tree: string, out: string): Promise<string> {
    await run(["mkfs.erofs", "--quiet", "-T", "0", "-U", "11111111-2222-4333-8444-555555555555", "--all-root", "-x", "-1", out, tree], { env: { SOURCE_DATE_EPOCH: undefined } });
    return sha256File(out);
}

describe("tree mirror", function () {
    this.timeout(60000);

    it("links file data, keeps modes and symlinks, and gives the digest and erofs image a copy gives", async () => {
        const work = tempDir("mirror-");
        const src = path.join(work, "src");
        sourceTree(src);
        const mirror = path.join(work, "mirror");
        const state = newMirrorState();
        mirrorTree(src, mirror, src, state);
        const copy = path.join(work, "copy");
        fs.cpSync(src, copy, { recursive: true, verbatimSymlinks: true });

        assert.deepStrictEqual({ linked: state.linked, copied: state.copied }, { linked: 2, copied: 1 }, "note and one name of k3s linked, its other name copied");
        const ino = (...p: string[]) => fs.statSync(path.join(...p)).ino;
        const shared = ["k3s", "crictl"].filter((n) => ino(mirror, "usr", "bin", n) === ino(src, "usr", "bin", "k3s"));
        assert.strictEqual(shared.length, 1, "exactly one mirror name shares the source inode");
        assert.notStrictEqual(ino(mirror, "usr", "bin", "crictl"), ino(mirror, "usr", "bin", "k3s"));
        assert.strictEqual(ino(mirror, "usr", "share", "private", "note"), ino(src, "usr", "share", "private", "note"));
        assert.strictEqual(fs.statSync(path.join(mirror, "usr", "share", "private")).mode & 0o7777, 0o700);
        assert.strictEqual(fs.readlinkSync(path.join(mirror, "usr", "bin", "kubectl")), "k3s");
        assert.strictEqual(await treeDigest(mirror), await treeDigest(src));
        assert.strictEqual(await erofs(mirror, path.join(work, "mirror.erofs")), await erofs(copy, path.join(work, "copy.erofs")));

        fs.rmSync(mirror, { recursive: true });
        assert.strictEqual(fs.readFileSync(path.join(src, "usr", "bin", "k3s")).length, 300_000, "removing the mirror leaves the source whole");
    });

    it("copies across filesystems and reports device nodes, FIFOs and sockets by name", async function () {
        if (!fs.existsSync("/dev/shm")) throw new Error("this test needs /dev/shm (a tmpfs) as the other filesystem");
        const src = fs.mkdtempSync("/dev/shm/kairos-mirror-");
        try {
            sourceTree(src);
            await run(["mkfifo", path.join(src, "usr", "pipe")]);
            const mirror = path.join(tempDir("mirror-"), "m");
            const state = newMirrorState();
            mirrorTree(src, mirror, src, state);
            assert.strictEqual(state.linked, 0);
            assert.strictEqual(state.copyOnly, true);
            assert.strictEqual(state.copied, 3);
            assert.deepStrictEqual(state.special, ["usr/pipe"]);
            fs.rmSync(path.join(src, "usr", "pipe"));
            assert.strictEqual(await treeDigest(mirror), await treeDigest(src));
        } finally {
            fs.rmSync(src, { recursive: true, force: true });
        }
    });
});

// A local folder archived in place with the UKI's changes as an overlay (ukiRootfsOverlay + the cpio
// overlay) gives the cpio that prepareUkiRootfs on a copy of it gives, byte for byte; the folder is
// not changed; the cases the overlay cannot say fall back or fail as prepareUkiRootfs fails.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { cpioDigest, writeCpio } from "../../../provider/toolkit/boot/initrd";
import { prepareUkiRootfs, ukiRootfsOverlay } from "../../../provider/toolkit/boot/kairos-rootfs";
import { treeDigest } from "../../../provider/toolkit/source/tree-digest";
import { tempDir } from "../../helpers/temp";

describe("initrd: a local folder archived in place with the UKI overlay", () => {
    let tmp: string;
    beforeEach(() => (tmp = tempDir("initrd-overlay")));
    afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

    /** A small OS-like tree: files, a hard-link pair, symlinks, odd modes, /boot, an /init to replace. */
    function makeTree(dir: string, opts: { init?: "file" | "symlink" | "none"; efi?: boolean; usrLocal?: boolean } = {}): string {
        const w = (rel: string, content: string, mode = 0o644) => {
            fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
            fs.writeFileSync(path.join(dir, rel), content);
            fs.chmodSync(path.join(dir, rel), mode);
        };
        w("usr/bin/immucore", "#!/bin/sh\n", 0o755);
        w("usr/lib/os-release", "ID=kairos\n");
        w("etc/hostname", "node\n");
        w("etc/shadow", "root:*:1::::::\n", 0o640);
        fs.linkSync(path.join(dir, "etc/hostname"), path.join(dir, "etc/hostname.link"));
        fs.symlinkSync("../usr/lib/os-release", path.join(dir, "etc/os-release"));
        w("boot/vmlinuz", "kernel");
        fs.mkdirSync(path.join(dir, "var/lib/empty"), { recursive: true });
        fs.chmodSync(path.join(dir, "var/lib/empty"), 0o750);
        if (opts.init === "file") w("init", "old init", 0o755);
        if (opts.init === "symlink") fs.symlinkSync("/sbin/init", path.join(dir, "init"));
        if (opts.efi) fs.mkdirSync(path.join(dir, "efi"));
        if (opts.usrLocal) fs.mkdirSync(path.join(dir, "usr/local/share"), { recursive: true });
        return dir;
    }

    for (const variant of [{ init: "file" as const }, { init: "symlink" as const, efi: true, usrLocal: true }, { init: "none" as const, usrLocal: true }]) {
        it(`gives prepareUkiRootfs's cpio without changing the folder (${JSON.stringify(variant)})`, async () => {
            const tree = makeTree(path.join(tmp, "tree"), variant);
            const before = await treeDigest(tree);
            const copy = path.join(tmp, "copy");
            await run(["cp", "-a", tree, copy]); // keeps the hard links, modes and symlinks
            prepareUkiRootfs(copy);
            const overlay = ukiRootfsOverlay(tree);
            assert.ok(overlay, "the overlay can say this tree's changes");
            const theirs = await writeCpio(copy, path.join(tmp, "copy.cpio"));
            const ours = await writeCpio(tree, path.join(tmp, "tree.cpio"), { overlay });
            assert.ok(fs.readFileSync(path.join(tmp, "tree.cpio")).equals(fs.readFileSync(path.join(tmp, "copy.cpio"))), "the same cpio bytes");
            assert.strictEqual(ours.sha256, theirs.sha256);
            assert.strictEqual(await cpioDigest(tree, { overlay }), await cpioDigest(copy));
            // with remembered file digests (the second walk takes them from the cache)
            assert.strictEqual(await cpioDigest(tree, { overlay, digestCache: true }), await cpioDigest(copy));
            assert.strictEqual(await cpioDigest(tree, { overlay, digestCache: true }), await cpioDigest(copy));
            assert.strictEqual(await treeDigest(tree), before, "the folder is as it was");
        });
    }

    it("leaves a tree whose changes pass through a symlink to a changed copy, and fails as prepareUkiRootfs fails", () => {
        const linked = makeTree(path.join(tmp, "linked"));
        fs.mkdirSync(path.join(linked, "opt/local"), { recursive: true });
        fs.symlinkSync("../opt/local", path.join(linked, "usr/local"));
        assert.strictEqual(ukiRootfsOverlay(linked), undefined);

        const initDir = makeTree(path.join(tmp, "init-dir"));
        fs.mkdirSync(path.join(initDir, "init"));
        assert.throws(() => ukiRootfsOverlay(initDir), /\/init is a directory/);
        assert.throws(() => prepareUkiRootfs(initDir), /\/init is a directory/);

        const efiFile = makeTree(path.join(tmp, "efi-file"));
        fs.writeFileSync(path.join(efiFile, "efi"), "");
        assert.throws(() => ukiRootfsOverlay(efiFile), /\/efi exists and is not a directory/);
        assert.throws(() => prepareUkiRootfs(efiFile), /\/efi exists and is not a directory/);
    });

    it("refuses special files when told to, naming them", async () => {
        const tree = makeTree(path.join(tmp, "fifo"));
        await run(["mkfifo", path.join(tree, "etc/initctl")]);
        const overlay = ukiRootfsOverlay(tree)!;
        await assert.rejects(cpioDigest(tree, { overlay, refuseSpecial: (names) => new Error(`special: ${names.join(",")}`) }), /special: etc\/initctl/);
    });
});

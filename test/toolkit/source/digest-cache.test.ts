// Remembered digests (toolkit/source/digest-cache.ts): reused only for a file whose device, inode, size, mtime
// and ctime are unchanged, never for a file changed within the clock-tick window before it was hashed.
// The cache's effect is made visible by planting a wrong digest in it: a tree digest that reflects the
// planted value proves the entry was reused, one that does not proves it was distrusted.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { DIGEST_CACHE_ENV } from "../../../provider/toolkit/source/digest-cache";
import { treeDigest } from "../../../provider/toolkit/source/tree-digest";
import { tempDir } from "../../helpers/oci-fixtures";

const WRONG = "0".repeat(64);

describe("digest cache for source trees", function () {
    this.timeout(30000);
    let cacheDir: string;
    let tree: string;
    const saved = { cache: process.env.PULUMI_KAIROS_CACHE, off: process.env[DIGEST_CACHE_ENV] };

    const cacheFiles = () => {
        const dir = path.join(cacheDir, "tree-digests");
        return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith(".json")).map((n) => path.join(dir, n)) : [];
    };
    const plant = (rel: string, sha256: string) => {
        const [file] = cacheFiles();
        const parsed = JSON.parse(fs.readFileSync(file, "utf8"));
        assert.ok(parsed.files[rel], `${rel} should be remembered`);
        parsed.files[rel].sha256 = sha256;
        fs.writeFileSync(file, JSON.stringify(parsed));
    };
    /** Files older than the racy window (2 s), as every source tree is once it stops being edited. */
    const aged = async () => new Promise((r) => setTimeout(r, 2100));

    beforeEach(() => {
        cacheDir = tempDir("digest-cache");
        tree = tempDir("digest-tree");
        process.env.PULUMI_KAIROS_CACHE = cacheDir;
        delete process.env[DIGEST_CACHE_ENV];
        fs.mkdirSync(path.join(tree, "usr", "bin"), { recursive: true });
        fs.writeFileSync(path.join(tree, "usr", "bin", "a"), "alpha\n");
        fs.writeFileSync(path.join(tree, "usr", "bin", "b"), "bravo\n");
    });
    afterEach(() => {
        for (const [k, v] of [["PULUMI_KAIROS_CACHE", saved.cache], [DIGEST_CACHE_ENV, saved.off]] as const) {
            if (v === undefined) delete process.env[k];
            else process.env[k] = v;
        }
    });

    it("gives the digest a full read gives, and remembers only files older than the racy window", async () => {
        const truth = await treeDigest(tree);
        assert.strictEqual(await treeDigest(tree, { cache: true }), truth);
        const [file] = cacheFiles();
        assert.deepStrictEqual(Object.keys(JSON.parse(fs.readFileSync(file, "utf8")).files), [], "files written just now are not trusted yet");
        await aged();
        assert.strictEqual(await treeDigest(tree, { cache: true }), truth);
        assert.deepStrictEqual(Object.keys(JSON.parse(fs.readFileSync(file, "utf8")).files).sort(), ["usr/bin/a", "usr/bin/b"]);
    });

    it("reuses a remembered digest while the file's identity is unchanged, and re-reads it after a write, a chmod or a replacement", async () => {
        await aged();
        const truth = await treeDigest(tree, { cache: true });
        plant("usr/bin/a", WRONG);
        assert.notStrictEqual(await treeDigest(tree, { cache: true }), truth, "the planted digest was used: the entry is reused");
        assert.strictEqual(await treeDigest(tree), truth, "without the cache every byte is read");

        // Same size, new bytes: mtime and ctime move.
        fs.writeFileSync(path.join(tree, "usr", "bin", "a"), "ALPHA\n");
        const rewritten = await treeDigest(tree);
        assert.notStrictEqual(rewritten, truth);
        assert.strictEqual(await treeDigest(tree, { cache: true }), rewritten);

        // A chmod changes only ctime (and the mode, which the digest covers anyway): the digest is re-read.
        await aged();
        await treeDigest(tree, { cache: true });
        plant("usr/bin/b", WRONG);
        fs.chmodSync(path.join(tree, "usr", "bin", "b"), 0o644);
        assert.strictEqual(await treeDigest(tree, { cache: true }), await treeDigest(tree));

        // A file renamed over another with the same size and an old mtime: another inode.
        await aged();
        await treeDigest(tree, { cache: true });
        plant("usr/bin/a", WRONG);
        const other = path.join(tree, "usr", "other");
        fs.writeFileSync(other, "alpha\n");
        fs.utimesSync(other, new Date(0), new Date(0));
        fs.renameSync(other, path.join(tree, "usr", "bin", "a"));
        assert.strictEqual(await treeDigest(tree, { cache: true }), await treeDigest(tree));
    });

    it("ignores an unreadable cache file and writes nothing when switched off", async () => {
        await aged();
        const truth = await treeDigest(tree, { cache: true });
        fs.writeFileSync(cacheFiles()[0], "{ not json");
        assert.strictEqual(await treeDigest(tree, { cache: true }), truth);
        assert.ok(JSON.parse(fs.readFileSync(cacheFiles()[0], "utf8")).files["usr/bin/a"], "rewritten whole");

        fs.rmSync(path.join(cacheDir, "tree-digests"), { recursive: true });
        process.env[DIGEST_CACHE_ENV] = "off";
        assert.strictEqual(await treeDigest(tree, { cache: true }), truth);
        assert.deepStrictEqual(cacheFiles(), []);
    });
});

// The initrd: a newc cpio written here, checked with GNU cpio (-t lists it, -i extracts it back to the
// same tree) and zstd, and byte-identical for identical trees whatever their mtimes and creation order;
// a compressed initrd is reused only for a tree whose cpio would be byte-identical.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { sha256File } from "../../../provider/toolkit/files";
import { INITRD_EXCLUDES, buildInitrd, cpioDigest, writeCpio } from "../../../provider/toolkit/boot/initrd";
import { InitrdCache } from "../../../provider/output/initrd-cache";
import { treeEntries } from "../../../provider/toolkit/source/tree-digest";
import { tempDir } from "../../helpers/oci-fixtures";

type Step = (root: string) => void | Promise<void>;

/** A small rootfs: dirs, modes incl. setuid, symlinks, a hard-linked pair, a FIFO, a device, excluded dirs. */
async function makeRootfs(root: string, opts: { reverse?: boolean; mtime?: number } = {}): Promise<void> {
    const p = (...parts: string[]) => path.join(root, ...parts);
    const file = (rel: string, content: string | Buffer, mode = 0o644) => () => {
        fs.mkdirSync(path.dirname(p(rel)), { recursive: true });
        fs.writeFileSync(p(rel), content);
        fs.chmodSync(p(rel), mode);
    };
    const steps: Step[] = [
        file("usr/bin/immucore", "#!/bin/sh\necho immucore\n", 0o755),
        file("usr/bin/su", "setuid", 0o4755),
        file("etc/shadow", "root:*:1::::::\n", 0o600),
        file("etc/os-release", 'NAME="Kairos"\n'),
        file("usr/lib/big.bin", Buffer.alloc(3 * 1024 * 1024 + 3, 7)),
        file("usr/share/a name with spaces", "x"),
        file("var/empty/.keep", ""),
        () => fs.mkdirSync(p("var/lib/empty-dir"), { recursive: true }),
        () => fs.symlinkSync("usr/bin", p("bin")),
        () => {
            fs.mkdirSync(p("etc/alternatives"), { recursive: true });
            fs.symlinkSync("/usr/bin/immucore", p("etc/alternatives/init"));
        },
        () => {
            const [first, second] = opts.reverse ? ["usr/lib/zz-hard-b", "usr/lib/hard-a"] : ["usr/lib/hard-a", "usr/lib/zz-hard-b"];
            file(first, "shared bytes\n")();
            fs.linkSync(p(first), p(second));
        },
        async () => {
            fs.mkdirSync(p("lib"), { recursive: true });
            await run(["mkfifo", p("lib/fifo")]);
            await run(["mknod", p("lib/null"), "c", "1", "3"]);
        },
        // left out of the initrd
        file("boot/vmlinuz-6.1", "kernel"),
        file("proc/cpuinfo", "x"),
        file("sys/x", "x"),
        file("dev/x", "x"),
        file("run/x", "x"),
        file("tmp/x", "x"),
    ];
    fs.mkdirSync(root, { mode: 0o700 });
    for (const s of opts.reverse ? [...steps].reverse() : steps) await s(root);
    if (opts.mtime !== undefined) {
        const t = new Date(opts.mtime * 1000);
        for (const e of await treeEntries(root)) if (e.type !== "symlink" && e.type !== "fifo" && e.type !== "char") fs.utimesSync(path.join(root, e.path), t, t);
    }
}

interface CpioRecord {
    name: string;
    ino: number;
    mode: number;
    uid: number;
    gid: number;
    nlink: number;
    mtime: number;
    size: number;
    rdevMajor: number;
    rdevMinor: number;
    data: Buffer;
}

/** An independent newc reader (not the code under test). */
function parseNewc(buf: Buffer): CpioRecord[] {
    const out: CpioRecord[] = [];
    let off = 0;
    const al = (n: number) => (n + 3) & ~3;
    for (;;) {
        assert.strictEqual(buf.toString("latin1", off, off + 6), "070701", `magic at ${off}`);
        const f = (i: number) => parseInt(buf.toString("latin1", off + 6 + i * 8, off + 14 + i * 8), 16);
        const namesize = f(11);
        const name = buf.toString("latin1", off + 110, off + 110 + namesize - 1);
        const dataOff = al(off + 110 + namesize);
        const size = f(6);
        const rec = { name, ino: f(0), mode: f(1), uid: f(2), gid: f(3), nlink: f(4), mtime: f(5), size, rdevMajor: f(9), rdevMinor: f(10), data: buf.subarray(dataOff, dataOff + size) };
        off = al(dataOff + size);
        if (name === "TRAILER!!!") break;
        out.push(rec);
    }
    assert.strictEqual(off, buf.length, "nothing after the trailer");
    return out;
}

describe("initrd", () => {
    let tmp: string;
    let rootA: string;
    let rootB: string;
    before(async () => {
        tmp = tempDir("kairos-initrd-");
        rootA = path.join(tmp, "a");
        rootB = path.join(tmp, "b");
        await makeRootfs(rootA);
        await makeRootfs(rootB, { reverse: true, mtime: 1234567890 });
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it("is byte-identical for identical trees created in another order with other mtimes", async () => {
        const a = await buildInitrd(rootA, path.join(tmp, "a.zst"), { keepCpio: path.join(tmp, "a.cpio") });
        const b = await buildInitrd(rootB, path.join(tmp, "b.zst"), { keepCpio: path.join(tmp, "b.cpio") });
        assert.strictEqual(a.cpio.sha256, b.cpio.sha256);
        assert.strictEqual(a.sha256, b.sha256);
        assert.strictEqual(a.sha256, await sha256File(path.join(tmp, "a.zst")));
        assert.strictEqual(a.size, fs.statSync(path.join(tmp, "a.zst")).size);
        assert.strictEqual(a.cpio.sha256, await sha256File(path.join(tmp, "a.cpio")));
        assert.match(a.zstdVersion, /v\d+\.\d+/);
        // the zstd frame decompresses to exactly the cpio
        await run(["zstd", "-q", "-d", "-f", path.join(tmp, "a.zst"), "-o", path.join(tmp, "a.unzst")]);
        assert.ok(fs.readFileSync(path.join(tmp, "a.unzst")).equals(fs.readFileSync(path.join(tmp, "a.cpio"))));
    });

    it("gives the same bytes with any zstd thread count, and other bytes for other content", async () => {
        const t1 = await buildInitrd(rootA, path.join(tmp, "t1.zst"), { threads: 1, level: 3 });
        const t2 = await buildInitrd(rootA, path.join(tmp, "t2.zst"), { threads: 2, level: 3 });
        const t0 = await buildInitrd(rootA, path.join(tmp, "t0.zst"), { threads: 0, level: 3 });
        assert.strictEqual(t1.sha256, t2.sha256);
        assert.strictEqual(t1.sha256, t0.sha256);
        const changed = path.join(tmp, "changed");
        await makeRootfs(changed);
        fs.chmodSync(path.join(changed, "etc/os-release"), 0o640);
        const c = await buildInitrd(changed, path.join(tmp, "c.zst"), { level: 3 });
        assert.notStrictEqual(c.cpio.sha256, t1.cpio.sha256);
    });

    it("lists with cpio -t in walk order, without sys run dev tmp proc boot", async () => {
        const cpio = path.join(tmp, "list.cpio");
        await writeCpio(rootA, cpio);
        const names = (await run(["cpio", "-t", "--quiet", "-F", cpio])).stdout.trim().split("\n");
        assert.deepStrictEqual(names, [
            ".",
            "bin",
            "etc",
            "etc/alternatives",
            "etc/alternatives/init",
            "etc/os-release",
            "etc/shadow",
            "lib",
            "lib/fifo",
            "lib/null",
            "usr",
            "usr/bin",
            "usr/bin/immucore",
            "usr/bin/su",
            "usr/lib",
            "usr/lib/big.bin",
            "usr/lib/hard-a",
            "usr/lib/zz-hard-b",
            "usr/share",
            "usr/share/a name with spaces",
            "var",
            "var/empty",
            "var/empty/.keep",
            "var/lib",
            "var/lib/empty-dir",
        ]);
        for (const x of INITRD_EXCLUDES) assert.ok(!names.some((n) => n === x || n.startsWith(`${x}/`)), x);
    });

    it("writes zero times and owners, sequential inodes, shared inodes for hard links", async () => {
        const cpio = path.join(tmp, "hdr.cpio");
        const res = await writeCpio(rootA, cpio);
        const recs = parseNewc(fs.readFileSync(cpio));
        assert.strictEqual(recs.length, res.entries);
        assert.ok(recs.every((r) => r.mtime === 0 && r.uid === 0 && r.gid === 0));
        const by = new Map(recs.map((r) => [r.name, r]));
        assert.strictEqual(by.get(".")!.mode, 0o040755, "the root is a 0755 directory even though the tree's root is 0700");
        assert.strictEqual(by.get("usr/bin/su")!.mode, 0o104755);
        assert.strictEqual(by.get("etc/shadow")!.mode, 0o100600);
        assert.strictEqual(by.get("bin")!.mode & 0o170000, 0o120000);
        assert.strictEqual(by.get("bin")!.data.toString(), "usr/bin");
        assert.strictEqual(by.get("lib/fifo")!.mode & 0o170000, 0o010000);
        assert.deepStrictEqual([by.get("lib/null")!.mode & 0o170000, by.get("lib/null")!.rdevMajor, by.get("lib/null")!.rdevMinor], [0o020000, 1, 3]);
        assert.strictEqual(by.get("usr")!.nlink, 2 + 3, "usr has bin, lib and share");
        const a = by.get("usr/lib/hard-a")!;
        const b = by.get("usr/lib/zz-hard-b")!;
        assert.strictEqual(a.ino, b.ino);
        assert.deepStrictEqual([a.nlink, b.nlink, a.size, b.data.toString()], [2, 2, 0, "shared bytes\n"]);
        const inos = [...new Set(recs.map((r) => r.ino))];
        assert.deepStrictEqual(inos, inos.map((_, i) => i + 1), "inodes count from 1 in archive order");
    });

    it("keeps owners only when asked to", async () => {
        const root = path.join(tmp, "owned");
        await makeRootfs(root);
        fs.chownSync(path.join(root, "etc/shadow"), 1000, 42);
        const owner = async (opts: { owners?: "root" | "preserve" }) => {
            const cpio = path.join(tmp, `owned-${opts.owners ?? "default"}.cpio`);
            await writeCpio(root, cpio, opts);
            const rec = parseNewc(fs.readFileSync(cpio)).find((r) => r.name === "etc/shadow")!;
            return [rec.uid, rec.gid];
        };
        assert.deepStrictEqual(await owner({}), [0, 0]);
        assert.deepStrictEqual(await owner({ owners: "preserve" }), [1000, 42]);
    });

    it("extracts with cpio -i to the same tree", async () => {
        const cpio = path.join(tmp, "x.cpio");
        await writeCpio(rootA, cpio);
        const out = path.join(tmp, "extracted");
        fs.mkdirSync(out);
        await run(["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames", "-F", cpio], { cwd: out });
        const expected = (await treeEntries(rootA)).filter((e) => !INITRD_EXCLUDES.some((x) => e.path === x || e.path.startsWith(`${x}/`)));
        assert.deepStrictEqual(await treeEntries(out), expected);
        const ia = fs.statSync(path.join(out, "usr/lib/hard-a")).ino;
        assert.strictEqual(fs.statSync(path.join(out, "usr/lib/zz-hard-b")).ino, ia, "hard links come back as hard links");
    });

    it("refuses to write the archive inside the tree", async () => {
        await assert.rejects(writeCpio(rootA, path.join(rootA, "x.cpio")), /inside the tree/);
    });
});

describe("initrd reuse", () => {
    let tmp: string;
    let root: string;
    let cache: InitrdCache;
    before(async () => {
        tmp = tempDir("kairos-initrd-reuse-");
        root = path.join(tmp, "root");
        await makeRootfs(root);
    });
    beforeEach(() => {
        cache = new InitrdCache(tempDir("kairos-initrd-cache-"), 64 * 1024 * 1024);
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    /** A copy of the test rootfs with one change applied; the cpio's sha256 and the digest that should name it. */
    async function variant(name: string, change: (r: string) => void): Promise<{ digest: string; cpio: string }> {
        const r = path.join(tmp, name);
        await makeRootfs(r, { reverse: true });
        change(r);
        const cpio = await writeCpio(r, path.join(tmp, `${name}.cpio`));
        return { digest: await cpioDigest(r), cpio: cpio.sha256 };
    }

    it("names the cpio's bytes: equal digests exactly when the cpio bytes are equal", async () => {
        const base = await variant("same", () => {});
        const cases = {
            "one byte of a file": (r: string) => fs.writeFileSync(path.join(r, "usr/share/a name with spaces"), "y"),
            "a mode": (r: string) => fs.chmodSync(path.join(r, "etc/os-release"), 0o640),
            "a symlink target": (r: string) => {
                fs.rmSync(path.join(r, "bin"));
                fs.symlinkSync("usr/sbin", path.join(r, "bin"));
            },
            "a hard link made a copy": (r: string) => {
                fs.rmSync(path.join(r, "usr/lib/zz-hard-b"));
                fs.writeFileSync(path.join(r, "usr/lib/zz-hard-b"), "shared bytes\n");
            },
            "only the excluded /boot": (r: string) => fs.writeFileSync(path.join(r, "boot/vmlinuz-6.1"), "another kernel"),
        };
        const plain = await writeCpio(root, path.join(tmp, "root.cpio"));
        assert.strictEqual(await cpioDigest(root), base.digest, "same tree, other creation order");
        assert.strictEqual(plain.sha256, base.cpio);
        for (const [what, change] of Object.entries(cases)) {
            const v = await variant(what.replace(/\W+/g, "-"), change);
            assert.strictEqual(v.digest === base.digest, v.cpio === base.cpio, `${what}: the digest and the cpio bytes must agree on equality`);
            assert.strictEqual(v.digest === base.digest, what === "only the excluded /boot", what);
        }
    });

    it("reuses a compressed initrd for the same tree, byte for byte, and rebuilds for another", async () => {
        const first = await buildInitrd(root, path.join(tmp, "first.zst"), { level: 3 }, cache);
        assert.strictEqual(first.reused, false);
        const kernelOnly = path.join(tmp, "kernel-only");
        await makeRootfs(kernelOnly, { reverse: true, mtime: 99 });
        fs.writeFileSync(path.join(kernelOnly, "boot/vmlinuz-6.1"), "a new kernel, outside the initrd");
        const again = await buildInitrd(kernelOnly, path.join(tmp, "again.zst"), { level: 3 }, cache);
        assert.strictEqual(again.reused, true);
        assert.strictEqual(await sha256File(path.join(tmp, "again.zst")), first.sha256);
        assert.deepStrictEqual({ ...again, reused: false }, first);

        const otherLevel = await buildInitrd(root, path.join(tmp, "level4.zst"), { level: 4 }, cache);
        assert.strictEqual(otherLevel.reused, false, "the level is part of the key");
        fs.writeFileSync(path.join(kernelOnly, "etc/os-release"), 'NAME="Kairos 2"\n');
        const changed = await buildInitrd(kernelOnly, path.join(tmp, "changed.zst"), { level: 3 }, cache);
        assert.strictEqual(changed.reused, false);
        assert.notStrictEqual(changed.sha256, first.sha256);
    });

    it("never uses an entry whose bytes changed: it is deleted and the initrd built again", async () => {
        const first = await buildInitrd(root, path.join(tmp, "t-first.zst"), { level: 3 }, cache);
        const dir = (cache as unknown as { dir: string }).dir;
        const [entry] = fs.readdirSync(dir).filter((n) => n.endsWith(".zst"));
        const bytes = fs.readFileSync(path.join(dir, entry));
        bytes[bytes.length >> 1] ^= 0xff;
        fs.writeFileSync(path.join(dir, entry), bytes);
        const rebuilt = await buildInitrd(root, path.join(tmp, "t-rebuilt.zst"), { level: 3 }, cache);
        assert.strictEqual(rebuilt.reused, false);
        assert.strictEqual(await sha256File(path.join(tmp, "t-rebuilt.zst")), first.sha256);
        const healed = await buildInitrd(root, path.join(tmp, "t-healed.zst"), { level: 3 }, cache);
        assert.strictEqual(healed.reused, true, "the rebuild put a good entry back");
    });

    it("keeps within its byte budget, least recently used out first; a zero budget keeps nothing", async () => {
        const small = tempDir("kairos-initrd-cache-");
        const first = await buildInitrd(root, path.join(tmp, "b1.zst"), { level: 3 }, new InitrdCache(small, 0));
        assert.deepStrictEqual(fs.readdirSync(small), []);
        const budget = Math.floor(first.size * 1.5); // room for one entry, not two
        const bounded = new InitrdCache(small, budget);
        await buildInitrd(root, path.join(tmp, "b2.zst"), { level: 3 }, bounded);
        await buildInitrd(root, path.join(tmp, "b3.zst"), { level: 5 }, bounded);
        assert.strictEqual(fs.readdirSync(small).filter((n) => n.endsWith(".zst")).length, 1);
        assert.strictEqual((await buildInitrd(root, path.join(tmp, "b4.zst"), { level: 5 }, bounded)).reused, true, "the newest stays");
        assert.strictEqual((await buildInitrd(root, path.join(tmp, "b5.zst"), { level: 3 }, bounded)).reused, false, "the oldest went");
    });
});

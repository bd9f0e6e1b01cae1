// Builds FAT ESP images with the real mtools and checks them with other readers (fsck.fat, minfo, mdir,
// the boot sector bytes), including byte-for-byte determinism across rebuilds with different source
// mtimes, a different time zone and a different creation order.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import {
    EspError,
    FAT32_MIN_MIB,
    buildEspImage,
    defaultVolumeId,
    espSizeMiB,
    listEsp,
    planEsp,
    readEspFile,
} from "../../../provider/toolkit/boot/esp";

const EPOCH = 1700000000; // 2023-11-14 22:13:20 UTC
const MT = { MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null" };

function writeFile(dir: string, rel: string, content: string | Buffer, mtime?: number): string {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    if (mtime !== undefined) fs.utimesSync(file, mtime, mtime);
    return file;
}

/** Pseudo-random but reproducible bytes. */
function bytes(n: number, seed: number): Buffer {
    const b = Buffer.alloc(n);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
    }
    return b;
}

describe("toolkit/esp: FAT ESP images with mtools", function () {
    this.timeout(120000);
    let dir: string;
    let src: string;

    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-esp-test-"));
        src = path.join(dir, "src");
        writeFile(src, "bootx64.efi", bytes(300 * 1024, 1), 1000000000);
        writeFile(src, "uki.efi", bytes(2 * 1024 * 1024 + 17, 2), 1500000000);
        writeFile(src, "loader.conf", "timeout 0\nsecure-boot-enroll force\n");
        for (const k of ["PK", "KEK", "db"]) writeFile(src, `${k}.auth`, bytes(2060, k.length));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    function layout(): Parameters<typeof buildEspImage>[0]["files"] {
        return [
            { espPath: "EFI/BOOT/BOOTX64.EFI", source: path.join(src, "bootx64.efi") },
            { espPath: "EFI/kairos/norole.efi", source: path.join(src, "uki.efi") },
            { espPath: "loader/loader.conf", source: path.join(src, "loader.conf") },
            { espPath: "loader/entries/norole.conf", source: path.join(src, "loader.conf") },
            ...["PK", "KEK", "db"].map((k) => ({ espPath: `loader/keys/auto/${k}.auth`, source: path.join(src, `${k}.auth`) })),
        ];
    }

    it("creates a valid FAT image with the files and empty directories, readable by mdir and fsck.fat", async () => {
        const out = path.join(dir, "a.img");
        const img = await buildEspImage({ files: layout(), emptyDirs: ["EFI/tools", "loader/keys"], out, epoch: EPOCH });
        assert.equal(img.path, out);
        assert.equal(fs.statSync(out).size, img.size);
        assert.ok(img.sizeMiB < FAT32_MIN_MIB && (img.fatBits === 12 || img.fatBits === 16), `${img.sizeMiB} MiB FAT${img.fatBits}`);
        assert.deepEqual(await listEsp(out), [
            "EFI/BOOT/BOOTX64.EFI",
            "EFI/kairos/norole.efi",
            "loader/entries/norole.conf",
            "loader/keys/auto/KEK.auth",
            "loader/keys/auto/PK.auth",
            "loader/keys/auto/db.auth",
            "loader/loader.conf",
        ]);
        assert.deepEqual(await listEsp(out, { dirs: true }).then((l) => l.filter((p) => p.endsWith("/"))), [
            "EFI/",
            "EFI/BOOT/",
            "EFI/kairos/",
            "EFI/tools/",
            "loader/",
            "loader/entries/",
            "loader/keys/",
            "loader/keys/auto/",
        ]);
        assert.deepEqual(img.dirs, ["EFI", "EFI/BOOT", "EFI/kairos", "EFI/tools", "loader", "loader/entries", "loader/keys", "loader/keys/auto"]);
        // contents survive byte for byte
        assert.ok((await readEspFile(out, "EFI/kairos/norole.efi")).equals(fs.readFileSync(path.join(src, "uki.efi"))));
        assert.equal((await readEspFile(out, "loader/loader.conf")).toString(), "timeout 0\nsecure-boot-enroll force\n");
        // an independent checker agrees it is a clean filesystem
        const fsck = await run(["fsck.fat", "-n", out]); // exit status 0 = no errors found
        assert.match(fsck.stdout, /: 16 files, /); // 7 files + 8 directories + the label entry
        // label and serial
        const info = await run(["minfo", "-i", out, "::"], { env: MT });
        assert.match(info.stdout, new RegExp(`serial number: ${img.volumeId}`, "i"));
        const mdir = await run(["mdir", "-i", out, "::/"], { env: MT });
        assert.match(mdir.stdout, /Volume in drive : is KAIROS_ESP/);
    });

    it("stamps every directory entry with the epoch (no source mtimes, no build time)", async () => {
        const out = path.join(dir, "t.img");
        await buildEspImage({ files: layout(), emptyDirs: ["EFI/tools"], out, epoch: EPOCH });
        for (const d of ["::/", "::/EFI", "::/EFI/BOOT", "::/EFI/kairos", "::/loader/keys/auto"]) {
            const { stdout } = await run(["mdir", "-i", out, d], { env: { ...MT, TZ: "UTC" } });
            const dated = stdout.split("\n").filter((l) => /\d{4}-\d\d-\d\d/.test(l));
            assert.ok(dated.length > 0, `no dated entries in ${d}`);
            for (const l of dated) assert.match(l, /2023-11-14\s+22:13/, `${d}: ${l}`);
        }
    });

    it("is deterministic: same sha256 despite other source mtimes, time zone, input order and build time", async () => {
        const a = await buildEspImage({ files: layout(), emptyDirs: ["EFI/tools"], out: path.join(dir, "d1.img"), epoch: EPOCH });
        // second build: different mtimes on the sources, reversed input order, another TZ in our env, later wall clock
        const src2 = path.join(dir, "src2");
        fs.cpSync(src, src2, { recursive: true });
        for (const f of fs.readdirSync(src2)) fs.utimesSync(path.join(src2, f), 1234567890, 1234567890);
        const files2 = layout().map((f) => ({ ...f, source: f.source.replace(src, src2) })).reverse();
        await new Promise((r) => setTimeout(r, 2100)); // FAT time has 2 s resolution
        const oldTz = process.env.TZ;
        process.env.TZ = "America/New_York";
        let b;
        try {
            b = await buildEspImage({ files: files2, emptyDirs: ["EFI/tools"], out: path.join(dir, "d2.img"), epoch: EPOCH });
        } finally {
            if (oldTz === undefined) delete process.env.TZ;
            else process.env.TZ = oldTz;
        }
        assert.equal(b.sha256, a.sha256);
        assert.ok(fs.readFileSync(a.path).equals(fs.readFileSync(b.path)));
        // and another epoch does change it
        const c = await buildEspImage({ files: layout(), emptyDirs: ["EFI/tools"], out: path.join(dir, "d3.img"), epoch: EPOCH + 3600 });
        assert.notEqual(c.sha256, a.sha256);
    });

    it("picks FAT32 from 33 MiB and FAT12/16 below; sizes the image to the contents unless given", async () => {
        const big = writeFile(src, "big.efi", bytes(40 * 1024 * 1024, 3));
        const img = await buildEspImage({ files: [{ espPath: "EFI/BOOT/BOOTX64.EFI", source: big }], out: path.join(dir, "big.img"), epoch: EPOCH });
        assert.equal(img.fatBits, 32);
        assert.ok(img.sizeMiB >= 41 && img.sizeMiB <= 44, `size ${img.sizeMiB}`);
        await run(["fsck.fat", "-n", img.path]);
        const small = await buildEspImage({ files: [{ espPath: "a.txt", source: path.join(src, "loader.conf") }], out: path.join(dir, "small.img"), epoch: EPOCH });
        assert.ok(small.fatBits === 12 || small.fatBits === 16);
        assert.equal(small.sizeMiB, 2);
        const fixed = await buildEspImage({ files: [{ espPath: "a.txt", source: path.join(src, "loader.conf") }], out: path.join(dir, "fixed.img"), epoch: EPOCH, sizeMiB: 64, volumeLabel: "EFI", volumeId: "DEADBEEF" });
        assert.equal(fixed.fatBits, 32);
        assert.equal(fixed.size, 64 * 1024 * 1024);
        assert.equal(fixed.volumeId, "deadbeef");
        fs.rmSync(big);
    });

    it("fails clearly when a fixed size is too small", async () => {
        await assert.rejects(
            buildEspImage({ files: [{ espPath: "x.bin", source: path.join(src, "uki.efi") }], out: path.join(dir, "tiny.img"), epoch: EPOCH, sizeMiB: 1 }),
            (e: Error) => e instanceof EspError && /do not fit into a 1 MiB/.test(e.message),
        );
        assert.ok(!fs.existsSync(path.join(dir, "tiny.img")));
        assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes(".tmp-")), []);
    });

    it("computes sizes like AuroraBoot, with room for clusters and the FATs", () => {
        assert.equal(espSizeMiB([], 0), 2);
        const uki = 150 * 1024 * 1024;
        const n = espSizeMiB([uki, 1024 * 1024, 100, 2060, 2060, 2060], 8);
        const aurora = Math.ceil((uki + 1024 * 1024 + 6280 + 14 * 32 + 0.02 * (uki + 1024 * 1024 + 6280) + 512 * 1024 + 6 * 2048) / (1024 * 1024)) + 1;
        assert.ok(n >= aurora && n <= aurora + 4, `${n} vs ${aurora}`);
    });

    it("checks paths, duplicates (case-insensitively), labels, ids and epochs", async () => {
        const f = path.join(src, "loader.conf");
        assert.throws(() => planEsp([{ espPath: "/EFI/x", source: f }]), /relative/);
        assert.throws(() => planEsp([{ espPath: "EFI/../x", source: f }]), /"\."/);
        assert.throws(() => planEsp([{ espPath: "EFI/a*b", source: f }]), /cannot store/);
        assert.throws(() => planEsp([{ espPath: "EFI/a.", source: f }]), /trailing/);
        assert.throws(() => planEsp([{ espPath: "EFI/x", source: "rel/file" }]), /absolute/);
        assert.throws(() => planEsp([{ espPath: "EFI/BOOT/X.EFI", source: f }, { espPath: "efi/boot/x.efi", source: f }]), /case-insensitive/);
        assert.throws(() => planEsp([{ espPath: "EFI/BOOT", source: f }, { espPath: "EFI/BOOT/X.EFI", source: f }]), /file but is also needed as a directory|directory but is also given as a file/);
        assert.throws(() => planEsp([{ espPath: "EFI/x", source: f }], ["efi"]), /case-insensitive/);
        assert.deepEqual(planEsp([{ espPath: "b/c/d", source: f }, { espPath: "a", source: f }], ["b/e", "b"]).dirs, ["b", "b/c", "b/e"]);
        const out = path.join(dir, "bad.img");
        await assert.rejects(buildEspImage({ files: [], out, epoch: EPOCH, volumeLabel: "lower" }), /volume label/);
        await assert.rejects(buildEspImage({ files: [], out, epoch: EPOCH, volumeLabel: "TWELVE_CHARS" }), /volume label/);
        await assert.rejects(buildEspImage({ files: [], out, epoch: EPOCH, volumeId: "xyz" }), /8 hex digits/);
        await assert.rejects(buildEspImage({ files: [], out, epoch: 0 }), /1980/);
        await assert.rejects(buildEspImage({ files: [{ espPath: "x", source: src }], out, epoch: EPOCH }), /not a regular file/);
        await assert.rejects(buildEspImage({ files: [{ espPath: "x", source: path.join(src, "missing") }], out, epoch: EPOCH }), /not readable/);
        // the default serial follows the file list, not the build
        assert.equal(defaultVolumeId("L", 1, [{ espPath: "a", size: 1 }, { espPath: "b", size: 2 }]), defaultVolumeId("L", 1, [{ espPath: "b", size: 2 }, { espPath: "a", size: 1 }]));
        assert.notEqual(defaultVolumeId("L", 1, [{ espPath: "a", size: 1 }]), defaultVolumeId("L", 1, [{ espPath: "a", size: 2 }]));
    });
});

// Builds UEFI ISOs with the real xorriso and checks them with xorriso's reports and with other readers
// (blkid, sfdisk, mtools at the partition offset): layout, label, El Torito, the GPT ESP entry that
// points into the ISO tree (ESP stored once), and byte-for-byte determinism.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { buildEspImage, listEsp } from "../../../provider/toolkit/boot/esp";
import {
    ESP_TYPE_GUID,
    IsoError,
    buildIso,
    graftPoint,
    guidFromXorriso,
    inspectIso,
    isoTimestamp,
    listIso,
    normalizeIsoPath,
    unquoteXorriso,
} from "../../../provider/toolkit/boot/iso";

const EPOCH = 1700000000;
const MT = { MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null" };

interface SfdiskJson {
    partitiontable: { label: string; id: string; partitions: Array<{ node: string; start: number; size: number; type: string; name?: string }> };
}

function writeFile(file: string, content: string | Buffer, mode = 0o644, mtime?: number): string {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    fs.chmodSync(file, mode);
    if (mtime !== undefined) fs.utimesSync(file, mtime, mtime);
    return file;
}

describe("toolkit/iso: UEFI ISO with xorriso, hybrid GPT", function () {
    this.timeout(120000);
    let dir: string;
    let espImage: string;
    let overlay: string;

    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-iso-test-"));
        const src = path.join(dir, "src");
        const boot = writeFile(path.join(src, "boot.efi"), Buffer.alloc(200 * 1024, 7));
        const conf = writeFile(path.join(src, "loader.conf"), "timeout 0\n");
        espImage = path.join(dir, "esp.img");
        await buildEspImage({
            files: [
                { espPath: "EFI/BOOT/BOOTX64.EFI", source: boot },
                { espPath: "loader/loader.conf", source: conf },
            ],
            out: espImage,
            epoch: EPOCH,
        });
        overlay = path.join(dir, "overlay");
        writeFile(path.join(overlay, "config.yaml"), "#cloud-config\n", 0o600, 1111111111);
        writeFile(path.join(overlay, "ext", "a=b.raw"), Buffer.alloc(5000, 1), 0o640, 1222222222);
        writeFile(path.join(overlay, "ext", "sub", "x.txt"), "x\n", 0o755);
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    function rootFiles(base = overlay) {
        return [
            { isoPath: "config.yaml", source: path.join(base, "config.yaml") },
            { isoPath: "/var/lib/kairos/extensions", source: path.join(base, "ext") },
        ];
    }

    it("puts /efiboot.img and the overlay in the ISO root, labelled UKI_ISO_INSTALL, with a UEFI El Torito entry", async () => {
        const iso = await buildIso({ espImage, rootFiles: rootFiles(), out: path.join(dir, "a.iso"), epoch: EPOCH });
        assert.equal(iso.volumeId, "UKI_ISO_INSTALL");
        assert.equal(iso.size, fs.statSync(iso.path).size);
        assert.deepEqual(await listIso(iso.path), [
            "boot.catalog",
            "config.yaml",
            "efiboot.img",
            "var/lib/kairos/extensions/a=b.raw",
            "var/lib/kairos/extensions/sub/x.txt",
        ]);
        assert.ok((await listIso(iso.path, { dirs: true })).includes("var/lib/kairos/extensions/sub/"));
        const info = await inspectIso(iso.path);
        assert.equal(info.volumeId, "UKI_ISO_INSTALL");
        assert.equal(info.elTorito.length, 1);
        assert.deepEqual(info.elTorito[0], { index: 1, platform: "UEFI", bootable: true, emulation: "none", lba: iso.esp.offset / 2048, path: "/efiboot.img" });
        // another reader: blkid sees an iso9660 with that label (by-label is how immucore finds the medium) and a GPT
        const blkid = await run(["blkid", "-p", "-o", "export", iso.path]);
        assert.match(blkid.stdout, /^LABEL=UKI_ISO_INSTALL$/m);
        assert.match(blkid.stdout, /^TYPE=iso9660$/m);
        assert.match(blkid.stdout, /^PTTYPE=gpt$/m);
        // the ESP image in the tree is byte-identical to the input (immucore loop-mounts it)
        const extracted = path.join(dir, "extracted.img");
        await run(["xorriso", "-osirrox", "on", "-indev", iso.path, "-extract", "/efiboot.img", extracted]);
        assert.ok(fs.readFileSync(extracted).equals(fs.readFileSync(espImage)));
        // Rock Ridge attributes are normalised: owner 0, no host modes
        const ls = await run(["xorriso", "-indev", iso.path, "-lsdl", "/config.yaml", "/var/lib/kairos/extensions/sub/x.txt"]);
        assert.match(ls.stdout, /-r--r--r--\s+1 0\s+0\s+\d+ Nov 14\s+2023 '\/config.yaml'/);
        assert.match(ls.stdout, /-r-xr-xr-x\s+1 0\s+0\s+\d+ Nov 14\s+2023 '\/var\/lib\/kairos\/extensions\/sub\/x.txt'/);
    });

    it("is a hybrid disk image: a real GPT whose ESP entry is the efiboot.img inside the ISO (stored once)", async () => {
        const iso = await buildIso({ espImage, out: path.join(dir, "h.iso"), epoch: EPOCH });
        const espSize = fs.statSync(espImage).size;
        assert.deepEqual(iso.esp.size, espSize);
        // sfdisk (util-linux) reads the table independently of xorriso
        const table = JSON.parse((await run(["sfdisk", "--json", iso.path])).stdout) as SfdiskJson;
        assert.equal(table.partitiontable.label, "gpt");
        const esps = table.partitiontable.partitions.filter((p) => p.type.toLowerCase() === ESP_TYPE_GUID);
        assert.equal(esps.length, 1);
        assert.equal(esps[0].start * 512, iso.esp.offset);
        assert.equal(esps[0].size * 512, espSize);
        // no partition overlaps another
        const parts = [...table.partitiontable.partitions].sort((a, b) => a.start - b.start);
        for (let i = 1; i < parts.length; i++) assert.ok(parts[i - 1].start + parts[i - 1].size <= parts[i].start, `${parts[i - 1].node} overlaps ${parts[i].node}`);
        // the partition's bytes are the FAT image, and mtools can read the filesystem at that offset
        const fd = fs.openSync(iso.path, "r");
        const buf = Buffer.alloc(espSize);
        fs.readSync(fd, buf, 0, espSize, iso.esp.offset);
        fs.closeSync(fd);
        assert.ok(buf.equals(fs.readFileSync(espImage)));
        const mdir = await run(["mdir", "-i", `${iso.path}@@${iso.esp.offset}`, "-/", "-b", "::/"], { env: MT });
        assert.match(mdir.stdout, /::\/EFI\/BOOT\/BOOTX64.EFI/);
        // ESP stored once: the ISO is the ESP plus a small overhead, not twice the ESP
        assert.ok(iso.size < espSize + 1024 * 1024, `iso ${iso.size} vs esp ${espSize}`);
        // protective MBR
        const info = await inspectIso(iso.path);
        assert.match(info.systemArea, /GPT/);
        assert.deepEqual(info.mbr.map((m) => m.type), ["0xee"]);
        assert.equal(info.gpt.find((p) => p.type === ESP_TYPE_GUID)?.path, "/efiboot.img");
        assert.equal(await listEsp(`${iso.path}@@${iso.esp.offset}`).then((l) => l.length), 2);
    });

    it("without hybrid it is AuroraBoot's plain El Torito ISO (no MBR/GPT)", async () => {
        const iso = await buildIso({ espImage, out: path.join(dir, "plain.iso"), epoch: EPOCH, hybrid: false });
        const info = await inspectIso(iso.path);
        assert.equal(info.gpt.length, 0);
        assert.equal(info.mbr.length, 0);
        assert.equal(info.elTorito[0]?.platform, "UEFI");
        await assert.rejects(run(["sfdisk", "--json", iso.path]));
    });

    it("is deterministic: same sha256 despite other mtimes, modes, input order and build time", async () => {
        const a = await buildIso({ espImage, rootFiles: rootFiles(), out: path.join(dir, "d1.iso"), epoch: EPOCH });
        const overlay2 = path.join(dir, "overlay2");
        fs.cpSync(overlay, overlay2, { recursive: true });
        fs.chmodSync(path.join(overlay2, "config.yaml"), 0o644);
        for (const f of ["config.yaml", "ext/a=b.raw", "ext/sub/x.txt", "ext/sub", "ext"]) fs.utimesSync(path.join(overlay2, f), 1600000000, 1600000000);
        const esp2 = path.join(dir, "esp-copy.img");
        fs.copyFileSync(espImage, esp2);
        await new Promise((r) => setTimeout(r, 1100));
        const b = await buildIso({ espImage: esp2, rootFiles: rootFiles(overlay2).reverse(), out: path.join(dir, "d2.iso"), epoch: EPOCH });
        assert.equal(b.sha256, a.sha256);
        assert.ok(fs.readFileSync(a.path).equals(fs.readFileSync(b.path)));
        const c = await buildIso({ espImage, rootFiles: rootFiles(), out: path.join(dir, "d3.iso"), epoch: EPOCH + 1 });
        assert.notEqual(c.sha256, a.sha256);
        const pvd = await run(["xorriso", "-indev", a.path, "-pvd_info"]);
        assert.match(pvd.stdout, /Creation Time: 2023111422132000/);
        assert.match(pvd.stdout, /Modif\. Time\s*: 2023111422132000/);
    });

    it("checks paths, sources and the volume id", async () => {
        const out = path.join(dir, "bad.iso");
        await assert.rejects(buildIso({ espImage, out, epoch: EPOCH, volumeId: "lower" }), IsoError);
        await assert.rejects(buildIso({ espImage: "rel.img", out, epoch: EPOCH }), /absolute/);
        await assert.rejects(buildIso({ espImage: path.join(dir, "missing.img"), out, epoch: EPOCH }), /not readable/);
        await assert.rejects(buildIso({ espImage, rootFiles: [{ isoPath: "efiboot.img", source: espImage }], out, epoch: EPOCH }), /reserved/);
        await assert.rejects(buildIso({ espImage, rootFiles: [{ isoPath: "a/../b", source: espImage }], out, epoch: EPOCH }), /"\."/);
        await assert.rejects(
            buildIso({ espImage, rootFiles: [{ isoPath: "a", source: espImage }, { isoPath: "/a/", source: espImage }], out, epoch: EPOCH }),
            /given twice/,
        );
        await assert.rejects(
            buildIso({ espImage, rootFiles: [{ isoPath: "a", source: overlay }, { isoPath: "a/b", source: espImage }], out, epoch: EPOCH }),
            /lies inside/,
        );
        assert.ok(!fs.existsSync(out));
    });

    it("has correct small helpers", () => {
        assert.equal(normalizeIsoPath("a/b/"), "/a/b");
        assert.equal(graftPoint("/a=b", "/x\\y=z"), "/a\\=b=/x\\\\y\\=z");
        assert.equal(isoTimestamp(EPOCH), "2023111422132000");
        assert.equal(unquoteXorriso(`'/it'"'"'s a=b.txt'`), "/it's a=b.txt");
        assert.equal(guidFromXorriso("28732ac11ff8d211ba4b00a0c93ec93b"), ESP_TYPE_GUID);
    });
});

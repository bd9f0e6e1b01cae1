// End-to-end boot smoke test of the boot media steps: a signed boot chain assembled by hand here
// (keys -> .auth, the test OS via an OCI layout -> cpio initrd -> UKI with objcopy -> sbsign), put
// into an ESP image (esp.ts) and a hybrid ISO (iso.ts), then booted under QEMU/OVMF with SMM Secure
// Boot from a blank VARS store: systemd-boot enrols the keys from loader/keys/auto, the firmware then
// enforces Secure Boot, and the test OS reports sb=enabled. Once as a CD and once as a raw disk, plus
// a second boot with a vTPM and a refusal of an unsigned UKI. Pure TCG; each boot takes ~10-20 s.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { buildEspImage, EspFile } from "../../provider/toolkit/esp";
import { buildIso, IsoImage } from "../../provider/toolkit/iso";
import { openImage } from "../../provider/toolkit/oci-image";
import { extractImage } from "../../provider/toolkit/layer-extract";
import { treeDigest } from "../../provider/toolkit/tree-digest";
import { makeCertificate } from "../helpers/pki";
import { TEST_OS_MARKER, buildTestOsRootfs, packTestOsImage } from "../helpers/test-os";
import { BootResult, bootMedia, freshVars } from "../helpers/qemu";

const EPOCH = 1700000000;
const OWNER_GUID = "5e1c7d2a-3b4f-4c6e-9a8b-0d1e2f3a4b5c";
const AUTH_TIME = "2023-11-14 22:13:20";
// AuroraBoot's UkiCmdline + install-mode: console=tty1 comes last, so the marker must reach ttyS0 directly.
const CMDLINE =
    "console=ttyS0 console=tty1 net.ifnames=1 rd.immucore.oemlabel=COS_OEM rd.immucore.oemtimeout=2 rd.immucore.uki selinux=0 panic=5 rd.shell=0 systemd.crash_reboot=yes install-mode";
const STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const SDBOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
const BOOT_TIMEOUT_MS = 150000;

/** The ISO root directories the UKI step skips (AuroraBoot: sys run dev tmp proc). */
const SKIPPED_TOP = new Set(["dev", "proc", "sys", "run", "tmp"]);

/** newc cpio of `tree` in byte order, owners 0, times 0 (cpio --reproducible), zstd-compressed. */
async function makeInitrd(tree: string, out: string): Promise<void> {
    const names: string[] = [];
    const walk = (rel: string) => {
        for (const n of fs.readdirSync(path.join(tree, rel)).sort()) {
            const r = rel ? `${rel}/${n}` : n;
            names.push(r);
            if (fs.lstatSync(path.join(tree, r)).isDirectory()) walk(r);
        }
    };
    walk("");
    const cpio = `${out}.cpio`;
    await run(["cpio", "--quiet", "-o", "-H", "newc", "--owner", "0:0", "--reproducible", "-O", cpio], { cwd: tree, input: names.join("\n") + "\n" });
    await run(["zstd", "-q", "-f", "-19", "-o", out, cpio]);
    fs.rmSync(cpio);
}

/** objcopy the sections onto the stub at page-aligned addresses after its last section (probe §3). */
async function makeUki(out: string, sections: Array<[string, string]>): Promise<void> {
    const { stdout } = await run(["objdump", "-h", STUB]);
    let end = 0;
    for (const m of stdout.matchAll(/^\s*\d+\s+\.\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s/gm)) end = Math.max(end, parseInt(m[1], 16) + parseInt(m[2], 16));
    const align = (x: number) => Math.ceil(x / 0x1000) * 0x1000;
    let next = align(end);
    const args: string[] = [];
    for (const [name, file] of sections) {
        args.push("--add-section", `${name}=${file}`, "--change-section-vma", `${name}=0x${next.toString(16)}`, "--set-section-flags", `${name}=data,readonly`);
        next = align(next + fs.statSync(file).size);
    }
    await run(["objcopy", ...args, STUB, out]);
}

describe("boot smoke: signed UKI in esp.ts + iso.ts media boots under OVMF Secure Boot", function () {
    this.timeout(BOOT_TIMEOUT_MS + 60000);
    let dir: string;
    let rootfs: string;
    let tree: string;
    let iso: IsoImage;
    let badIso: IsoImage;
    let enrolledVars: string | undefined;
    let measured: { linux: string; osrel: string; cmdline: string; initrd: string };
    const results: Record<string, BootResult> = {};

    before(async function () {
        this.timeout(300000);
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-boot-"));
        // 1. the test OS, through an OCI image layout and the provider's own image reader/extractor
        rootfs = path.join(dir, "rootfs");
        await buildTestOsRootfs(rootfs);
        const layout = path.join(dir, "oci");
        await packTestOsImage(rootfs, layout);
        tree = path.join(dir, "tree");
        await extractImage(await openImage(layout), tree, { mode: "all" });

        // 2. keys: PK, KEK, db and their .auth files (efitools, as in the probe)
        const keys = path.join(dir, "keys");
        fs.mkdirSync(keys);
        const pk = await makeCertificate(keys, "PK");
        const kek = await makeCertificate(keys, "KEK");
        const db = await makeCertificate(keys, "db");
        const auth: Record<string, string> = {};
        for (const [name, signer, cert] of [["PK", pk, pk], ["KEK", pk, kek], ["db", kek, db]] as const) {
            const esl = path.join(keys, `${name}.esl`);
            auth[name] = path.join(keys, `${name}.auth`);
            await run(["cert-to-efi-sig-list", "-g", OWNER_GUID, cert.certificate, esl]);
            await run(["sign-efi-sig-list", "-t", AUTH_TIME, "-g", OWNER_GUID, "-k", signer.key, "-c", signer.certificate, name, esl, auth[name]], { env: { TZ: "UTC" } });
        }

        // 3. the UKI, as AuroraBoot's build-uki does it: /init -> /usr/bin/immucore, kernel from /boot/vmlinuz, /boot dropped
        const kernelName = fs.readlinkSync(path.join(tree, "boot/vmlinuz"));
        const work = path.join(dir, "uki");
        fs.mkdirSync(work);
        const kernel = path.join(work, "vmlinuz");
        fs.copyFileSync(path.join(tree, "boot", path.basename(kernelName)), kernel);
        const initrdTree = path.join(work, "initrd-tree");
        fs.mkdirSync(initrdTree);
        for (const n of fs.readdirSync(tree)) {
            if (n === "boot" || SKIPPED_TOP.has(n)) continue;
            fs.cpSync(path.join(tree, n), path.join(initrdTree, n), { recursive: true, verbatimSymlinks: true });
        }
        fs.symlinkSync("/usr/bin/immucore", path.join(initrdTree, "init"));
        const initrd = path.join(work, "initrd.zst");
        await makeInitrd(initrdTree, initrd);
        const cmdline = path.join(work, "cmdline");
        fs.writeFileSync(cmdline, CMDLINE);
        measured = { linux: kernel, osrel: path.join(tree, "etc/os-release"), cmdline, initrd };
        const unsigned = path.join(work, "norole.unsigned.efi");
        await makeUki(unsigned, [[".osrel", path.join(tree, "etc/os-release")], [".cmdline", cmdline], [".initrd", initrd], [".linux", kernel]]);
        const uki = path.join(work, "norole.efi");
        await run(["sbsign", "--key", db.key, "--cert", db.certificate, "--output", uki, unsigned]);
        const sdboot = path.join(work, "BOOTX64.EFI");
        await run(["sbsign", "--key", db.key, "--cert", db.certificate, "--output", sdboot, SDBOOT]);
        await run(["sbverify", "--cert", db.certificate, uki]);
        const loaderConf = path.join(work, "loader.conf");
        fs.writeFileSync(loaderConf, "timeout 0\nsecure-boot-enroll force\n"); // 252: off|manual|force, no if-safe
        const entry = path.join(work, "norole.conf");
        fs.writeFileSync(entry, "title Kairos test OS\nefi /EFI/kairos/norole.efi\n");

        // 4. ESP (AuroraBoot's layout) + hybrid ISO; and a second ISO whose UKI is unsigned
        const espFiles = (ukiFile: string): EspFile[] => [
            { espPath: "EFI/BOOT/BOOTX64.EFI", source: sdboot },
            { espPath: "EFI/kairos/norole.efi", source: ukiFile },
            { espPath: "loader/loader.conf", source: loaderConf },
            { espPath: "loader/entries/norole.conf", source: entry },
            ...["PK", "KEK", "db"].map((k) => ({ espPath: `loader/keys/auto/${k}.auth`, source: auth[k] })),
        ];
        const emptyDirs = ["EFI/tools", "loader/keys"];
        const readme = path.join(work, "README.txt");
        fs.writeFileSync(readme, "Kairos test OS installation medium\n");
        // 40 MiB: FAT32, as real (>33 MiB) UKIs get; the refusal ISO below stays small (FAT12), so the
        // firmware and systemd-boot read both kinds of image mformat makes.
        const esp = await buildEspImage({ files: espFiles(uki), emptyDirs, out: path.join(dir, "efiboot.img"), epoch: EPOCH, sizeMiB: 40 });
        assert.equal(esp.fatBits, 32);
        iso = await buildIso({ espImage: esp.path, rootFiles: [{ isoPath: "README.txt", source: readme }], out: path.join(dir, "kairos.iso"), epoch: EPOCH });
        const badEsp = await buildEspImage({ files: espFiles(unsigned), emptyDirs, out: path.join(dir, "bad-efiboot.img"), epoch: EPOCH });
        assert.ok(badEsp.fatBits !== 32);
        badIso = await buildIso({ espImage: badEsp.path, out: path.join(dir, "bad.iso"), epoch: EPOCH });
        console.log(`      media: UKI ${fs.statSync(uki).size} B, ESP ${esp.sizeMiB} MiB FAT${esp.fatBits}, ISO ${iso.size} B`);
    });

    after(() => {
        const summary = Object.entries(results).map(([k, r]) => `${k}: booted=${r.booted} enrolled=${r.enrolled} denied=${r.accessDenied} ${r.seconds}s`);
        if (summary.length) console.log(`      boot times: ${summary.join("; ")}`);
        const marker = Object.values(results).find((r) => r.markerLine)?.markerLine;
        if (marker) console.log(`      marker: ${marker}`);
        if (dir && !process.env.KEEP_BOOT_TEST) fs.rmSync(dir, { recursive: true, force: true });
    });

    function explain(r: BootResult): string {
        return `booted=${r.booted} enrolled=${r.enrolled} accessDenied=${r.accessDenied} timedOut=${r.timedOut} after ${r.seconds}s\n--- serial (tail) ---\n${r.log.slice(-4000)}`;
    }

    it("the OCI layout of the test OS extracts to the same tree (modes, symlinks, empty dirs)", async () => {
        assert.equal(await treeDigest(tree), await treeDigest(rootfs));
        assert.equal(fs.readlinkSync(path.join(tree, "boot/vmlinuz")).startsWith("vmlinuz-"), true);
        assert.equal(fs.statSync(path.join(tree, "usr/bin/immucore")).mode & 0o777, 0o755);
        assert.match(fs.readFileSync(path.join(tree, "etc/kairos-release"), "utf8"), /^KAIROS_RELEASE="v0.0.0-test"$/m);
    });

    it("boots as a CD from a blank VARS store: sd-boot enrols the keys, then the signed UKI boots with Secure Boot on", async () => {
        const vars = freshVars(path.join(dir, "vars-cd"));
        const r = await bootMedia({ media: iso.path, as: "cdrom", vars, timeoutMs: BOOT_TIMEOUT_MS, marker: TEST_OS_MARKER });
        results.cdrom = r;
        assert.ok(r.booted, explain(r));
        assert.ok(r.enrolled, explain(r));
        assert.equal(r.fields?.sb, "enabled", explain(r));
        assert.equal(r.fields?.pcr11, "none");
        assert.equal(r.fields?.cmdline, CMDLINE);
        assert.match(r.log, /EFI stub: UEFI Secure Boot is enabled/);
        assert.equal(r.log.split("\n").filter((l) => l.includes(TEST_OS_MARKER) && l.includes("sb=")).length, 1, "exactly one marker line");
        // the keys now live in the VARS file
        const varsBytes = fs.readFileSync(vars);
        for (const cn of ["PK", "KEK", "db"]) assert.ok(varsBytes.includes(Buffer.from(cn)), `${cn} not in VARS`);
        enrolledVars = vars;
    });

    it("boots the same file written raw to a disk (hybrid GPT ESP), also enrolling from a blank VARS store", async () => {
        const vars = freshVars(path.join(dir, "vars-disk"));
        const r = await bootMedia({ media: iso.path, as: "disk", vars, timeoutMs: BOOT_TIMEOUT_MS, marker: TEST_OS_MARKER });
        results.disk = r;
        assert.ok(r.booted, explain(r));
        assert.ok(r.enrolled, explain(r));
        assert.equal(r.fields?.sb, "enabled", explain(r));
        assert.doesNotMatch(r.log, /DVD-ROM/);
    });

    it("boots again with the enrolled VARS and a vTPM: no enrolment, PCR 11 measured", async function () {
        if (!enrolledVars) this.skip();
        const r = await bootMedia({ media: iso.path, as: "cdrom", vars: enrolledVars!, tpm: true, timeoutMs: BOOT_TIMEOUT_MS, marker: TEST_OS_MARKER });
        results.cdromEnrolledTpm = r;
        assert.ok(r.booted, explain(r));
        assert.equal(r.enrolled, false, explain(r));
        assert.equal(r.fields?.sb, "enabled");
        assert.match(r.fields?.pcr11 ?? "", /^[0-9a-f]{64}$/, explain(r));
        // the value the stub measured is what systemd-measure predicts from the section files
        const predicted = await run([
            "/usr/lib/systemd/systemd-measure", "calculate", `--linux=${measured.linux}`, `--osrel=${measured.osrel}`,
            `--cmdline=${measured.cmdline}`, `--initrd=${measured.initrd}`, "--bank=sha256", "--phase=", "--json=short",
        ]);
        assert.equal(r.fields?.pcr11, (JSON.parse(predicted.stdout) as { sha256: Array<{ hash: string }> }).sha256[0].hash);
    });

    it("refuses an unsigned UKI once the keys are enrolled (Access Denied, no marker)", async function () {
        if (!enrolledVars) this.skip();
        const vars = path.join(dir, "vars-enrolled-copy.fd");
        fs.copyFileSync(enrolledVars!, vars);
        const r = await bootMedia({ media: badIso.path, as: "cdrom", vars, timeoutMs: 90000, marker: TEST_OS_MARKER });
        results.unsignedRefused = r;
        assert.equal(r.booted, false, explain(r));
        assert.ok(r.accessDenied, explain(r));
        assert.match(r.log, /Error loading \\EFI\\kairos\\norole\.efi: Access Denied/);
    });
});

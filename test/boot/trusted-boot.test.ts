// The real thing, end to end through the resource handlers: SigningKeys, two SystemExtensions,
// KairosUkiImage from the test OS (an OCI image built from Debian packages) and BootMedia, booted in
// QEMU/OVMF with SMM Secure Boot. Blank VARS: systemd-boot enrols the keys, resets, the signed UKI
// boots. Enrolled VARS: an unsigned UKI, one signed by another key and one with a changed .cmdline
// byte are refused. With a vTPM, PCR 11 in the guest equals the predicted value. Pure TCG, ~15 s a boot.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { signingKeysHandler } from "../../provider/signing-keys";
import { systemExtensionHandler } from "../../provider/system-extension";
import { kairosUkiImageHandler } from "../../provider/kairos-uki-image";
import { bootMediaHandler } from "../../provider/boot-media";
import { readPeSections } from "../../provider/toolkit/boot/pe";
import { buildEspImage } from "../../provider/toolkit/boot/esp";
import { ISO_ESP_NAME, buildIso } from "../../provider/toolkit/boot/iso";
import { renderLoaderConf } from "../../provider/toolkit/boot/boot-entries";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/engine";
import { createVia } from "../helpers/handlers";
import { makeCertificate } from "../helpers/pki";
import { TEST_OS_MARKER, buildTestOsRootfs, packTestOsImage } from "../helpers/test-os";
import { bootMedia, freshVars } from "../helpers/qemu";

const BOOT_TIMEOUT_MS = 120000;

describe("trusted boot in firmware: keys + extensions + UKI + ISO under OVMF Secure Boot", function () {
    this.timeout(BOOT_TIMEOUT_MS + 60000);
    let work: string;
    let keys: any;
    let uki: any;
    let media: any;
    let enrolledVars: string;
    const ext: any[] = [];

    /**
     * The media again, with norole.efi replaced by `efi` (for the refusal cases). BootMedia itself refuses
     * to put such a UKI on media (asserted here), so the forged medium is assembled with the toolkit's own
     * ESP and ISO writers, as an attacker with a copy of the tools would: the firmware is the last line.
     */
    async function mediaWith(label: string, efi: string): Promise<string> {
        const dir = path.join(work, `neg-${label}`);
        fs.mkdirSync(dir, { recursive: true });
        const copy = path.join(dir, "norole.efi");
        fs.copyFileSync(efi, copy);
        const enrollKeys = { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth };
        const { failures } = await bootMediaHandler.check({}, {
            name: `neg-${label}`, outputDir: path.join(work, "media"), timeout: 0, secureBootEnroll: "force",
            uki: { efiFiles: [copy], loaderEntries: uki.ukis.map((u: any) => u.entryPath), systemdBoot: uki.systemdBoot.path }, enrollKeys,
        });
        assert.deepEqual((failures ?? []).map((f: { property: string }) => f.property), ["uki.efiFiles[0]"], `BootMedia refuses the ${label} UKI`);
        const loaderConf = path.join(dir, "loader.conf");
        fs.writeFileSync(loaderConf, renderLoaderConf({ timeout: 0, secureBootEnroll: "force" }));
        const esp = await buildEspImage({
            out: path.join(dir, ISO_ESP_NAME), epoch: 315532800, emptyDirs: ["EFI/tools", "loader/keys"],
            files: [
                { espPath: "EFI/BOOT/BOOTX64.EFI", source: path.resolve(uki.systemdBoot.path) },
                { espPath: "EFI/kairos/norole.efi", source: copy },
                { espPath: "loader/loader.conf", source: loaderConf },
                ...uki.ukis.map((u: any) => ({ espPath: `loader/entries/${path.basename(u.entryPath)}`, source: path.resolve(u.entryPath) })),
                ...(["PK", "KEK", "db"] as const).map((k) => ({ espPath: `loader/keys/auto/${k}.auth`, source: path.resolve(enrollKeys[k]) })),
            ],
        });
        const iso = path.join(dir, `neg-${label}.iso`);
        await buildIso({ espImage: esp.path, out: iso, epoch: 315532800 });
        return iso;
    }

    before(async function () {
        this.timeout(600000);
        work = tempDir("trusted-boot");
        keys = await createVia(signingKeysHandler, { name: "boot-test", outputDir: path.join(work, "keys") });
        const signing = { key: keys.files.db.key, certificate: keys.files.db.pem };
        for (const name of ["tools", "extras"]) {
            const src = path.join(work, "src", name, "usr", "bin");
            fs.mkdirSync(src, { recursive: true });
            fs.writeFileSync(path.join(src, name), `${name}\n`, { mode: 0o755 });
            ext.push(await createVia(systemExtensionHandler, { name, outputDir: path.join(work, "extensions"), source: { dir: path.dirname(path.dirname(src)) }, signing }));
        }
        const rootfs = path.join(work, "test-os");
        await buildTestOsRootfs(rootfs);
        const layout = path.join(work, "test-os.oci");
        await packTestOsImage(rootfs, layout);
        uki = await createVia(kairosUkiImageHandler, { outputDir: path.join(work, "uki"), source: { ociLayout: layout }, signing, pcrKey: keys.tpmPcrKeyFile });
        media = await createVia(bootMediaHandler, {
            name: "kairos-test", outputDir: path.join(work, "media"), timeout: 0, secureBootEnroll: "force",
            uki: { efiFiles: uki.ukis.map((u: any) => u.path), loaderEntries: uki.ukis.map((u: any) => u.entryPath), systemdBoot: uki.systemdBoot.path },
            enrollKeys: { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth },
            extensions: ext.map((e) => e.path),
        });
    });

    it("lays the ISO out as Kairos expects", () => {
        for (const f of ["efiboot.img:EFI/BOOT/BOOTX64.EFI", "efiboot.img:EFI/kairos/norole.efi", "efiboot.img:loader/loader.conf", "efiboot.img:loader/entries/norole.conf",
            "efiboot.img:loader/keys/auto/PK.auth", "efiboot.img:loader/keys/auto/KEK.auth", "efiboot.img:loader/keys/auto/db.auth", "efiboot.img", "tools.sysext.raw", "extras.sysext.raw"]) {
            assert.ok(media.files.includes(f), `${f} in ${JSON.stringify(media.files)}`);
        }
        assert.equal(uki.stubOrigin, "image", "the stub comes from the OS image");
        assert.equal(uki.entryKey, "efi", "systemd-boot 252 needs the efi key");
    });

    it("from a blank key store: systemd-boot enrols the keys, resets, and the signed UKI boots with Secure Boot on", async () => {
        enrolledVars = freshVars(path.join(work, "vars"));
        const r = await bootMedia({ media: media.path, as: "cdrom", vars: enrolledVars, timeoutMs: BOOT_TIMEOUT_MS, marker: TEST_OS_MARKER });
        assert.ok(r.enrolled, "keys enrolled from loader/keys/auto");
        assert.ok(r.booted, `marker seen\n${r.log.slice(-3000)}`);
        assert.equal(r.fields?.sb, "enabled");
        assert.match(r.fields!.cmdline, /rd\.immucore\.uki .*install-mode/);
        console.log(`      cdrom boot with enrolment: ${r.seconds.toFixed(1)} s`);
    });

    it("boots the same ISO written raw to a disk (hybrid GPT)", async () => {
        const r = await bootMedia({ media: media.path, as: "disk", vars: freshVars(path.join(work, "vars-disk")), timeoutMs: BOOT_TIMEOUT_MS, marker: TEST_OS_MARKER });
        assert.ok(r.booted && r.fields?.sb === "enabled", r.log.slice(-3000));
        console.log(`      disk boot with enrolment: ${r.seconds.toFixed(1)} s`);
    });

    it("with a vTPM, PCR 11 read in the guest equals the prediction", async () => {
        const r = await bootMedia({ media: media.path, as: "cdrom", vars: enrolledVars, tpm: true, timeoutMs: BOOT_TIMEOUT_MS, marker: TEST_OS_MARKER });
        assert.ok(r.booted, r.log.slice(-3000));
        assert.ok(!r.enrolled, "keys were already enrolled");
        const predicted: Record<string, string> = uki.pcr11.norole;
        // The test OS runs before systemd could extend any boot phase: the stub-only value applies.
        const stubOnly = predicted.stub;
        assert.ok(stubOnly, `a stub-only prediction among ${Object.keys(predicted).join(", ")}`);
        assert.equal(r.fields!.pcr11.toLowerCase(), stubOnly.toLowerCase());
        console.log(`      boot with vTPM (enrolled): ${r.seconds.toFixed(1)} s`);
    });

    describe("with the keys enrolled, the firmware refuses", () => {
        async function refused(label: string, efi: string) {
            const r = await bootMedia({ media: await mediaWith(label, efi), as: "cdrom", vars: enrolledVars, timeoutMs: BOOT_TIMEOUT_MS, marker: TEST_OS_MARKER });
            assert.ok(!r.booted, `${label} must not boot`);
            assert.ok(r.accessDenied, `${label}: "Access Denied" expected\n${r.log.slice(-2000)}`);
        }

        it("an unsigned UKI", async () => {
            const unsigned = path.join(work, "unsigned.efi");
            fs.copyFileSync(uki.ukis[0].path, unsigned);
            await run(["sbattach", "--remove", unsigned]);
            const list = await run(["sbverify", "--list", unsigned], { okCodes: [0, 1] });
            assert.match(list.stdout + list.stderr, /No signature table present/);
            await refused("unsigned", unsigned);
        });

        it("a UKI signed by a key that is not in db", async () => {
            const rogue = await makeCertificate(work, "rogue-db");
            const stripped = path.join(work, "stripped.efi");
            fs.copyFileSync(uki.ukis[0].path, stripped);
            await run(["sbattach", "--remove", stripped]);
            const resigned = path.join(work, "rogue.efi");
            await run(["sbsign", "--key", rogue.key, "--cert", rogue.certificate, "--output", resigned, stripped]);
            await refused("rogue", resigned);
        });

        it("a signed UKI with one byte of .cmdline changed", async () => {
            const tampered = path.join(work, "tampered.efi");
            fs.copyFileSync(uki.ukis[0].path, tampered);
            const cmdline = readPeSections(tampered).sections.find((s) => s.name === ".cmdline")!;
            const fd = fs.openSync(tampered, "r+");
            const b = Buffer.alloc(1);
            fs.readSync(fd, b, 0, 1, cmdline.pointerToRawData);
            b[0] = b[0] === 0x63 ? 0x64 : 0x63;
            fs.writeSync(fd, b, 0, 1, cmdline.pointerToRawData);
            fs.closeSync(fd);
            await refused("tampered", tampered);
        });
    });
});

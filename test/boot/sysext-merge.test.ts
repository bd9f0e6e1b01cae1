// The product's central claim, in firmware and a booted system: the systemd test OS (Debian trixie,
// systemd 257 as PID 1 from the UKI's initrd-rootfs, kernel 6.12) boots from our ISO under OVMF
// Secure Boot from a blank key store; systemd-stub hands it the k3s extension from the ESP and
// measures it into PCR 13; systemd-sysext merges it with the signed-only image policy after the
// kernel checked its root-hash signature against the firmware's db (the .platform keyring); the
// cloud-config's boot stage starts k3s.service from the extension. In the same boot the guest tries
// three forged k3s images from the ISO, each in a merge of its own: signed by a foreign key, unsigned,
// and a copy of the real one with one flipped byte of data. One boot, ~2-3 min under TCG.
import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { signingKeysHandler } from "../../provider/signing-keys";
import { systemExtensionHandler } from "../../provider/system-extension";
import { kairosUkiImageHandler } from "../../provider/kairos-uki-image";
import { bootMediaHandler } from "../../provider/boot-media";
import { readPartitionTable } from "../../provider/toolkit/ddi";
import { measuredSectionsForStub } from "../../provider/toolkit/uki";
import { SYSTEMD_257_MEASURED_SECTIONS } from "../../provider/toolkit/pcr11";
import { tempDir } from "../helpers/engine";
import { createVia } from "../helpers/handlers";
import { bootMedia, freshVars } from "../helpers/qemu";
import {
    REFUSALS_ISO_DIR, SYSTEMD_REPORT_END, SYSTEMD_TEST_OS_CMDLINE, buildK3sStandin, buildSystemdTestOsRootfs, parseSystemdReport, systemdTestOsBase,
} from "../../scripts/lib/systemd-test-os";
import { DEMO_CLOUD_CONFIG } from "../../examples/offline-demo/payloads";

const BOOT_TIMEOUT_MS = 480000;
/** The forged k3s; its digest must never show up among the files the guest reads. */
const EVIL_K3S = "#!/bin/sh\necho pwned\n";
const EVIL_SHA256 = crypto.createHash("sha256").update(EVIL_K3S).digest("hex");
const REPO = path.resolve(__dirname, "..", "..");

/** A copy of `image` with one byte flipped in the middle of its erofs filesystem's blocks (file data). */
async function flipDataByte(image: string, out: string): Promise<number> {
    const { partitions } = await readPartitionTable(image);
    const bytes = fs.readFileSync(image);
    const sb = partitions.root.offset + 1024;
    const fsBytes = bytes.readUInt32LE(sb + 36) * 2 ** bytes.readUInt8(sb + 12); // erofs blocks × block size
    const at = partitions.root.offset + Math.floor(fsBytes / 2);
    bytes[at] ^= 0x01;
    fs.writeFileSync(out, bytes);
    return at;
}

describe("a booted systemd OS merges the signed k3s extension and refuses forged ones (OVMF Secure Boot, vTPM)", function () {
    this.timeout(BOOT_TIMEOUT_MS + 120000);
    let work: string;
    let keys: any;
    let k3s: any;
    let uki: any;
    let media: any;
    let report: NonNullable<ReturnType<typeof parseSystemdReport>>;
    let bootSeconds = 0;

    before(async function () {
        this.timeout(900000);
        work = tempDir("sysext-merge");
        keys = await createVia(signingKeysHandler, { name: "merge-test", outputDir: path.join(work, "keys") });
        const foreign = await createVia(signingKeysHandler, { name: "attacker", outputDir: path.join(work, "foreign-keys") });
        const db = { key: keys.files.db.key, certificate: keys.files.db.pem };

        // k3s as the blog lays it out, from the example's Dockerfile-equivalent tree
        const src = path.join(work, "src", "k3s");
        await buildK3sStandin(path.join(src, "usr/local/bin/k3s"));
        fs.mkdirSync(path.join(src, "usr/local/lib/systemd/system"), { recursive: true });
        fs.copyFileSync(path.join(REPO, "examples/k3s-sysext/k3s.service"), path.join(src, "usr/local/lib/systemd/system/k3s.service"));
        k3s = await createVia(systemExtensionHandler, { name: "k3s", outputDir: path.join(work, "extensions"), source: { dir: src }, signing: db, release: { reloadManager: true } });

        // forgeries, each named k3s.sysext.raw (what an attacker would drop in), in folders of their own
        const evil = path.join(work, "src", "evil");
        fs.mkdirSync(path.join(evil, "usr/local/bin"), { recursive: true });
        fs.writeFileSync(path.join(evil, "usr/local/bin/k3s"), EVIL_K3S, { mode: 0o755 });
        const refusal = (kind: string) => path.join(work, "refusals", kind);
        const foreignSigned = await createVia(systemExtensionHandler, { name: "k3s", outputDir: refusal("foreign"), source: { dir: evil }, signing: { key: foreign.files.db.key, certificate: foreign.files.db.pem } });
        const unsigned = await createVia(systemExtensionHandler, { name: "k3s", outputDir: refusal("unsigned"), source: { dir: evil } });
        fs.mkdirSync(refusal("flipped"), { recursive: true });
        await flipDataByte(k3s.path, path.join(refusal("flipped"), "k3s.sysext.raw"));

        const rootfs = path.join(work, "os");
        await buildSystemdTestOsRootfs(rootfs);
        uki = await createVia(kairosUkiImageHandler, {
            outputDir: path.join(work, "uki"), source: { dir: rootfs }, signing: db, pcrKey: keys.tpmPcrKeyFile,
            extendCmdline: SYSTEMD_TEST_OS_CMDLINE, initrdCompressionLevel: 3,
        });
        const cloudConfig = path.join(work, "cloud-config.yaml");
        fs.writeFileSync(cloudConfig, DEMO_CLOUD_CONFIG);
        media = await createVia(bootMediaHandler, {
            name: "merge-test", outputDir: path.join(work, "media"), timeout: 0,
            uki: { efiFiles: uki.ukis.map((u: any) => u.path), loaderEntries: uki.ukis.map((u: any) => u.entryPath), systemdBoot: uki.systemdBoot.path },
            enrollKeys: { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth },
            extensions: [k3s.path],
            cloudConfig,
            overlayFiles: [
                { source: foreignSigned.path, path: `${REFUSALS_ISO_DIR}/foreign/k3s.sysext.raw` },
                { source: unsigned.path, path: `${REFUSALS_ISO_DIR}/unsigned/k3s.sysext.raw` },
                { source: path.join(refusal("flipped"), "k3s.sysext.raw"), path: `${REFUSALS_ISO_DIR}/flipped/k3s.sysext.raw` },
            ],
        });
        const logFile = path.join(work, "serial.log");
        const boot = await bootMedia({
            media: media.path, as: "cdrom", vars: freshVars(path.join(work, "vars")), tpm: true, timeoutMs: BOOT_TIMEOUT_MS,
            endMarker: SYSTEMD_REPORT_END, memoryMB: 1536, logFile,
        });
        bootSeconds = boot.seconds;
        const parsed = parseSystemdReport(boot.log);
        if (parsed) fs.writeFileSync(path.join(work, "report.json"), JSON.stringify(parsed, null, 2)); // KEEP_TEST_DIRS=1 keeps it
        assert.ok(boot.booted && parsed, `no report from the guest (timed out: ${boot.timedOut}); serial log in ${logFile}:\n${boot.log.slice(-4000)}`);
        report = parsed;
        console.log(`      (boot to report: ${bootSeconds} s; UKI ${(uki.ukis[0].size / 1e6).toFixed(1)} MB; ISO ${(media.size / 1e6).toFixed(1)} MB)`);
    });

    it("the UKI is built on the OS image's own systemd-stub 257, whose PCR 11 list has .uname and .sbat", async () => {
        assert.equal(uki.stubOrigin, "image");
        const stub = path.join(await systemdTestOsBase(), "usr/lib/systemd/boot/efi/linuxx64.efi.stub");
        assert.deepEqual(measuredSectionsForStub(stub), SYSTEMD_257_MEASURED_SECTIONS);
    });

    it("puts the extension next to the UKI on the ESP and at the ISO root", () => {
        assert.ok(media.files.includes("efiboot.img:EFI/kairos/norole.efi.extra.d/k3s.sysext.raw"), JSON.stringify(media.files));
        assert.ok(media.files.includes("k3s.sysext.raw"));
    });

    it("boots with Secure Boot enforced; the kernel holds our db certificate in .platform", () => {
        assert.equal(report.facts.sb, "enabled");
        assert.match(report.sections["keyctl show %:.platform"], /merge-test-db/);
    });

    it("systemd-sysext merged k3s with the signed-only policy, verified by the kernel's keyring", () => {
        assert.equal(report.facts["sysext-service"], "active");
        assert.match(report.sections["systemd-sysext status"], /\/usr\s+k3s/);
        assert.match(report.sections["ls /usr/local/bin /usr/local/lib/systemd/system"], /k3s\.service/);
        // the kernel checked the root-hash signature (dm-verity's signature key description is set)
        assert.match(report.sections["dmsetup table"], /verity .*root_hash_sig_key_desc/);
        assert.match(report.sections["dmsetup table"], new RegExp(k3s.rootHash));
    });

    it("the cloud-config boot stage started k3s.service from the extension", () => {
        assert.equal(report.facts["boot-stage"], "active");
        assert.equal(report.facts["boot-stage-commands"], "2");
        assert.equal(report.facts["boot-stage-failed"], "0");
        assert.equal(report.facts["service k3s"], "active/enabled");
        assert.match(report.sections["k3s --version"], /k3s version v1\.31\.2\+k3s1 \(pulumi-kairos stand-in\)/);
    });

    it("PCR 11 in the guest equals the stub-257 prediction (.uname and .sbat measured; no initrd phases in this boot)", () => {
        // systemd runs in system mode from the initrd-rootfs, so no enter-initrd/leave-initrd phase is
        // measured, and systemd-pcrphase leaves PCR 11 at the stub's value here.
        assert.equal(report.facts.pcr11, uki.pcr11.norole.stub);
    });

    it("PCR 13 in the guest equals BootMedia's prediction", () => {
        assert.deepEqual(media.pcr13.extensions, ["k3s.sysext.raw"]);
        assert.notEqual(media.pcr13.sha256, "0".repeat(64));
        assert.equal(report.facts.pcr13, media.pcr13.sha256);
    });

    it("refuses k3s signed by a foreign key: the kernel finds no key for the signature; nothing of it appears", () => {
        const t = report.sections["trial foreign"];
        assert.ok(t, JSON.stringify(Object.keys(report.sections)));
        assert.match(t, /merge-exit=[1-9]/);
        assert.match(t, /kernel: .*verity: Root hash verification failed \(-ENOKEY\)/);
        assert.match(t, /files-read=0\n/);
        assert.ok(!t.includes(EVIL_SHA256));
    });

    it("refuses an unsigned k3s: it does not match the image policy; nothing of it appears", () => {
        const t = report.sections["trial unsigned"];
        assert.match(t, /merge-exit=[1-9]/);
        assert.match(t, /merge: .*does not match image policy/i);
        assert.match(t, /files-read=0\n/);
        assert.ok(!t.includes(EVIL_SHA256));
    });

    it("refuses a k3s with one flipped data byte: verity fails the read, nothing forged is served", () => {
        const t = report.sections["trial flipped"];
        // the signature is over the root hash, which still matches: the merge succeeds, the data does not
        assert.match(t, /merge-exit=0/);
        assert.match(t, /read-errors=[1-9]/);
        assert.match(t, /read: \/usr\/local\/bin\/k3s \n/); // no digest: the read failed
        assert.match(t, /kernel: .*device-mapper: verity: .*data block \d+ is corrupted/);
    });

    it("after the trials the boot's extension set merges again", () => {
        assert.match(report.sections.restored, /refresh-exit=0/);
        assert.match(report.sections.restored, /\/usr\s+k3s/);
    });
});

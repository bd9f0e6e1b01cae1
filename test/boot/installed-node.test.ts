// The seed's story to its end, in firmware and booted systems: our ISO installs the systemd test OS
// (Debian trixie, systemd 257, kernel 6.12, Kairos' stand-ins) onto a blank virtual disk, then the
// disk alone boots under OVMF Secure Boot with the keys the first boot enrolled and the same vTPM:
// the persistent partition (LUKS2) opens with the TPM under the UKI's signed PCR 11 policy, the
// extensions move from the ESP to /var/lib/kairos/extensions, pass systemd-dissect --validate and
// merge over Kairos' hierarchy list (the seed's `systemd-sysext status` table), and the boot stage
// starts k3s. On that boot the guest also tries extensions signed by db, KEK, PK, a foreign key, none,
// and a tampered copy, each in a merge of its own. Then the active UKI is swapped on the disk for one
// with another pcrKey (same db key, so it boots: the TPM must refuse the disk). Three boots, ~1-3 min
// each under TCG. A UKI with a changed command line and our pcrKey opening the disk is proven where an
// OS upgrade installs one (node-updates.test.ts).
import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { signingKeysHandler } from "../../provider/signing-keys";
import { systemExtensionHandler } from "../../provider/system-extension";
import { kairosUkiImageHandler } from "../../provider/kairos-uki-image";
import { bootMediaHandler } from "../../provider/boot-media";
import { readPartitionTable } from "../../provider/toolkit/sysext/ddi-verify";
import { measuredSectionsForStub } from "../../provider/toolkit/boot/uki";
import { SYSTEMD_257_MEASURED_SECTIONS } from "../../provider/toolkit/boot/pcr11";
import { tempDir } from "../helpers/engine";
import { createVia } from "../helpers/handlers";
import { SystemdReport, VirtualNode } from "../../scripts/lib/virtual-node";
import { listOnEsp, replaceOnEsp } from "../helpers/esp-on-disk";
import {
    REFUSALS_ISO_DIR, SYSTEMD_TEST_OS_CMDLINE, buildK3sStandin, buildSystemdTestOsRootfs, systemdTestOsBase,
} from "../../scripts/lib/systemd-test-os";
import { DEMO_CLOUD_CONFIG } from "../../examples/offline-demo/payloads";

const BOOT_TIMEOUT_MS = 480000;
/** The forged k3s; its digest must never show up among the files the guest reads. */
const EVIL_K3S = "#!/bin/sh\necho pwned\n";
const EVIL_SHA256 = crypto.createHash("sha256").update(EVIL_K3S).digest("hex");
/** What the KEK- and PK-signed trial images carry: Kairos trusts both, so these must be served. */
const keyHolderK3s = (who: string) => `#!/bin/sh\necho signed by ${who}\n`;
const sha256 = (text: string) => crypto.createHash("sha256").update(text).digest("hex");
const REPO = path.resolve(__dirname, "..", "..");
/** The seed's table (its per-directory rows come from Kairos' hierarchy list). */
const SEED_TABLE = [
    ["/usr/local/bin", "k3s"], ["/usr/local/sbin", "none"], ["/usr/local/include", "none"], ["/usr/local/lib", "k3s"],
    ["/usr/local/share", "none"], ["/usr/local/src", "none"], ["/usr/bin", "none"], ["/usr/share", "none"],
    ["/usr/lib", "k3s"], ["/usr/include", "none"], ["/usr/src", "none"], ["/usr/sbin", "none"],
];

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

/** `ls -l[R] DIR…` output as DIR -> its lines: a "/path:" line starts each listing, blank lines or not. */
function listings(text: string): Record<string, string> {
    const out: Record<string, string[]> = {};
    let current: string[] | undefined;
    for (const line of text.split("\n")) {
        const head = line.match(/^(\/\S*):$/);
        if (head) out[head[1].replace(/\/$/, "")] = current = [];
        else if (line.trim() !== "" && current) current.push(line);
    }
    return Object.fromEntries(Object.entries(out).map(([dir, lines]) => [dir, lines.join("\n")]));
}

describe("an installed node: our ISO installs to a disk that boots under Secure Boot, unlocks with the signed PCR policy and merges k3s (OVMF, vTPM)", function () {
    this.timeout(BOOT_TIMEOUT_MS + 120000);
    let work: string;
    let keys: any;
    let k3s: any;
    let rootfs: string;
    let uki: any;
    let media: any;
    let node: VirtualNode;
    let live: SystemdReport;
    let installed: SystemdReport;

    /** Boots the ISO (with the disk attached) or the disk alone, on this test's node, and parses the report. */
    async function boot(label: string, o: { iso?: string }): Promise<SystemdReport> {
        const { boot: result, report, logFile } = await node.boot(label, { ...o, timeoutMs: BOOT_TIMEOUT_MS });
        if (report) fs.writeFileSync(path.join(work, `report-${label}.json`), JSON.stringify(report, null, 2)); // KEEP_TEST_DIRS=1 keeps it
        assert.ok(report, `${label}: no report from the guest (timed out: ${result.timedOut}); serial log in ${logFile}:\n${result.log.slice(-4000)}`);
        console.log(`      (${label}: boot to report ${result.seconds} s)`);
        return report;
    }

    /** A UKI of the same OS, signed by our db key, with other options; its norole.efi file. */
    async function otherUki(dir: string, extra: Record<string, unknown>): Promise<any> {
        return createVia(kairosUkiImageHandler, {
            outputDir: path.join(work, dir), source: { dir: rootfs }, signing: { key: keys.files.db.key, certificate: keys.files.db.pem }, pcrKey: keys.tpmPcrKeyFile,
            extendCmdline: SYSTEMD_TEST_OS_CMDLINE, initrdCompressionLevel: 3, ...extra,
        });
    }

    before(async function () {
        this.timeout(2 * BOOT_TIMEOUT_MS + 900000);
        work = tempDir("installed-node");
        keys = await createVia(signingKeysHandler, { name: "node-test", outputDir: path.join(work, "keys") });
        const foreign = await createVia(signingKeysHandler, { name: "attacker", outputDir: path.join(work, "foreign-keys") });
        const as = (set: any, role: "PK" | "KEK" | "db") => ({ key: set.files[role].key, certificate: set.files[role].pem });

        // k3s as the blog lays it out, from the example's Dockerfile-equivalent tree
        const src = path.join(work, "src", "k3s");
        await buildK3sStandin(path.join(src, "usr/local/bin/k3s"));
        fs.mkdirSync(path.join(src, "usr/local/lib/systemd/system"), { recursive: true });
        fs.copyFileSync(path.join(REPO, "examples/k3s-sysext/k3s.service"), path.join(src, "usr/local/lib/systemd/system/k3s.service"));
        k3s = await createVia(systemExtensionHandler, { name: "k3s", outputDir: path.join(work, "extensions"), source: { dir: src }, signing: as(keys, "db"), release: { reloadManager: true } });

        // trial images, each named k3s.sysext.raw (what would be dropped in), in folders of their own
        const tree = (name: string, content: string) => {
            const dir = path.join(work, "src", name);
            fs.mkdirSync(path.join(dir, "usr/local/bin"), { recursive: true });
            fs.writeFileSync(path.join(dir, "usr/local/bin/k3s"), content, { mode: 0o755 });
            return dir;
        };
        const trial = (kind: string) => path.join(work, "refusals", kind);
        const trials: Record<string, string> = {};
        for (const role of ["KEK", "PK"] as const) {
            trials[role.toLowerCase()] = (await createVia(systemExtensionHandler, { name: "k3s", outputDir: trial(role.toLowerCase()), source: { dir: tree(role, keyHolderK3s(role)) }, signing: as(keys, role) })).path;
        }
        const evil = tree("evil", EVIL_K3S);
        trials.foreign = (await createVia(systemExtensionHandler, { name: "k3s", outputDir: trial("foreign"), source: { dir: evil }, signing: as(foreign, "db") })).path;
        trials.unsigned = (await createVia(systemExtensionHandler, { name: "k3s", outputDir: trial("unsigned"), source: { dir: evil } })).path;
        fs.mkdirSync(trial("flipped"), { recursive: true });
        trials.flipped = path.join(trial("flipped"), "k3s.sysext.raw");
        await flipDataByte(k3s.path, trials.flipped);

        rootfs = path.join(work, "os");
        await buildSystemdTestOsRootfs(rootfs);
        uki = await otherUki("uki", {});
        const cloudConfig = path.join(work, "cloud-config.yaml");
        fs.writeFileSync(cloudConfig, DEMO_CLOUD_CONFIG);
        media = await createVia(bootMediaHandler, {
            name: "node-test", outputDir: path.join(work, "media"), timeout: 0,
            uki: uki.bootFiles,
            enrollKeys: { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth },
            extensions: [k3s.path],
            cloudConfig,
            overlayFiles: Object.entries(trials).map(([kind, source]) => ({ source, path: `${REFUSALS_ISO_DIR}/${kind}/k3s.sysext.raw` })),
        });

        node = new VirtualNode(path.join(work, "node"));
        live = await boot("live install", { iso: media.path });
        assert.equal(live.facts["install-exit"], "0", `the installer failed:\n${live.sections.install}`);
        installed = await boot("installed", {});
        console.log(`      (UKI ${(uki.ukis[0].size / 1e6).toFixed(1)} MB; ISO ${(media.size / 1e6).toFixed(1)} MB)`);
    });

    it("the UKI is built on the OS image's own systemd-stub 257, whose PCR 11 list has .uname and .sbat", async () => {
        assert.equal(uki.stubOrigin, "image");
        const stub = path.join(await systemdTestOsBase(), "usr/lib/systemd/boot/efi/linuxx64.efi.stub");
        assert.deepEqual(measuredSectionsForStub(stub), SYSTEMD_257_MEASURED_SECTIONS);
    });

    describe("the live boot installs", () => {
        it("boots the ISO with Secure Boot enforced from a blank key store (systemd-boot enrolled our keys)", () => {
            assert.equal(live.facts.sb, "enabled");
            assert.equal(live.facts.mode, "live");
        });

        it("partitions the disk: an ESP and a persistent partition", () => {
            assert.match(live.sections.disk, /label: gpt/);
            assert.match(live.sections.disk, /^\/dev\/vda1 : .*type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=[0-9A-F-]+, name="efi"$/m);
            assert.match(live.sections.disk, /^\/dev\/vda2 : .*type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=[0-9A-F-]+, name="persistent"$/m);
        });

        it("encrypts the persistent partition and enrols only the TPM, bound to our signed policy for PCR 11", () => {
            const dump = live.sections["cryptsetup luksDump"];
            assert.match(dump, /systemd-tpm2/);
            assert.match(dump, /tpm2-pubkey-pcrs:\s+11/);
            assert.match(dump, /tpm2-hash-pcrs:\s*\n/); // nothing bound directly (Kairos' default)
            assert.doesNotMatch(dump, /^\s+0: luks2/m); // the installer's one-time slot is gone
        });

        it("writes systemd-boot, the UKI as active and passive with Kairos' entries, and the extension beside each", () => {
            assert.match(live.sections.install, /entry active: title [^;]*;.*\/EFI\/kairos\/active\.efi.*sort-key 0001/);
            assert.match(live.sections.install, /entry passive: title [^;]* \(fallback\);.*\/EFI\/kairos\/passive\.efi.*sort-key 0002/);
            assert.match(live.sections.install, /kairos-install: done/);
        });
    });

    describe("the installed disk boots alone", () => {
        it("boots the active entry with Secure Boot enforced, from the keys the first boot enrolled", () => {
            assert.equal(installed.facts.sb, "enabled");
            assert.equal(installed.facts.mode, "installed");
            assert.equal(installed.facts.profile, "active");
        });

        it("the TPM opened the persistent partition with the UKI's signed PCR 11 policy, no passphrase, in the enter-initrd phase", () => {
            assert.equal(installed.facts.unlock, "unlocked", installed.sections.unlock);
            assert.equal(installed.facts["pcr11-at-unlock"], uki.pcr11.norole["enter-initrd"]);
            assert.match(installed.facts.persistent, /\/dev\/mapper\/persistent/);
        });

        it("PCR 11 walked the four phases the .pcrsig signs (enter-initrd, leave-initrd, sysinit, ready)", () => {
            assert.equal(installed.facts.pcr11, uki.pcr11.norole["enter-initrd:leave-initrd:sysinit:ready"]);
        });

        it("PCR 13: the stub measured the ESP's active.efi.extra.d extension as BootMedia predicted", () => {
            assert.equal(installed.facts.pcr13, media.pcr13.sha256);
        });

        it("the firmware's PK, KEK and db certificates are in /run/verity.d", () => {
            assert.equal(installed.facts["verity-certs"], "DB0.crt KEK0.crt PK0.crt");
        });

        it("first boot moved the extension from the ESP to /var/lib/kairos/extensions, validated and linked it", () => {
            const ls = listings(installed.sections.extensions);
            assert.match(ls["/var/lib/kairos/extensions"], /^-rw-r--r-- .* k3s\.sysext\.raw$/m);
            for (const profile of ["active", "passive"]) {
                assert.match(ls[`/var/lib/kairos/extensions/${profile}`], /k3s\.sysext\.raw -> \/var\/lib\/kairos\/extensions\/k3s\.sysext\.raw$/m, profile);
                // gone from the ESP
                assert.match(ls[`/efi/EFI/kairos/${profile}.efi.extra.d`], /^total 0$/m, JSON.stringify(ls));
                assert.doesNotMatch(ls[`/efi/EFI/kairos/${profile}.efi.extra.d`], /\.raw/);
            }
            assert.match(ls["/run/extensions"], /k3s\.sysext\.raw -> \/var\/lib\/kairos\/extensions\/k3s\.sysext\.raw$/m);
            assert.match(installed.sections["journal: kairos-stage-extensions"], /migrated k3s\.sysext\.raw for active[^]*validated and linked k3s\.sysext\.raw into \/run\/extensions/);
        });

        it("`systemd-sysext status` in a root login shell prints the seed's table", () => {
            const table = installed.sections["systemd-sysext status"];
            for (const [hierarchy, ext] of SEED_TABLE) assert.match(table, new RegExp(`^${hierarchy.replace(/\//g, "\\/")}\\s+${ext}\\s`, "m"), `${hierarchy} ${ext}\n${table}`);
        });

        it("the kernel verified the db-signed k3s against the firmware's db (its .platform keyring)", () => {
            assert.match(installed.sections["keyctl show %:.platform"], /node-test-db/);
            assert.match(installed.sections["dmsetup table"], /verity .*root_hash_sig_key_desc/);
        });

        it("the boot stage of the kept cloud-config enabled and started k3s", () => {
            assert.equal(installed.facts["boot-stage-commands"], "2");
            assert.equal(installed.facts["boot-stage-failed"], "0");
            assert.equal(installed.facts["service k3s"], "active/enabled");
            assert.match(installed.sections["systemctl status k3s"], /Active: active \(running\)/);
            assert.match(installed.sections["k3s --version"], /k3s version v1\.31\.2\+k3s1 \(pulumi-kairos stand-in\)/);
        });
    });

    describe("the trials on the installed node (Kairos trusts PK, KEK and db)", () => {
        const t = (name: string) => {
            const s = installed.sections[`trial ${name}`];
            assert.ok(s, JSON.stringify(Object.keys(installed.sections)));
            return s;
        };
        for (const role of ["KEK", "PK"]) {
            it(`merges a k3s signed by ${role}: the kernel lacks the key, userspace verifies it against /run/verity.d`, () => {
                const s = t(role.toLowerCase());
                assert.match(s, /kernel: .*verity: Root hash verification failed \(-ENOKEY\)/);
                assert.match(s, /merge-exit=0/);
                assert.match(s, /merge: Using extensions 'k3s\.sysext\.raw'/);
                // the trial's device has no kernel signature check: userspace did it
                assert.match(s, /dmsetup: loop\d+p1-verity: .* sha256 [0-9a-f]{64} [0-9a-f]{64}\n/);
                assert.match(s, new RegExp(`read: /usr/local/bin/k3s ${sha256(keyHolderK3s(role))}`));
                assert.match(s, /read-errors=0/);
            });
        }

        it("refuses k3s signed by a foreign key; nothing of it appears", () => {
            const s = t("foreign");
            assert.match(s, /kernel: .*verity: Root hash verification failed \(-ENOKEY\)/);
            assert.match(s, /merge-exit=[1-9]/);
            assert.match(s, /merge: Failed to merge hierarchies/);
            assert.match(s, /files-read=0\n/);
            assert.ok(!s.includes(EVIL_SHA256));
        });

        it("refuses an unsigned k3s: it does not match the image policy; nothing of it appears", () => {
            const s = t("unsigned");
            assert.match(s, /merge-exit=[1-9]/);
            assert.match(s, /merge: .*does not match image policy/i);
            assert.match(s, /files-read=0\n/);
            assert.ok(!s.includes(EVIL_SHA256));
        });

        it("a k3s with one flipped data byte: verity fails the read, nothing forged is served", () => {
            const s = t("flipped");
            // the signature is over the root hash, which still matches: the merge succeeds, the data does not
            assert.match(s, /merge-exit=0/);
            assert.match(s, /read-errors=[1-9]/);
            assert.match(s, /read: \/usr\/local\/bin\/k3s \n/); // no digest: the read failed
            assert.match(s, /kernel: .*device-mapper: verity: .*data block \d+ is corrupted/);
        });

        it("after the trials the boot's extension set merges again", () => {
            assert.match(installed.sections.restored, /refresh-exit=0/);
            assert.match(installed.sections.restored, /\/usr\/local\/bin\s+k3s/);
        });
    });

    // A UKI with another command line and our pcrKey opening the disk is proven where an OS upgrade
    // installs one (test/boot/node-updates.test.ts); here, the UKI the TPM must refuse.
    describe("the TPM and a UKI with another pcrKey", () => {
        let foreignPcr: SystemdReport;

        before(async function () {
            this.timeout(BOOT_TIMEOUT_MS + 300000);
            const foreign = await createVia(signingKeysHandler, { name: "other-pcr", outputDir: path.join(work, "other-pcr-keys") });
            const otherPcrUki = await otherUki("uki-other-pcrkey", { pcrKey: foreign.tpmPcrKeyFile });
            await replaceOnEsp(node.disk, "EFI/kairos/active.efi", otherPcrUki.ukis[0].path);
            foreignPcr = await boot("other pcrKey", {});
        });

        it("a UKI signed by our db but with another pcrKey boots, and the TPM does not open the disk", () => {
            assert.equal(foreignPcr.facts.sb, "enabled");
            assert.equal(foreignPcr.facts.unlock, "failed");
            // its .pcrsig has no signature by the key the disk was enrolled with
            assert.match(foreignPcr.sections.unlock, /Failed to unseal secret using TPM2: No such device or address/);
            assert.match(foreignPcr.sections.unlock, /No TPM2 metadata matching the current system state found in LUKS2 header/);
            assert.match(foreignPcr.sections.unlock, /kairos-persistent: unlock failed/);
            assert.equal(foreignPcr.facts["service k3s"], undefined); // no persistent partition, no extension
        });
    });
});

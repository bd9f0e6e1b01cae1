// The "Kairos-like with systemd" test OS: the trixie base that scripts/build-systemd-test-os.sh caches
// (systemd 257, trixie's signed 6.12 kernel, the verity/erofs/overlay, disk and dm-crypt modules, the
// LUKS/TPM2 and partitioning tools), plus stand-ins for the parts of Kairos that installing a
// trusted-boot node and merging signed extensions depend on. Each says in its comments which Kairos
// step it mirrors (shared/reference/kairos-day2.md); docs/installed-node.md tells the whole story.
// - /usr/bin/immucore (the UKI's /init) hands over to systemd as PID 1 in the initrd-rootfs, with no
//   switch-root and no /etc/initrd-release, as immucore ends up doing;
// - live or installed is told by the boot entry systemd-boot started (usr/lib/kairos-test/mode);
// - kairos-extract-certs (immucore ExtractCerts): PK, KEK and db certificates from efivarfs into
//   /run/verity.d, so userspace verity accepts an image signed by any of them (systemd allows it by
//   default, and this OS no longer turns it off);
// - kairos-initrd-phase / kairos-leave-initrd: PCR 11 barriers "enter-initrd" and "leave-initrd" around
//   the initrd's work, as systemd-pcrphase-initrd measures them on Kairos; systemd's own sysinit and
//   ready follow, so PCR 11 walks the four phases the UKI's .pcrsig signs;
// - kairos-persistent (kcrypt, immucore): on an installed disk, unlocks the LUKS2 persistent partition
//   with the TPM and the UKI's signed PCR 11 policy, and mounts it at /usr/local;
// - kairos-stage-extensions (immucore MigrateSysExt, EnableSysAndConfExtensions): on an installed disk,
//   moves the ESP's <profile>.efi.extra.d images to /var/lib/kairos/extensions, validates them with
//   systemd-dissect under the signed-only policy and links them into /run/extensions;
// - systemd-sysext/-confext.service with Kairos' drop-in: refresh with the strict image policy
//   (root=signed+absent:usr=signed+absent) over Kairos' hierarchy list (also in /etc/profile.d);
// - kairos-boot-stage (kairos-agent): on the live medium (label UKI_ISO_INSTALL, mounted at
//   /run/initramfs/live) a config.yaml with install.auto runs the installer stand-in
//   (usr/lib/kairos-test/install); on an installed disk it runs the `commands` of stages.boot of the
//   cloud-config kept in /oem (e.g. systemctl enable/start k3s);
// - kairos-agent (/usr/bin/kairos-agent, usr/lib/kairos-test/agent-*): the day-2 verbs, `sysext
//   install|enable|disable|remove|list` from raw OCI artifacts or a releases.json catalog, and `upgrade`
//   from AuroraBoot's OS image, with the real agent's checks and ESP rotation (kairos-day2.md §3, §4);
//   systemd-bless-boot (trixie's systemd-boot package) marks a good boot of an entry with tries left;
// - test hooks, not Kairos: with scripts/lib/qemu.ts `network`, systemd-networkd gives the virtio NIC a
//   static address; kairos-test-steps runs the shell steps the host passes by fw_cfg
//   (opt/org.pulumi-kairos/steps) after the boot stage, into the report;
// - kairos-test-report prints what the tests read on the serial port (between SYSTEMD_REPORT_BEGIN
//   and SYSTEMD_REPORT_END), on the first installed boot tries each image of the refusal trials in a
//   refresh of its own and restores the boot's extensions, then powers off.
// Those guest files live as they are installed, in scripts/lib/systemd-test-os/guest/.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { kairosRelease, osRelease } from "./test-os";

const REPO = path.resolve(__dirname, "../..");
export const SYSTEMD_REPORT_BEGIN = "KAIROS-SYSTEMD-REPORT-BEGIN";
export const SYSTEMD_REPORT_END = "KAIROS-SYSTEMD-REPORT-END";
/** Kernel options the systemd test OS boots with (added to the Kairos default by extendCmdline). */
export const SYSTEMD_TEST_OS_CMDLINE = "systemd.show_status=no";
/**
 * Where the installed node's report looks for images to try one by one: an ISO overlay folder that
 * the installer stand-in copies onto the persistent partition (a test hook, not a Kairos step).
 */
export const REFUSALS_ISO_DIR = "kairos-test/refusals";
/** Kairos' image policy for systemd-dissect --validate and systemd-sysext refresh (kairos PR #4444). */
export const IMAGE_POLICY = "root=signed+absent:usr=signed+absent";
/** Kairos' SYSTEMD_SYSEXT_HIERARCHIES, as the seed's `systemd-sysext status` shows it (kairos-init 99_sysext.yaml). */
export const SYSEXT_HIERARCHIES = [
    "/usr/local/bin", "/usr/local/sbin", "/usr/local/include", "/usr/local/lib", "/usr/local/share", "/usr/local/src",
    "/usr/bin", "/usr/share", "/usr/lib", "/usr/include", "/usr/src", "/usr/sbin",
];
/** A cloud-config key block that makes the live medium install itself (kairos-agent's install.auto). */
export function autoInstallConfig(device = "/dev/vda"): string {
    return `install:\n  auto: true\n  device: ${device}\n`;
}

let basePromise: Promise<string> | undefined;

/** The cached trixie base rootfs; runs the (idempotent) build script when the cache has none. */
export function systemdTestOsBase(): Promise<string> {
    basePromise ??= (async () => {
        const dir = (await run(["bash", path.join(REPO, "scripts/build-systemd-test-os.sh")], { timeoutMs: 1200000 })).stdout.trim().split("\n").pop()!;
        if (!dir || !fs.existsSync(path.join(dir, "usr/lib/systemd/systemd"))) throw new Error(`no systemd test OS at "${dir}"; run scripts/build-systemd-test-os.sh (or npm run setup)`);
        return dir;
    })();
    basePromise.catch(() => (basePromise = undefined));
    return basePromise;
}

/** The guest's own files (scripts/lib/systemd-test-os/guest/, installed at the same paths). */
const GUEST_DIR = path.join(__dirname, "systemd-test-os", "guest");

/** @NAME@ placeholders in the guest files, so the host and the guest share one value of each. */
function placeholders(): Record<string, string> {
    return { REPORT_BEGIN: SYSTEMD_REPORT_BEGIN, REPORT_END: SYSTEMD_REPORT_END, IMAGE_POLICY, SYSEXT_HIERARCHIES: SYSEXT_HIERARCHIES.join(":") };
}

/** A guest file's text with its placeholders filled in. */
export function guestFile(rel: string): string {
    const text = fs.readFileSync(path.join(GUEST_DIR, rel), "utf8");
    const values = placeholders();
    return text.replace(/@([A-Z_]+)@/g, (whole, name: string) => {
        if (!(name in values)) throw new Error(`${rel}: unknown placeholder ${whole}`);
        return values[name];
    });
}

/** Relative paths of every guest file, sorted. */
export function guestFiles(rel = ""): string[] {
    return fs.readdirSync(path.join(GUEST_DIR, rel), { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? guestFiles(path.join(rel, e.name)) : [path.join(rel, e.name)]))
        .sort();
}

/** The awk program of the boot-stage stand-in (it prints one command per line from a cloud-config). */
export function bootStageAwkProgram(): string {
    const script = guestFile("usr/lib/kairos-test/boot-stage");
    const start = script.indexOf("awk '") + "awk '".length;
    return script.slice(start, script.indexOf("' \"$CONFIG\"", start));
}

/** unit -> target whose .wants/ links it (what `systemctl enable` would do). */
const ENABLED: Record<string, string> = {
    "kairos-extract-certs.service": "sysinit.target",
    "kairos-initrd-phase.service": "sysinit.target",
    "kairos-persistent.service": "sysinit.target",
    "kairos-leave-initrd.service": "sysinit.target",
    "kairos-stage-extensions.service": "sysinit.target",
    "systemd-sysext.service": "sysinit.target",
    "systemd-confext.service": "sysinit.target",
    "kairos-boot-stage.service": "multi-user.target",
    "kairos-test-report.service": "multi-user.target",
    "kairos-test-steps.service": "multi-user.target",
    // the test network's static address (etc/systemd/network/10-kairos-test.network; a virtio NIC only)
    "systemd-networkd.service": "multi-user.target",
};
/**
 * Gettys on the serial port swallow the test output (a hangup); nothing logs in here. The rest are
 * first-boot and maintenance jobs that an initrd-rootfs (every boot a first boot, /etc always "older"
 * than /usr) would run every time, for nothing the tests read: under TCG they cost 15-25 s a boot
 * (systemd-analyze blame: hwdb rebuild 11 s, e2scrub 2 s, catalog 1 s). logind stays: systemctl poweroff
 * goes through it, and the report's power-off is what flushes an installed disk before QEMU ends.
 */
const MASKED = [
    "serial-getty@ttyS0.service", "getty@tty1.service", "console-getty.service", "systemd-firstboot.service",
    "systemd-hwdb-update.service", "systemd-journal-catalog-update.service", "ldconfig.service", "systemd-update-done.service",
    "e2scrub_reap.service", "e2scrub_all.timer", "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
];

/**
 * What buildSystemdTestOsRootfs makes its tree from: the cached base (its folder names the layout) and
 * every guest file and unit table here. Equal fingerprints give equal trees.
 */
export async function systemdTestOsFingerprint(): Promise<string> {
    const h = crypto.createHash("sha256").update(`base ${await systemdTestOsBase()}\n`);
    h.update(JSON.stringify({ ENABLED, MASKED, kairosRelease: kairosRelease(), osRelease: osRelease() }));
    for (const rel of guestFiles()) h.update(`\0${rel}\0${fs.statSync(path.join(GUEST_DIR, rel)).mode & 0o111}\0${guestFile(rel)}`);
    return h.digest("hex");
}

/** Writes the systemd test OS into `dir` (created; must be empty or missing). */
export async function buildSystemdTestOsRootfs(dir: string): Promise<void> {
    const base = await systemdTestOsBase();
    fs.mkdirSync(dir, { recursive: true });
    if (fs.readdirSync(dir).length > 0) throw new Error(`${dir} is not empty`);
    await run(["cp", "-a", "--reflink=auto", `${base}/.`, dir], { timeoutMs: 300000 });
    fs.rmSync(path.join(dir, "etc/os-release"), { force: true }); // a symlink to ../usr/lib/os-release in Debian
    const put = (rel: string, content: string, mode: number) => {
        const file = path.join(dir, rel);
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
        fs.writeFileSync(file, content, { mode });
        fs.chmodSync(file, mode);
    };
    put("etc/kairos-release", kairosRelease(), 0o644);
    put("etc/os-release", osRelease(), 0o644);
    // executable in the repo -> executable in the guest; git keeps the bit
    for (const rel of guestFiles()) put(rel, guestFile(rel), fs.statSync(path.join(GUEST_DIR, rel)).mode & 0o111 ? 0o755 : 0o644);
    for (const [unit, target] of Object.entries(ENABLED)) {
        const wants = path.join(dir, "etc/systemd/system", `${target}.wants`);
        fs.mkdirSync(wants, { recursive: true });
        const from = fs.existsSync(path.join(dir, "etc/systemd/system", unit)) ? `/etc/systemd/system/${unit}` : `/usr/lib/systemd/system/${unit}`;
        fs.rmSync(path.join(wants, unit), { force: true });
        fs.symlinkSync(from, path.join(wants, unit));
    }
    fs.mkdirSync(path.join(dir, "var/lib/extensions.mutable"), { recursive: true });
    fs.symlinkSync("/etc", path.join(dir, "var/lib/extensions.mutable/etc"));
    for (const unit of MASKED) {
        fs.rmSync(path.join(dir, "etc/systemd/system", unit), { force: true });
        fs.symlinkSync("/dev/null", path.join(dir, "etc/systemd/system", unit));
    }
}

/** The report's sections ("facts", "systemd-sysext status", "trial NAME", …) from a serial log. */
export function parseSystemdReport(log: string): { facts: Record<string, string>; sections: Record<string, string> } | undefined {
    const begin = log.indexOf(SYSTEMD_REPORT_BEGIN);
    const end = log.indexOf(SYSTEMD_REPORT_END, begin);
    if (begin < 0 || end < 0) return undefined;
    const sections: Record<string, string> = {};
    let current = "";
    for (const line of log.slice(begin + SYSTEMD_REPORT_BEGIN.length, end).split("\n")) {
        const heading = line.match(/^### (.+)$/);
        if (heading) {
            current = heading[1].trim();
            sections[current] = "";
        } else if (current) {
            sections[current] += `${line}\n`;
        }
    }
    for (const k of Object.keys(sections)) sections[k] = sections[k].replace(/^\n+|\s+$/g, "");
    const facts: Record<string, string> = {};
    for (const line of (sections.facts ?? "").split("\n")) {
        const m = line.match(/^([^=]+)=(.*)$/);
        if (m) facts[m[1].trim()] = m[2].trim();
    }
    return { facts, sections };
}

/**
 * The k3s stand-in (examples/k3s-sysext/standin), built reproducibly into `out`; `version` replaces the
 * release it reports (`k3s --version`, and the line it answers on :6443) for update tests.
 */
export async function buildK3sStandin(out: string, version?: string): Promise<string> {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    // go build runs in the stand-in's folder: a relative output path must not be read from there.
    const tmp = `${path.resolve(out)}.tmp-${process.pid}`;
    const stamp = version ? ` -X main.version=${version}` : "";
    await run(["go", "build", "-trimpath", `-ldflags=-s -w -buildid=${stamp}`, "-o", tmp, "."], {
        cwd: path.join(REPO, "examples/k3s-sysext/standin"),
        env: { CGO_ENABLED: "0", GOTOOLCHAIN: "local", GOFLAGS: "-mod=mod" },
        timeoutMs: 300000,
    });
    // Leave an identical file alone, so the extension's tree digest (and so the demo's no-op) holds.
    if (fs.existsSync(out) && fs.readFileSync(out).equals(fs.readFileSync(tmp))) fs.rmSync(tmp);
    else fs.renameSync(tmp, out);
    fs.chmodSync(out, 0o755);
    return out;
}

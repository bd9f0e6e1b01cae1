// The "Kairos-like with systemd" test OS: the trixie base that scripts/build-systemd-test-os.sh caches
// (systemd 257, trixie's signed 6.12 kernel and the verity/erofs/overlay modules), plus the parts of a
// Kairos UKI boot that merging signed extensions depends on:
// - /usr/bin/immucore (the UKI's /init) hands over to systemd as PID 1 in the initrd-rootfs, with no
//   switch-root and no /etc/initrd-release, as immucore ends up doing;
// - kairos-stage-extensions.service (immucore's part) links what systemd-stub placed in
//   /.extra/sysext and /.extra/confext into /run/extensions and /run/confexts, because systemd-sysext
//   reads /.extra only in initrd mode;
// - systemd-sysext/-confext.service enabled with Kairos' drop-in: refresh with the strict image policy
//   (root=signed+absent:usr=signed+absent), so unsigned or foreign-signed images are refused. No
//   certificate is installed in */verity.d: only the kernel's keyring (the firmware db, .platform) can
//   vouch for an image, and the UKI's command line adds systemd.allow_userspace_verity=0;
// - kairos-boot-stage.service, a stand-in for kairos-agent's boot stage: it mounts the install medium
//   (label UKI_ISO_INSTALL) at /run/initramfs/live, as immucore does, and runs the `commands` of the
//   cloud-config's `stages.boot` entries (e.g. systemctl enable/start k3s);
// - kairos-test-report.service prints what the tests read on the serial port (between
//   SYSTEMD_REPORT_BEGIN and SYSTEMD_REPORT_END), tries every image under
//   /run/initramfs/live/kairos-test/refusals/ in a merge of its own, then powers off.
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { kairosRelease, osRelease } from "./test-os";

const REPO = path.resolve(__dirname, "../..");
export const SYSTEMD_REPORT_BEGIN = "KAIROS-SYSTEMD-REPORT-BEGIN";
export const SYSTEMD_REPORT_END = "KAIROS-SYSTEMD-REPORT-END";
/** Kernel options the systemd test OS boots with (added to the Kairos default by extendCmdline). */
export const SYSTEMD_TEST_OS_CMDLINE = "systemd.allow_userspace_verity=0 systemd.show_status=no";
/** Where the guest looks for images to try one by one (an ISO overlay folder). */
export const REFUSALS_ISO_DIR = "kairos-test/refusals";
export const IMAGE_POLICY = "root=signed+absent:usr=signed+absent";

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

const IMMUCORE = `#!/bin/sh
# Test stand-in for immucore, the UKI's /init: Kairos' immucore prepares the initrd-rootfs and then
# runs systemd in it as PID 1 (no switch-root); this one only does the last step.
exec /usr/lib/systemd/systemd "$@"
`;

const STAGE_EXTENSIONS = `#!/bin/sh
# immucore's part of the extension hand-over: systemd-stub put the ESP's <uki>.efi.extra.d images in
# /.extra; systemd-sysext reads /.extra only in an initrd, so link them where it looks in system mode.
set -eu
stage() {  # from-dir to-dir suffix
  [ -d "$1" ] || return 0
  mkdir -p "$2"
  for f in "$1"/*"$3"; do
    [ -e "$f" ] || continue
    ln -sfn "$f" "$2/\${f##*/}"
    echo "kairos-stage-extensions: staged \${f##*/} in $2"
  done
}
stage /.extra/sysext /run/extensions .sysext.raw
stage /.extra/confext /run/confexts .confext.raw
`;

const STAGE_UNIT = `[Unit]
Description=Stage the boot loader's extensions for systemd-sysext (immucore stand-in)
DefaultDependencies=no
After=local-fs.target
Before=systemd-sysext.service systemd-confext.service
ConditionPathExists=/.extra

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/kairos-test/stage-extensions

[Install]
WantedBy=sysinit.target
`;

/**
 * Kairos' 99_sysext drop-in, without its 10 s start timeout (the merge takes ~20 s under TCG). A merged
 * confext makes /etc read-only by default, and the boot stage's `systemctl enable` must still write
 * there: confexts merge with --mutable=auto, and /var/lib/extensions.mutable/etc -> /etc routes writes
 * back into the system's own /etc (systemd-sysext(8), "Mutability").
 */
function mergeDropIn(tool: "systemd-sysext" | "systemd-confext"): string {
    const args = `refresh --image-policy=${IMAGE_POLICY}${tool === "systemd-confext" ? " --mutable=auto" : ""}`;
    return `[Unit]
After=systemd-modules-load.service kairos-stage-extensions.service

[Service]
ExecStart=
ExecStart=${tool} ${args}
ExecReload=
ExecReload=${tool} ${args}
TimeoutStartSec=600
`;
}

const BOOT_STAGE = `#!/bin/sh
# Stand-in for kairos-agent's boot stage: find the install medium as immucore does (by its label),
# mount it at /run/initramfs/live and run the commands of the cloud-config's stages.boot entries.
# Only that shape of config.yaml is understood (a list of "- name/commands" items under stages.boot).
set -u
LIVE=/run/initramfs/live
DEV=/dev/disk/by-label/UKI_ISO_INSTALL
for i in $(seq 1 120); do [ -e "$DEV" ] && break; sleep 1; done
if [ ! -e "$DEV" ]; then echo "kairos-boot-stage: no medium labelled UKI_ISO_INSTALL"; exit 0; fi
mkdir -p "$LIVE"
mountpoint -q "$LIVE" || mount -o ro "$DEV" "$LIVE"
CONFIG="$LIVE/config.yaml"
[ -f "$CONFIG" ] || { echo "kairos-boot-stage: no config.yaml on the medium"; exit 0; }
awk '
  BEGIN { q = sprintf("%c", 39) }
  function indent(s) { match(s, /^ */); return RLENGTH }
  /^[ \t]*(#|$)/ { next }
  {
    i = indent($0); line = substr($0, i + 1)
    if (i == 0) { top = line; inboot = 0; incmd = 0; next }
    if (top ~ /^stages:/ && line ~ /^boot:/) { inboot = 1; bootindent = i; next }
    if (inboot && i <= bootindent) { inboot = 0; incmd = 0 }
    if (!inboot) next
    if (incmd && (i < keyindent || (i == keyindent && line !~ /^- /))) incmd = 0
    if (line ~ /^(- )?commands:/) { incmd = 1; keyindent = i + (line ~ /^- / ? 2 : 0); next }
    if (incmd && line ~ /^- /) {
      c = substr(line, 3); f = substr(c, 1, 1)
      if ((f == "\\"" || f == q) && substr(c, length(c), 1) == f) c = substr(c, 2, length(c) - 2)
      print c
    }
  }' "$CONFIG" > /run/kairos-boot-stage.commands
: > /run/kairos-boot-stage.failed
while IFS= read -r cmd; do
  echo "kairos-boot-stage: $cmd"
  sh -c "$cmd" 2>&1; rc=$?
  echo "kairos-boot-stage: exit $rc"
  [ "$rc" -eq 0 ] || echo "$cmd (exit $rc)" >> /run/kairos-boot-stage.failed
done < /run/kairos-boot-stage.commands
`;

const BOOT_STAGE_UNIT = `[Unit]
Description=Cloud-config boot stage from the install medium (kairos-agent stand-in)
After=systemd-sysext.service systemd-confext.service systemd-udevd.service systemd-udev-trigger.service
Wants=systemd-udev-trigger.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/kairos-test/boot-stage
TimeoutStartSec=600

[Install]
WantedBy=multi-user.target
`;

const REPORT = `#!/bin/sh
# Writes what the tests read to the serial port, tries each image in the medium's refusal folder in a
# merge of its own, restores the boot's extensions, then powers off.
set -u
exec > /dev/ttyS0 2>&1
# plain text for the serial log: no colours, links or UTF-8 bullets
export LC_ALL=C SYSTEMD_COLORS=0 SYSTEMD_URLIFY=0 SYSTEMD_PAGER=
POLICY='${IMAGE_POLICY}'
section() { echo; echo "### $1"; }
kmsg_mark() { dmesg | wc -l; }
kmsg_since() { dmesg | tail -n +$(( $1 + 1 )) | grep -iE 'verity|device-mapper|erofs|overlay|loop[0-9]|EIO|I/O error|corrupt' | head -n 40; }
echo "${SYSTEMD_REPORT_BEGIN}"
section facts
SB=unknown
case "$(dmesg | grep -o 'secureboot: Secure boot [a-z]*' | head -n 1)" in *enabled) SB=enabled ;; *disabled) SB=disabled ;; esac
echo "sb=$SB"
for p in 11 13; do v=$(tr A-F a-f < /sys/class/tpm/tpm0/pcr-sha256/$p 2>/dev/null); echo "pcr$p=\${v:-none}"; done
echo "systemd=$(systemctl --version | head -n 1 | awk '{print $2}')"
echo "kernel=$(uname -r)"
echo "sysext-service=$(systemctl is-active systemd-sysext.service)"
echo "boot-stage=$(systemctl is-active kairos-boot-stage.service)"
echo "boot-stage-commands=$(wc -l < /run/kairos-boot-stage.commands 2>/dev/null || echo 0)"
echo "boot-stage-failed=$(wc -l < /run/kairos-boot-stage.failed 2>/dev/null || echo 0)"
for unit in $(ls /usr/local/lib/systemd/system 2>/dev/null | grep '\\.service$'); do echo "service \${unit%.service}=$(systemctl is-active "$unit")/$(systemctl is-enabled "$unit")"; done
echo "cmdline=$(cat /proc/cmdline)"
section "systemd-sysext status"
systemd-sysext status --no-pager
section "systemd-confext status"
systemd-confext status --no-pager
section "ls /.extra/sysext /.extra/confext"
ls -l /.extra/sysext /.extra/confext 2>&1
section "ls /usr/local/bin /usr/local/lib/systemd/system"
ls -l /usr/local/bin /usr/local/lib/systemd/system 2>&1
section "extension services"
for unit in $(ls /usr/local/lib/systemd/system 2>/dev/null | grep '\\.service$'); do systemctl status --no-pager --lines=5 "$unit"; done
section "k3s --version"
/usr/local/bin/k3s --version 2>&1
section "dmsetup table"
dmsetup table 2>&1
section "keyctl show %:.platform"
keyctl show %:.platform 2>&1
section "journal: systemd-sysext kairos-stage-extensions kairos-boot-stage"
journalctl -b --no-pager -o cat -u systemd-sysext.service -u systemd-confext.service -u kairos-stage-extensions.service -u kairos-boot-stage.service 2>&1 | tail -n 40
section "kernel: verity"
dmesg | grep -iE 'verity|platform|secureboot' | head -n 30
# One folder per case, each holding an image under the name it claims (e.g. flipped/k3s.sysext.raw).
# Each is tried the way an attacker's file would be met: it alone in /run/extensions, then the same
# refresh the boot ran. Verity device sharing is off, so a forged copy of the merged image cannot borrow
# the verified device that the running k3s still holds.
tried=0
for img in /run/initramfs/live/${REFUSALS_ISO_DIR}/*/*.sysext.raw; do
  [ -e "$img" ] || continue
  tried=1
  file=\${img##*/}; case=\${img%/*}; name=\${case##*/}
  # from a clean /usr: a failed refresh keeps what was merged before, which would hide the result
  systemd-sysext unmerge > /dev/null 2>&1
  rm -f /run/extensions/*.raw
  cp "$img" "/run/extensions/$file"
  mark=$(kmsg_mark)
  section "trial $name"
  SYSTEMD_VERITY_SHARING=0 systemd-sysext refresh --image-policy="$POLICY" > /run/kairos-trial.log 2>&1
  echo "merge-exit=$?"
  sed 's/^/merge: /' /run/kairos-trial.log | head -n 20
  files=0; errors=0
  for f in $(find /usr/local -type f 2>/dev/null); do
    files=$((files + 1))
    sum=$(sha256sum "$f" 2>> /run/kairos-trial.read) || errors=$((errors + 1))
    echo "read: $f \${sum%% *}"
  done
  echo "files-read=$files"
  echo "read-errors=$errors"
  sed 's/^/read: /' /run/kairos-trial.read 2>/dev/null | head -n 5; rm -f /run/kairos-trial.read
  kmsg_since "$mark" | sed 's/^/kernel: /'
done
if [ "$tried" = 1 ]; then
  section "restored"
  rm -f /run/extensions/*.raw
  /usr/lib/kairos-test/stage-extensions > /dev/null
  systemd-sysext refresh --image-policy="$POLICY" 2>&1
  echo "refresh-exit=$?"
  systemd-sysext status --no-pager
fi
echo
echo "${SYSTEMD_REPORT_END}"
systemctl poweroff --no-block
`;

const REPORT_UNIT = `[Unit]
Description=Report the merged extensions on the serial port (test OS)
After=kairos-boot-stage.service systemd-sysext.service

[Service]
Type=oneshot
ExecStart=/usr/lib/kairos-test/report
StandardOutput=tty
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
`;

/** The awk program of the boot-stage stand-in (it prints one command per line from a cloud-config). */
export function bootStageAwkProgram(): string {
    const start = BOOT_STAGE.indexOf("awk '") + "awk '".length;
    return BOOT_STAGE.slice(start, BOOT_STAGE.indexOf("' \"$CONFIG\"", start));
}

/** The files this module adds on top of the base, relative path -> [content, mode]. */
function kairosParts(): Record<string, [string, number]> {
    return {
        "etc/kairos-release": [kairosRelease(), 0o644],
        "etc/os-release": [osRelease(), 0o644],
        "usr/bin/immucore": [IMMUCORE, 0o755],
        "usr/lib/kairos-test/stage-extensions": [STAGE_EXTENSIONS, 0o755],
        "usr/lib/kairos-test/boot-stage": [BOOT_STAGE, 0o755],
        "usr/lib/kairos-test/report": [REPORT, 0o755],
        "etc/systemd/system/kairos-stage-extensions.service": [STAGE_UNIT, 0o644],
        "etc/systemd/system/kairos-boot-stage.service": [BOOT_STAGE_UNIT, 0o644],
        "etc/systemd/system/kairos-test-report.service": [REPORT_UNIT, 0o644],
        "etc/systemd/system/systemd-sysext.service.d/10-kairos.conf": [mergeDropIn("systemd-sysext"), 0o644],
        "etc/systemd/system/systemd-confext.service.d/10-kairos.conf": [mergeDropIn("systemd-confext"), 0o644],
        "etc/modules-load.d/kairos-test.conf": ["loop\ndm_mod\ndm_verity\nerofs\noverlay\nefivarfs\n", 0o644],
    };
}

/** unit -> target whose .wants/ links it (what `systemctl enable` would do). */
const ENABLED: Record<string, string> = {
    "kairos-stage-extensions.service": "sysinit.target",
    "systemd-sysext.service": "sysinit.target",
    "systemd-confext.service": "sysinit.target",
    "kairos-boot-stage.service": "multi-user.target",
    "kairos-test-report.service": "multi-user.target",
};
/** Gettys on the serial port swallow the test output (a hangup); nothing logs in here. */
const MASKED = ["serial-getty@ttyS0.service", "getty@tty1.service", "console-getty.service", "systemd-firstboot.service"];

export interface SystemdTestOs {
    dir: string;
    /** The trixie kernel version inside. */
    kernelVersion: string;
}

/** Writes the systemd test OS into `dir` (created; must be empty or missing). */
export async function buildSystemdTestOsRootfs(dir: string): Promise<SystemdTestOs> {
    const base = await systemdTestOsBase();
    fs.mkdirSync(dir, { recursive: true });
    if (fs.readdirSync(dir).length > 0) throw new Error(`${dir} is not empty`);
    await run(["cp", "-a", "--reflink=auto", `${base}/.`, dir], { timeoutMs: 300000 });
    fs.rmSync(path.join(dir, "etc/os-release"), { force: true }); // a symlink to ../usr/lib/os-release in Debian
    for (const [rel, [content, mode]] of Object.entries(kairosParts())) {
        const file = path.join(dir, rel);
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
        fs.writeFileSync(file, content, { mode });
        fs.chmodSync(file, mode);
    }
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
    const kernelVersion = fs.readlinkSync(path.join(dir, "boot/vmlinuz")).replace(/^vmlinuz-/, "");
    return { dir, kernelVersion };
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

/** The k3s stand-in (examples/k3s-sysext/standin), built reproducibly into `out`. */
export async function buildK3sStandin(out: string): Promise<string> {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    await run(["go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", tmp, "."], {
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

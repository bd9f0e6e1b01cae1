// A tiny Kairos-like OS for the demo and the boot tests, built from Debian packages already on the machine, with no
// network at test time: Debian's signed kernel (downloaded once by scripts/fetch-test-kernel.sh into
// a cache outside the repo), busybox-static, and an /usr/bin/immucore that is a shell script printing
// one marker line with the Secure Boot state, PCR 11 and the kernel command line, then powering off.
// The UKI step adds /init -> /usr/bin/immucore and drops /boot, as AuroraBoot does.
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { cacheRoot } from "../../provider/toolkit/file-identity";

export const TEST_OS_MARKER = "KAIROS-TEST-OS-BOOTED";
export const TEST_OS_RELEASE = "v0.0.0-test";
const REPO = path.resolve(__dirname, "../..");
const BUSYBOX = "/bin/busybox"; // busybox-static
const SYSTEMD_BOOT_DIR = "/usr/lib/systemd/boot/efi";
const EMPTY_DIRS = ["dev", "proc", "sys", "run", "tmp"];

/** The cache root shared with scripts/install-pulumi.sh and scripts/fetch-test-kernel.sh (and the provider's caches). */
export { cacheRoot };

export interface TestKernel {
    path: string;
    /** "6.1.0-56-amd64" */
    version: string;
}

let kernelPromise: Promise<TestKernel> | undefined;

/** The cached Debian kernel; runs the (idempotent) fetch script when the cache is empty. */
export function testKernel(): Promise<TestKernel> {
    kernelPromise ??= (async () => {
        const dir = path.join(cacheRoot(), "test-kernel");
        let file = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^vmlinuz-/.test(f)).sort().pop() : undefined;
        if (file) file = path.join(dir, file);
        else file = (await run(["bash", path.join(REPO, "scripts/fetch-test-kernel.sh")], { timeoutMs: 600000 })).stdout.trim();
        if (!file || !fs.existsSync(file)) throw new Error(`no test kernel in ${dir}; run scripts/fetch-test-kernel.sh (or npm run setup)`);
        return { path: file, version: path.basename(file).replace(/^vmlinuz-/, "") };
    })();
    kernelPromise.catch(() => (kernelPromise = undefined));
    return kernelPromise;
}

/** The script that stands in for immucore; MARKER is substituted. */
export function immucoreScript(marker: string): string {
    return `#!/usr/bin/busybox sh
# Test stand-in for immucore: reports how the machine booted on the serial port and powers off.
B=/usr/bin/busybox
$B mkdir -p /proc /sys /dev /run /tmp
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
# efivarfs is a module in Debian's kernel, so the state comes from the kernel log.
case "$($B dmesg | $B grep -o 'secureboot: Secure boot [a-z]*' | $B head -n 1)" in
  *enabled) SB=enabled ;;
  *disabled) SB=disabled ;;
  *) SB=unknown ;;
esac
PCR11=$($B cat /sys/class/tpm/tpm0/pcr-sha256/11 2>/dev/null | $B tr A-F a-f)
[ -n "$PCR11" ] || PCR11=none
MSG="${marker} sb=$SB pcr11=$PCR11 cmdline=$($B cat /proc/cmdline)"
echo "$MSG" > /dev/ttyS0 2>/dev/null
# /dev/console is the last active console; write there too unless that is the serial port already.
ACTIVE=$($B cat /sys/class/tty/console/active 2>/dev/null)
[ "\${ACTIVE##* }" = ttyS0 ] || echo "$MSG" > /dev/console 2>/dev/null
$B sync
$B poweroff -f
`;
}

export function kairosRelease(): string {
    return [
        `KAIROS_NAME="kairos-core-debian-12"`,
        `KAIROS_VERSION="${TEST_OS_RELEASE}"`,
        `KAIROS_RELEASE="${TEST_OS_RELEASE}"`,
        `KAIROS_ID="kairos"`,
        `KAIROS_ID_LIKE="kairos-core-debian-12"`,
        `KAIROS_PRETTY_NAME="kairos-core-debian-12 ${TEST_OS_RELEASE}"`,
        `KAIROS_FLAVOR="debian"`,
        `KAIROS_FLAVOR_RELEASE="12"`,
        `KAIROS_FAMILY="debian"`,
        `KAIROS_VARIANT="core"`,
        `KAIROS_MODEL="generic"`,
        `KAIROS_ARCH="amd64"`,
        `KAIROS_TARGETARCH="amd64"`,
        `KAIROS_IMAGE_LABEL="12-core-amd64-generic-${TEST_OS_RELEASE}"`,
        `KAIROS_SOFTWARE_VERSION=""`,
        `KAIROS_SOFTWARE_VERSION_PREFIX=""`,
        `KAIROS_HOME_URL="https://github.com/kairos-io/kairos"`,
        `KAIROS_BUG_REPORT_URL="https://github.com/kairos-io/kairos/issues"`,
        "",
    ].join("\n");
}

export function osRelease(): string {
    return [
        `NAME="Kairos test OS"`,
        `ID=kairos`,
        `ID_LIKE=debian`,
        `VERSION_ID="${TEST_OS_RELEASE}"`,
        `PRETTY_NAME="Kairos test OS ${TEST_OS_RELEASE}"`,
        `KAIROS_RELEASE="${TEST_OS_RELEASE}"`,
        "",
    ].join("\n");
}

export interface TestOsRootfs {
    dir: string;
    kernel: TestKernel;
    marker: string;
}

/** Writes the test OS into `dir` (created; must be empty or missing). */
export async function buildTestOsRootfs(dir: string, opts: { marker?: string } = {}): Promise<TestOsRootfs> {
    const marker = opts.marker ?? TEST_OS_MARKER;
    if (!/^[A-Za-z0-9._-]+$/.test(marker)) throw new Error(`marker "${marker}" must be one word of A-Z a-z 0-9 . _ -`);
    if (!fs.existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing; install busybox-static (npm run setup)`);
    const kernel = await testKernel();
    fs.mkdirSync(dir, { recursive: true });
    if (fs.readdirSync(dir).length > 0) throw new Error(`${dir} is not empty`);
    const mk = (rel: string, mode = 0o755) => {
        fs.mkdirSync(path.join(dir, rel), { recursive: true });
        fs.chmodSync(path.join(dir, rel), mode);
    };
    const put = (rel: string, content: string | Buffer, mode: number) => {
        mk(path.dirname(rel));
        fs.writeFileSync(path.join(dir, rel), content);
        fs.chmodSync(path.join(dir, rel), mode);
    };
    const copy = (rel: string, src: string, mode: number) => put(rel, fs.readFileSync(src), mode);

    for (const d of EMPTY_DIRS) mk(d, d === "tmp" ? 0o1777 : 0o755);
    copy(`boot/vmlinuz-${kernel.version}`, kernel.path, 0o644);
    fs.symlinkSync(`vmlinuz-${kernel.version}`, path.join(dir, "boot/vmlinuz"));
    copy("usr/bin/busybox", BUSYBOX, 0o755);
    put("usr/bin/immucore", immucoreScript(marker), 0o755);
    fs.symlinkSync("usr/bin", path.join(dir, "bin")); // merged /usr, so /bin/sh-style paths resolve
    fs.symlinkSync("busybox", path.join(dir, "usr/bin/sh"));
    put("etc/kairos-release", kairosRelease(), 0o644);
    put("etc/os-release", osRelease(), 0o644);
    for (const f of ["linuxx64.efi.stub", "systemd-bootx64.efi"]) copy(`usr/lib/systemd/boot/efi/${f}`, path.join(SYSTEMD_BOOT_DIR, f), 0o644);
    return { dir, kernel, marker };
}

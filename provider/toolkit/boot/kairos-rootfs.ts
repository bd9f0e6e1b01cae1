// What build-uki needs from a Kairos rootfs, checked all at once, and the changes AuroraBoot makes to it
// before it becomes the initrd (AuroraBoot build-uki §3.3 steps 4 and 6-8).
//
// Contracts (each failure is listed; one error names them all):
// - /etc/kairos-release (or, if that file does not exist, /etc/os-release) has KAIROS_RELEASE="…", double
//   quoted and not empty: AuroraBoot's regex `(?m)^KAIROS_RELEASE="(.*)"` finds nothing in an unquoted line.
// - /boot/vmlinuz exists. When it is a symlink only the basename of its target is used, looked up in /boot
//   (AuroraBoot's copyKernel), so `vmlinuz -> /boot/vmlinuz-6.1` and `vmlinuz -> vmlinuz-6.1` both work.
// - /usr/bin/immucore exists: the initrd's /init is a symlink to it. An image without immucore is not a
//   UKI-flavour Kairos image.
// - /etc/os-release exists: it becomes the UKI's .osrel section.
// Symlinks inside the rootfs are resolved against the rootfs, never the build host (AuroraBoot reads an
// absolute os-release symlink from the host).
import * as fs from "fs";
import * as path from "path";
import type { CpioOverlay } from "./initrd";

export class KairosRootfsError extends Error {
    readonly code = "KAIROS_ROOTFS";
    constructor(readonly rootfs: string, readonly problems: string[]) {
        super(`${rootfs} is not a usable Kairos rootfs for a UKI:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    }
}

export interface KairosRootfsInfo {
    /** KAIROS_RELEASE, without its quotes. */
    kairosRelease: string;
    /** Which file it came from: "/etc/kairos-release" or "/etc/os-release". */
    releaseFile: string;
    /** Host path of the kernel image. */
    kernelPath: string;
    /** Kernel release from the x86 bzImage header; undefined for other kernels (no .uname then). */
    uname?: string;
    /** Host path of os-release (symlinks resolved inside the rootfs). */
    osReleasePath: string;
}

const MAX_LINK_HOPS = 40;

/**
 * The host path that `rel` names inside `root`, following symlinks as if `root` were "/" (".." stops at
 * the root). Components that do not exist are kept as they are.
 */
export function resolveInRoot(root: string, rel: string): string {
    const pending = rel.split("/").filter((p) => p !== "" && p !== ".");
    const resolved: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
        const part = pending.shift()!;
        if (part === "..") {
            resolved.pop();
            continue;
        }
        const candidate = path.join(root, ...resolved, part);
        let st: fs.Stats;
        try {
            st = fs.lstatSync(candidate);
        } catch {
            resolved.push(part);
            continue;
        }
        if (!st.isSymbolicLink()) {
            resolved.push(part);
            continue;
        }
        if (++hops > MAX_LINK_HOPS) throw new KairosRootfsError(root, [`too many levels of symbolic links resolving /${rel}`]);
        const target = fs.readlinkSync(candidate);
        if (target.startsWith("/")) resolved.length = 0;
        pending.unshift(...target.split("/").filter((p) => p !== "" && p !== "."));
    }
    return path.join(root, ...resolved);
}

function isFile(p: string): boolean {
    try {
        return fs.statSync(p).isFile();
    } catch {
        return false;
    }
}

function exists(p: string): boolean {
    try {
        fs.lstatSync(p);
        return true;
    } catch {
        return false;
    }
}

/** The kernel version string of an x86 bzImage (setup header "HdrS", kernel_version at 0x20e), first word. */
export function bzImageVersion(kernel: string): string | undefined {
    const fd = fs.openSync(kernel, "r");
    try {
        const head = Buffer.alloc(0x210);
        if (fs.readSync(fd, head, 0, head.length, 0) < head.length) return undefined;
        if (head.toString("latin1", 0x202, 0x206) !== "HdrS") return undefined;
        const ptr = head.readUInt16LE(0x20e);
        if (ptr === 0) return undefined;
        const buf = Buffer.alloc(256);
        const n = fs.readSync(fd, buf, 0, buf.length, ptr + 0x200);
        const text = buf.subarray(0, n);
        const end = text.indexOf(0);
        const version = text.toString("latin1", 0, end < 0 ? n : end).split(" ")[0];
        return /^[\x21-\x7e]+$/.test(version) ? version : undefined;
    } finally {
        fs.closeSync(fd);
    }
}

/** The kernel image AuroraBoot would copy, or a problem. */
function findKernel(rootfs: string): { path?: string; problem?: string } {
    const link = path.join(resolveInRoot(rootfs, "boot"), "vmlinuz");
    let st: fs.Stats;
    try {
        st = fs.lstatSync(link);
    } catch {
        return { problem: "missing /boot/vmlinuz (the kernel goes into the UKI's .linux section)" };
    }
    if (!st.isSymbolicLink()) {
        return st.isFile() ? { path: link } : { problem: "/boot/vmlinuz is not a file" };
    }
    const target = fs.readlinkSync(link);
    const name = path.basename(target);
    const kernel = resolveInRoot(rootfs, `boot/${name}`);
    if (!isFile(kernel)) {
        return { problem: `/boot/vmlinuz points to ${target}, but /boot/${name} is not a file (only the basename of the link target is looked up in /boot)` };
    }
    return { path: kernel };
}

/** The KAIROS_RELEASE="…" value of an os-release or kairos-release text (AuroraBoot reads only the quoted form). */
export function kairosReleaseIn(text: string): string | undefined {
    return /^KAIROS_RELEASE="(.*)"/m.exec(text)?.[1];
}

/** Checks every contract and returns what the UKI build needs; throws one error listing all problems. */
export function inspectKairosRootfs(rootfs: string): KairosRootfsInfo {
    const problems: string[] = [];
    let st: fs.Stats | undefined;
    try {
        st = fs.statSync(rootfs);
    } catch {
        /* reported below */
    }
    if (!st?.isDirectory()) throw new KairosRootfsError(rootfs, ["it is not a directory"]);

    let kairosRelease: string | undefined;
    let releaseFile = "/etc/kairos-release";
    let releasePath = resolveInRoot(rootfs, "etc/kairos-release");
    if (!isFile(releasePath)) {
        releaseFile = "/etc/os-release";
        releasePath = resolveInRoot(rootfs, "etc/os-release");
    }
    if (!isFile(releasePath)) {
        problems.push('neither /etc/kairos-release nor /etc/os-release exists (KAIROS_RELEASE="…" is read from one of them)');
    } else {
        const text = fs.readFileSync(releasePath, "utf8");
        const quoted = kairosReleaseIn(text);
        if (quoted !== undefined) {
            if (quoted === "") problems.push(`KAIROS_RELEASE in ${releaseFile} is empty`);
            else kairosRelease = quoted;
        } else {
            const bare = /^KAIROS_RELEASE=(.*)$/m.exec(text);
            problems.push(
                bare
                    ? `KAIROS_RELEASE in ${releaseFile} is not double-quoted (${bare[0].trim()}); AuroraBoot only reads KAIROS_RELEASE="…"`
                    : `${releaseFile} has no KAIROS_RELEASE="…" line`,
            );
        }
    }

    const kernel = findKernel(rootfs);
    if (kernel.problem) problems.push(kernel.problem);

    const immucore = resolveInRoot(rootfs, "usr/bin/immucore");
    if (!exists(immucore)) problems.push("missing /usr/bin/immucore (the UKI's /init links to it; is this a UKI-flavour Kairos image?)");
    else if (!isFile(immucore)) problems.push("/usr/bin/immucore is not a regular file");

    const osReleasePath = resolveInRoot(rootfs, "etc/os-release");
    if (!isFile(osReleasePath)) problems.push("missing /etc/os-release (it becomes the UKI's .osrel section)");

    if (problems.length > 0) throw new KairosRootfsError(rootfs, problems);
    return {
        kairosRelease: kairosRelease!,
        releaseFile,
        kernelPath: kernel.path!,
        uname: bzImageVersion(kernel.path!),
        osReleasePath,
    };
}

export interface PrepareUkiRootfsOptions {
    /** Copy the kernel here before /boot is removed. */
    saveKernelTo?: string;
    /** Copy os-release here (its content is needed for .osrel; /etc stays in the rootfs anyway). */
    saveOsReleaseTo?: string;
}

/** Folders a UKI's rootfs must have (AuroraBoot creates them). */
const UKI_DIRS = ["oem", "efi", "usr/local/cloud-config"];
const INIT_TARGET = "/usr/bin/immucore";

/**
 * prepareUkiRootfs's changes as a CpioOverlay, for a tree that must stay as it is (a local directory
 * source, whose initrd is then archived from it directly: no copy of it to change, initrd.ts). Undefined
 * when a path to change passes through a symlink, which only a changed copy resolves as
 * prepareUkiRootfs does. Throws what prepareUkiRootfs throws for the same tree.
 */
export function ukiRootfsOverlay(rootfs: string): CpioOverlay | undefined {
    const lstat = (rel: string): fs.Stats | undefined => {
        try {
            return fs.lstatSync(path.join(rootfs, rel));
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
            throw e;
        }
    };
    if (lstat("init")?.isDirectory()) throw new KairosRootfsError(rootfs, ["/init is a directory; it must become a symlink to /usr/bin/immucore"]);
    const dirs: string[] = [];
    for (const dir of UKI_DIRS) {
        const parts = dir.split("/");
        for (let i = 1; i <= parts.length; i++) {
            const rel = parts.slice(0, i).join("/");
            if (dirs.includes(rel)) continue;
            const st = dirs.some((d) => rel.startsWith(`${d}/`)) ? undefined : lstat(rel);
            if (!st) dirs.push(rel);
            else if (st.isSymbolicLink()) return undefined;
            else if (!st.isDirectory()) throw new KairosRootfsError(rootfs, [`/${rel} exists and is not a directory`]);
        }
    }
    return { symlinks: { init: INIT_TARGET }, dirs };
}

/** Copies out what a UKI takes from the rootfs besides its initrd: the kernel and os-release. */
export function saveUkiInputs(rootfs: string, opts: PrepareUkiRootfsOptions): void {
    if (opts.saveKernelTo) {
        const kernel = findKernel(rootfs);
        if (!kernel.path) throw new KairosRootfsError(rootfs, [kernel.problem!]);
        fs.copyFileSync(kernel.path, opts.saveKernelTo);
    }
    if (opts.saveOsReleaseTo) {
        const osr = resolveInRoot(rootfs, "etc/os-release");
        if (!isFile(osr)) throw new KairosRootfsError(rootfs, ["missing /etc/os-release"]);
        fs.copyFileSync(osr, opts.saveOsReleaseTo);
    }
}

/** The UKI-specific changes AuroraBoot makes: /init -> /usr/bin/immucore, /oem /efi /usr/local/cloud-config, no /boot. */
export function prepareUkiRootfs(rootfs: string, opts: PrepareUkiRootfsOptions = {}): void {
    saveUkiInputs(rootfs, opts);
    const init = path.join(rootfs, "init");
    try {
        if (fs.lstatSync(init).isDirectory()) throw new KairosRootfsError(rootfs, ["/init is a directory; it must become a symlink to /usr/bin/immucore"]);
        fs.rmSync(init);
    } catch (e) {
        if (e instanceof KairosRootfsError) throw e;
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    fs.symlinkSync(INIT_TARGET, init);

    // 0755, not AuroraBoot's 0000 (os.MkdirAll(path, os.ModeDir) has no permission bits; a bug).
    for (const dir of UKI_DIRS) {
        const parts = dir.split("/");
        for (let i = 1; i <= parts.length; i++) {
            const rel = parts.slice(0, i).join("/");
            const at = resolveInRoot(rootfs, rel);
            if (!exists(at)) {
                fs.mkdirSync(at);
                fs.chmodSync(at, 0o755);
            } else if (!fs.statSync(at).isDirectory()) {
                throw new KairosRootfsError(rootfs, [`/${rel} exists and is not a directory`]);
            }
        }
    }

    fs.rmSync(path.join(rootfs, "boot"), { recursive: true, force: true });
}

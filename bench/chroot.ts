// Runs a tool of the bench rootfs (scripts/build-bench-rootfs.sh: Debian trixie, systemd 257, ukify)
// inside it as a chroot, for the benchmark's reference rows (AuroraBoot's systemd-repart, ukify).
//
// Isolation: one `unshare -m` mount namespace (private propagation, util-linux's default) holds every
// mount, so they all vanish with the process, even when it is killed. Inside it the rootfs's /tmp is a
// host scratch folder; the caller's folders are bound below that (read-only unless said otherwise), and
// files it names (key pairs) are copied into a read-only folder there, so that only they are visible, not
// the folder they live in. /proc and a minimal /dev are mounted over the rootfs's own. So the rootfs is
// never written to, and the tools' temporary files (TMPDIR=/tmp) land in the scratch folder.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run, RunResult } from "../provider/toolkit/run";

export interface ChrootRunOptions {
    /** The bench rootfs. */
    rootfs: string;
    /** Files of the rootfs the tool needs: checked first, so that a wrong folder fails plainly. */
    needs: string[];
    /** Host folders seen at /tmp/NAME in the chroot. */
    binds?: { name: string; dir: string; writable?: boolean }[];
    /** Host files copied to /tmp/NAME/FILE (read-only): key pairs. */
    copies?: { name: string; files: Record<string, string> };
    argv: string[];
    env?: Record<string, string>;
    timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

// The mounts, then chroot. A fixed script with every path passed as a positional parameter: the
// mounts have to happen inside the namespace, between unshare and chroot, and no value is ever
// spliced into shell text. Device nodes are bound from the host (a tmpfs cannot hold working ones
// without mknod rights on it); no loop devices, so nothing can reach the host's block layer.
// Arguments: ROOT SCRATCH, then (MODE HOSTDIR NAME)... up to "--", then the command.
const ENTER = `set -eu
root=$1 scratch=$2
shift 2
mount --bind "$scratch" "$root/tmp"
while [ "$1" != "--" ]; do
  if [ "$1" = ro ]; then mount --bind -o ro "$2" "$root/tmp/$3"; else mount --bind "$2" "$root/tmp/$3"; fi
  shift 3
done
shift
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o mode=0755,size=64k,nosuid,noexec tmpfs "$root/dev"
for n in null zero full random urandom; do
  : >"$root/dev/$n"
  mount --bind "/dev/$n" "$root/dev/$n"
done
exec chroot "$root" "$@"`;

/** Runs `argv` inside the rootfs. Needs root. */
export async function runInRootfs(opts: ChrootRunOptions): Promise<RunResult> {
    const rootfs = path.resolve(opts.rootfs);
    for (const rel of [...opts.needs, "tmp", "proc", "dev"]) {
        if (!fs.existsSync(path.join(rootfs, rel))) {
            throw new Error(`${rootfs} has no /${rel}: not the bench rootfs (scripts/build-bench-rootfs.sh prints its path)`);
        }
    }
    if (process.getuid?.() !== 0) throw new Error("the bench's chroot runs need root: they mount and chroot (run the benchmark as root)");
    const binds = opts.binds ?? [];
    for (const b of binds) {
        if (!/^[a-z0-9-]+$/.test(b.name)) throw new Error(`bind name '${b.name}' must be a plain word`);
        if (!fs.statSync(b.dir).isDirectory()) throw new Error(`${b.dir} is not a directory`);
    }
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-chroot-"));
    const mounts: string[] = [];
    try {
        for (const b of binds) {
            fs.mkdirSync(path.join(scratch, b.name), { mode: 0o700 });
            mounts.push(b.writable ? "rw" : "ro", path.resolve(b.dir), b.name);
        }
        if (opts.copies) {
            const dir = path.join(scratch, opts.copies.name);
            fs.mkdirSync(dir, { mode: 0o700 });
            for (const [name, file] of Object.entries(opts.copies.files)) {
                fs.copyFileSync(file, path.join(dir, name));
                fs.chmodSync(path.join(dir, name), 0o600);
            }
            mounts.push("ro", dir, opts.copies.name);
        }
        const env = Object.entries({ PATH: "/usr/sbin:/usr/bin:/sbin:/bin", TMPDIR: "/tmp", SYSTEMD_COLORS: "0", ...opts.env }).map(([k, v]) => `${k}=${v}`);
        return await run(
            ["unshare", "-m", "--", "sh", "-c", ENTER, "sh", rootfs, scratch, ...mounts, "--", "/usr/bin/env", "-i", ...env, ...opts.argv],
            { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS },
        );
    } finally {
        removeScratch(scratch, binds.map((b) => b.name));
    }
}

// The bind targets go with rmdir, never a recursive delete: should a bind ever outlive the namespace,
// this fails instead of deleting the caller's folders through it.
function removeScratch(scratch: string, bound: string[]): void {
    for (const e of fs.readdirSync(scratch)) {
        if (!bound.includes(e)) fs.rmSync(path.join(scratch, e), { recursive: true, force: true });
    }
    for (const b of bound) fs.rmdirSync(path.join(scratch, b));
    fs.rmdirSync(scratch);
}

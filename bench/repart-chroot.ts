// AuroraBoot's own sysext build, for the benchmark to compare against: its systemd-repart command line,
// run by systemd 257 inside the bench rootfs (scripts/build-bench-rootfs.sh) as a chroot, because the
// host's systemd 252 has no --make-ddi, --copy-source or erofs.
//
// Isolation: one `unshare -m` mount namespace (private propagation, util-linux's default) holds every
// mount, so they all vanish with the process, even when it is killed. Inside it the rootfs's /tmp is a
// host scratch folder, and the source (read-only), a copy of the key pair (read-only) and the output
// folder are bound below that; /proc and a minimal /dev are mounted over the rootfs's own. So the
// fixture is never written to, and repart's temporary images (TMPDIR) land in the scratch folder.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../provider/toolkit/run";

export interface RepartSysextOptions {
    /** The bench rootfs: a Debian trixie tree with systemd-repart 257 and erofs-utils. */
    rootfs: string;
    /** The extension's tree (usr/…, usr/lib/extension-release.d/extension-release.NAME). */
    sourceDir: string;
    /** The DDI to write; an existing file is replaced, as AuroraBoot deletes a leftover one first. */
    outFile: string;
    key: string;
    certificate: string;
    /** Defaults to AuroraBoot's: UUIDv5(NamespaceDNS, "kairos-sysext"). */
    seed?: string;
}

export const AURORABOOT_SYSEXT_SEED = "f1a7e405-5d08-57b1-a49f-eadfb05abf11";
const TIMEOUT_MS = 30 * 60 * 1000;

// The mounts, then chroot. A fixed script with every path passed as a positional parameter: the
// mounts have to happen inside the namespace, between unshare and chroot, and no value is ever
// spliced into shell text. Device nodes are bound from the host (a tmpfs cannot hold working ones
// without mknod rights on it); no loop devices, so nothing can reach the host's block layer.
const ENTER = `set -eu
root=$1 scratch=$2 src=$3 out=$4
shift 4
mount --bind "$scratch" "$root/tmp"
mount --bind -o ro "$src" "$root/tmp/src"
mount --bind -o ro "$scratch/keys" "$root/tmp/keys"
mount --bind "$out" "$root/tmp/out"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o mode=0755,size=64k,nosuid,noexec tmpfs "$root/dev"
for n in null zero full random urandom; do
  : >"$root/dev/$n"
  mount --bind "/dev/$n" "$root/dev/$n"
done
exec chroot "$root" "$@"`;

/** Builds `outFile` with AuroraBoot's sysext argv, inside `rootfs`. Needs root. */
export async function repartSysext(opts: RepartSysextOptions): Promise<void> {
    const rootfs = path.resolve(opts.rootfs);
    for (const rel of ["usr/bin/systemd-repart", "usr/bin/mkfs.erofs", "tmp", "proc", "dev"]) {
        if (!fs.existsSync(path.join(rootfs, rel))) {
            throw new Error(`${rootfs} has no /${rel}: not the bench rootfs (scripts/build-bench-rootfs.sh prints its path)`);
        }
    }
    if (process.getuid?.() !== 0) throw new Error("repartSysext needs root: it mounts and chroots (run the benchmark as root)");
    if (!fs.statSync(opts.sourceDir).isDirectory()) throw new Error(`${opts.sourceDir} is not a directory`);
    const outFile = path.resolve(opts.outFile);
    fs.rmSync(outFile, { force: true });

    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-repart-"));
    try {
        for (const d of ["src", "keys", "out"]) fs.mkdirSync(path.join(scratch, d), { mode: 0o700 });
        // Copies, so that only the key pair is visible in the chroot, not the folder the key lives in.
        fs.copyFileSync(opts.key, path.join(scratch, "keys", "private-key.pem"));
        fs.copyFileSync(opts.certificate, path.join(scratch, "keys", "certificate.pem"));
        fs.chmodSync(path.join(scratch, "keys", "private-key.pem"), 0o600);
        // AuroraBoot internal/cmd/sysext.go, in its order, with GetSysextSigningFlags' signed pair last.
        // --offline=yes is the one addition: AuroraBoot leaves it at "auto", which falls back to offline
        // when, as here, there are no loop devices; saying it keeps repart from ever trying them.
        const repart = [
            "systemd-repart",
            "--make-ddi=sysext",
            "--image-policy=root=verity+signed+absent:usr=verity+signed+absent",
            "--architecture=x86-64",
            `--seed=${opts.seed ?? AURORABOOT_SYSEXT_SEED}`,
            "--copy-source=/tmp/src",
            "--offline=yes",
            `/tmp/out/${path.basename(outFile)}`,
            "--private-key=/tmp/keys/private-key.pem",
            "--certificate=/tmp/keys/certificate.pem",
        ];
        await run(
            [
                "unshare", "-m", "--", "sh", "-c", ENTER, "sh",
                rootfs, scratch, path.resolve(opts.sourceDir), path.dirname(outFile),
                "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=/tmp", "SYSTEMD_COLORS=0",
                ...repart,
            ],
            { timeoutMs: TIMEOUT_MS },
        );
    } finally {
        removeScratch(scratch);
    }
    if (!fs.existsSync(outFile)) throw new Error(`systemd-repart exited 0 but wrote no ${outFile}`);
}

// The bind targets go with rmdir, never a recursive delete: should a bind ever outlive the namespace,
// this fails instead of deleting the caller's source or output through it.
function removeScratch(scratch: string): void {
    fs.rmSync(path.join(scratch, "keys"), { recursive: true, force: true });
    for (const e of fs.readdirSync(scratch)) {
        if (e !== "src" && e !== "out") fs.rmSync(path.join(scratch, e), { recursive: true, force: true });
    }
    fs.rmdirSync(path.join(scratch, "src"));
    fs.rmdirSync(path.join(scratch, "out"));
    fs.rmdirSync(scratch);
}

// AuroraBoot's own sysext build, for the benchmark to compare against: its systemd-repart command line,
// run by systemd 257 inside the bench rootfs (scripts/build-bench-rootfs.sh) as a chroot (chroot.ts),
// because the host's systemd 252 has no --make-ddi, --copy-source or erofs. The source is bound
// read-only, the output folder writable, and only a copy of the key pair is visible.
import * as fs from "fs";
import * as path from "path";
import { runInRootfs } from "./chroot";

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

/** Builds `outFile` with AuroraBoot's sysext argv, inside `rootfs`. Needs root. */
export async function repartSysext(opts: RepartSysextOptions): Promise<void> {
    if (!fs.statSync(opts.sourceDir).isDirectory()) throw new Error(`${opts.sourceDir} is not a directory`);
    const outFile = path.resolve(opts.outFile);
    fs.rmSync(outFile, { force: true });
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
    await runInRootfs({
        rootfs: opts.rootfs,
        needs: ["usr/bin/systemd-repart", "usr/bin/mkfs.erofs"],
        binds: [{ name: "src", dir: opts.sourceDir }, { name: "out", dir: path.dirname(outFile), writable: true }],
        copies: { name: "keys", files: { "private-key.pem": opts.key, "certificate.pem": opts.certificate } },
        argv: repart,
        timeoutMs: TIMEOUT_MS,
    });
    if (!fs.existsSync(outFile)) throw new Error(`systemd-repart exited 0 but wrote no ${outFile}`);
}

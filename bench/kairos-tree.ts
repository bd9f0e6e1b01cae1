// The bench rootfs as a UKI source: a hard-link mirror of the cached tree (toolkit/source/tree-mirror.ts, so
// ~1 s instead of copying 900 MB) plus the one Kairos part Debian has no package for, /usr/bin/immucore
// (the test OS's stand-in). The cache itself is never written: changes are made by replacing names in
// the mirror, never by writing into a linked file.
import * as fs from "fs";
import * as path from "path";
import { mirrorTree, newMirrorState } from "../provider/toolkit/source/tree-mirror";
import { run } from "../provider/toolkit/run";
import { immucoreScript, TEST_OS_MARKER } from "../scripts/lib/test-os";

export async function benchRootfsPath(): Promise<string> {
    return (await run(["bash", path.join(__dirname, "..", "scripts", "build-bench-rootfs.sh")], { timeoutMs: 3600_000 })).stdout.trim();
}

/** A Kairos-shaped mirror of `rootfs` at `dir` (which must not exist). */
export function kairosTree(rootfs: string, dir: string): string {
    const state = newMirrorState();
    mirrorTree(rootfs, dir, rootfs, state);
    if (state.special.length > 0) throw new Error(`${rootfs} holds special files: ${state.special.slice(0, 5).join(", ")}`);
    replaceFile(path.join(dir, "usr", "bin", "immucore"), immucoreScript(TEST_OS_MARKER), 0o755);
    return dir;
}

/** Puts new content under `file`'s name: the old name is unlinked first, so a linked inode is never written. */
export function replaceFile(file: string, content: string | Buffer, mode = 0o644): void {
    fs.rmSync(file, { force: true });
    fs.writeFileSync(file, content, { mode });
    fs.chmodSync(file, mode);
}

// Whether a build can read the user's source folder itself instead of a mirror of it (tree-mirror.ts):
// when the mirror would be the very same tree. Skipping the mirror saves its walk of links and folders
// (thousands of files: ~0.15 s) and, more, keeps the source's inodes untouched: a hard link changes the
// linked file's ctime, so every build made the next preview's digest cache (digest-cache.ts) miss and
// read the whole source again.
//
// The mirror equals the source when: the root has the mode the build gives the mirror's root; every
// top-level name is allowed (nothing would be dropped); there are only folders, symlinks and regular
// files (the mirror refuses the rest); no inode has two names in the tree (the mirror copies a second
// name, the filesystem writer would store a hard link); and the files the build would add (the
// extension-release file) are already there.
import * as fs from "fs";
import * as path from "path";

export interface AsIsRequirements {
    /** The mode the build gives the tree's root (it becomes the image root's mode). */
    rootMode: number;
    /** Top-level names the tree may hold. */
    allowedTop: readonly string[];
    /** Relative paths that must exist as regular files (through no symlink). */
    present: readonly string[];
}

/** True when `dir` can stand for its own mirror; false on anything that would make them differ. */
export function usableAsIs(dir: string, req: AsIsRequirements): boolean {
    const root = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (!root?.isDirectory() || (root.mode & 0o7777) !== req.rootMode) return false;
    const top = fs.readdirSync(dir);
    if (top.some((name) => !req.allowedTop.includes(name))) return false;
    for (const rel of req.present) {
        let at = dir;
        for (const part of rel.split("/")) {
            at = path.join(at, part);
            const st = fs.lstatSync(at, { throwIfNoEntry: false });
            if (!st || st.isSymbolicLink()) return false;
        }
        if (!fs.lstatSync(at).isFile()) return false;
    }
    const seen = new Set<string>();
    const plain = (d: string): boolean => {
        for (const name of fs.readdirSync(d)) {
            const p = path.join(d, name);
            const st = fs.lstatSync(p);
            if (st.isDirectory()) {
                if (!plain(p)) return false;
            } else if (st.isFile()) {
                if (st.nlink > 1) {
                    const key = `${st.dev}:${st.ino}`;
                    if (seen.has(key)) return false;
                    seen.add(key);
                }
            } else if (!st.isSymbolicLink()) return false;
        }
        return true;
    };
    return plain(dir);
}

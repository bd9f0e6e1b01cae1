// Following links inside an extracted tree the way the booted system will: the tree is "/", so an
// absolute link target starts at the tree's root and ".." stops there (chroot semantics, as systemd's
// chase() with a root directory does when it looks up extension-release files in an image). A path
// resolved here is always inside the tree; the host's own files are never read or written through a
// link an image brought.
import * as fs from "fs";
import * as path from "path";
import { stepComponent } from "./tree-path";

/** Links followed on one lookup before giving up (the kernel's own limit). */
const MAX_LINKS = 40;

export class TreeLinkError extends Error {
    readonly code = "TREE_LINK";
}

/**
 * The host path of `relative` inside `root`, every symbolic link on the way resolved within the tree.
 * Components that do not exist (yet) are kept as they are, so the result is also the place to create
 * them. With `followLast: false` a link in the last component is not followed (lstat it yourself).
 */
export function resolveInTree(root: string, relative: string, opts: { followLast?: boolean } = {}): string {
    const followLast = opts.followLast ?? true;
    const todo = relative.split("/");
    const done: string[] = [];
    let links = 0;
    let missing = false;
    while (todo.length > 0) {
        const part = todo.shift()!;
        if (part.includes("\0")) throw new TreeLinkError(`${relative}: a name with a NUL byte`);
        if (part === "" || part === "." || part === ".." || missing) {
            stepComponent(done, part, "stay"); // chroot: at the root, ".." is the root (see AboveRoot)
            continue;
        }
        const here = path.join(root, ...done, part);
        const st = fs.lstatSync(here, { throwIfNoEntry: false });
        if (!st) {
            missing = true;
            done.push(part);
            continue;
        }
        const last = todo.every((p) => p === "" || p === ".");
        if (st.isSymbolicLink() && (followLast || !last)) {
            if (++links > MAX_LINKS) throw new TreeLinkError(`${relative}: more than ${MAX_LINKS} symbolic links on the way (a loop?)`);
            const target = fs.readlinkSync(here);
            if (target.startsWith("/")) done.length = 0;
            todo.unshift(...target.split("/"));
            continue;
        }
        if (!last && !st.isDirectory()) throw new TreeLinkError(`${relative}: /${[...done, part].join("/")} in the tree is not a directory`);
        done.push(part);
    }
    return path.join(root, ...done);
}

// Where the bytes of a tree are: the largest folders two levels down, for size errors that say what
// to move out (for example into a system extension).
import * as fs from "fs";
import * as path from "path";

function treeBytes(p: string): number {
    const st = fs.lstatSync(p);
    if (!st.isDirectory()) return st.isFile() ? st.size : 0;
    return fs.readdirSync(p).reduce((sum, name) => sum + treeBytes(path.join(p, name)), 0);
}

/** The `count` largest entries at depth 1 and 2 below `root` (a folder's children replace it when listed), leaving out the top-level names `excludeTop`. */
export function largestContributors(root: string, count: number, excludeTop: readonly string[] = []): { path: string; bytes: number }[] {
    const out: { path: string; bytes: number }[] = [];
    for (const top of fs.readdirSync(root).filter((n) => !excludeTop.includes(n))) {
        const p = path.join(root, top);
        if (fs.lstatSync(p).isDirectory()) {
            for (const child of fs.readdirSync(p)) out.push({ path: `${top}/${child}`, bytes: treeBytes(path.join(p, child)) });
        } else {
            out.push({ path: top, bytes: treeBytes(p) });
        }
    }
    return out.sort((a, b) => b.bytes - a.bytes || a.path.localeCompare(b.path)).slice(0, count);
}

// The small extension tree the DDI tests build images from, and a walk that records what a tree holds
// (type, mode, owner, time, content digest or link target) for comparing trees.
import * as fs from "fs";
import * as path from "path";
import { createHash } from "crypto";

/** A small extension tree: a 0755 script, a symlink to it, a 0644 data file and the release file. */
export function makeTree(dir: string, opts: { arch?: string; reverse?: boolean; mtime?: number; kind?: "sysext" | "confext"; name?: string } = {}): string {
    const releaseDir = opts.kind === "confext" ? "etc/extension-release.d" : "usr/lib/extension-release.d";
    const steps: (() => void)[] = [
        () => writeFile(dir, "usr/local/bin/hello", "#!/bin/sh\necho hello from the extension\n", 0o755),
        () => {
            mkdirs(dir, "usr/local/bin");
            fs.symlinkSync("hello", path.join(dir, "usr/local/bin/hi"));
        },
        () => writeFile(dir, `${releaseDir}/extension-release.${opts.name ?? "hello"}`, `ID=_any\nARCHITECTURE=${opts.arch ?? "x86-64"}\n`, 0o644),
        () => writeFile(dir, "usr/share/hello/words.txt", "all work and no play makes a dull image\n".repeat(2000), 0o644),
    ];
    fs.mkdirSync(dir, { recursive: true });
    fs.chmodSync(dir, 0o755);
    for (const step of opts.reverse ? [...steps].reverse() : steps) step();
    if (opts.mtime !== undefined) touchTree(dir, opts.mtime);
    return dir;
}

function writeFile(root: string, rel: string, content: string, mode: number): void {
    const file = path.join(root, rel);
    mkdirs(root, path.dirname(rel));
    fs.writeFileSync(file, content);
    fs.chmodSync(file, mode); // chmod, not the mode option, so the umask cannot interfere
}

function mkdirs(root: string, rel: string): void {
    let dir = root;
    for (const part of rel.split("/")) {
        dir = path.join(dir, part);
        if (!fs.existsSync(dir)) {
            fs.mkdirSync(dir);
            fs.chmodSync(dir, 0o755);
        }
    }
}

export function touchTree(dir: string, seconds: number): void {
    for (const entry of walk(dir)) {
        const file = path.join(dir, entry.path);
        if (entry.type === "symlink") fs.lutimesSync(file, seconds, seconds);
        else fs.utimesSync(file, seconds, seconds);
    }
}

export interface TreeEntry {
    path: string;
    type: "file" | "dir" | "symlink";
    mode: number;
    uid: number;
    mtime: number;
    content: string; // sha256 of a file, the target of a symlink
}

export function walk(root: string, rel = ""): TreeEntry[] {
    const entries: TreeEntry[] = [];
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
        const p = rel ? `${rel}/${name}` : name;
        const abs = path.join(root, p);
        const st = fs.lstatSync(abs);
        const type = st.isSymbolicLink() ? "symlink" : st.isDirectory() ? "dir" : "file";
        const content = type === "file" ? sha256(fs.readFileSync(abs)) : type === "symlink" ? fs.readlinkSync(abs) : "";
        entries.push({ path: p, type, mode: st.mode & 0o7777, uid: st.uid, mtime: Math.floor(st.mtimeMs / 1000), content });
        if (type === "dir") entries.push(...walk(root, p));
    }
    return entries;
}

export function sha256(data: Buffer | string): string {
    return createHash("sha256").update(data).digest("hex");
}

// What a folder holds, as one comparable map: every file (hidden ones too) with its sha256, every
// folder as "<path>/": "dir", every symlink as "-> <target>". Tests compare two of these to say
// "nothing was written" or "byte-identical to the reference".
import * as fs from "fs";
import * as path from "path";
import { sha256Hex } from "../../provider/toolkit/files";

export function treeSnapshot(dir: string, skip: (name: string) => boolean = () => false): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (rel: string) => {
        for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
            if (skip(e.name)) continue;
            const r = path.join(rel, e.name);
            if (e.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(path.join(dir, r))}`;
            else if (e.isDirectory()) {
                out[`${r}/`] = "dir";
                walk(r);
            } else out[r] = sha256Hex(fs.readFileSync(path.join(dir, r)));
        }
    };
    walk("");
    return out;
}

/** Every path under `dir` with what it is (file digest, folder, link target) and its mode (setuid bits show). */
export function treeWithModes(dir: string): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (rel: string) => {
        const abs = path.join(dir, rel);
        const st = fs.lstatSync(abs);
        const mode = (st.mode & 0o7777).toString(8);
        if (st.isSymbolicLink()) out[rel] = `link ${fs.readlinkSync(abs)}`;
        else if (st.isDirectory()) {
            if (rel) out[rel] = `dir ${mode}`;
            for (const e of fs.readdirSync(abs)) walk(path.join(rel, e));
        } else out[rel] = `file ${mode} ${sha256Hex(fs.readFileSync(abs))}`;
    };
    walk("");
    return out;
}

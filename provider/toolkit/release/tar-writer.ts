// A minimal, deterministic ustar writer for the OS container: regular files only, relative paths in
// sorted order, no directory entries, fixed mode/owner/mtime, empty user and group names. This is
// the file set AuroraBoot's `build-uki --output-type container` puts in its one layer (kairos-day2.md
// §4); fixing every header field is what makes the layer digest a function of the files' bytes.
import * as fs from "fs";
import { READ_CHUNK } from "../files";

export interface TarEntry {
    /** Path inside the archive, relative, `/`-separated (e.g. `EFI/kairos/norole.efi`). */
    path: string;
    /** The file whose bytes go there. */
    source: string;
}

/**
 * 1980-01-01T00:00:00Z. The node extracts this layer onto the ESP, which is FAT: FAT cannot store
 * times before 1980, so an epoch-0 mtime would be clamped differently by each FAT driver.
 */
export const TAR_MTIME = 315532800;
const BLOCK = 512;
const MAX_OCTAL_SIZE = 0o77777777777; // 11 octal digits: 8 GiB - 1

/** Checks and sorts the entries (byte order of the path, as Go's sort.Strings does). */
export function normaliseEntries(entries: TarEntry[]): TarEntry[] {
    const seen = new Set<string>();
    for (const e of entries) {
        const parts = e.path.split("/");
        if (!e.path || e.path.startsWith("/") || parts.some((p) => p === "" || p === "." || p === "..")) {
            throw new Error(`container file path \`${e.path}\` must be relative, without empty, \`.\` or \`..\` parts (e.g. \`EFI/kairos/norole.efi\`)`);
        }
        if (seen.has(e.path)) throw new Error(`container file path \`${e.path}\` is given twice`);
        seen.add(e.path);
        const st = fs.statSync(e.source);
        if (!st.isFile()) throw new Error(`container file ${e.path}: source ${e.source} is not a regular file`);
    }
    return [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

/** The 512-byte ustar header of a regular file. */
export function tarHeader(name: string, size: number, mode = 0o644): Buffer {
    if (size > MAX_OCTAL_SIZE) throw new Error(`${name}: ${size} bytes is more than a ustar header can record`);
    const h = Buffer.alloc(BLOCK);
    let prefix = "";
    let base = name;
    if (Buffer.byteLength(name) > 100) {
        // ustar splits long names at a `/` into prefix (155) and name (100).
        const cut = name.lastIndexOf("/", 155);
        if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`container file path \`${name}\` is too long for a ustar header`);
        prefix = name.slice(0, cut);
        base = name.slice(cut + 1);
    }
    h.write(base, 0, 100, "utf8");
    h.write(octal(mode, 7), 100);
    h.write(octal(0, 7), 108); // uid
    h.write(octal(0, 7), 116); // gid
    h.write(octal(size, 11), 124);
    h.write(octal(TAR_MTIME, 11), 136);
    h.write("        ", 148); // checksum counts as spaces while summing
    h.write("0", 156); // regular file
    h.write("ustar\u000000", 257);
    h.write(prefix, 345, 155, "utf8");
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${octal(sum, 6)}\u0000 `, 148);
    return h;
}

/** Yields the archive: header, file bytes (read in chunks), padding; then the two end blocks. */
export async function* tarStream(entries: { path: string; source: string; size?: number }[]): AsyncGenerator<Buffer> {
    for (const e of entries) {
        const size = e.size ?? fs.statSync(e.source).size;
        yield tarHeader(e.path, size);
        let copied = 0;
        const fh = await fs.promises.open(e.source, "r");
        try {
            for (;;) {
                const buf = Buffer.allocUnsafe(READ_CHUNK);
                const { bytesRead } = await fh.read(buf, 0, buf.length, null);
                if (bytesRead === 0) break;
                copied += bytesRead;
                yield buf.subarray(0, bytesRead);
            }
        } finally {
            await fh.close();
        }
        if (copied !== size) throw new Error(`${e.source} changed size while it was archived (${size} -> ${copied} bytes)`);
        const pad = (BLOCK - (size % BLOCK)) % BLOCK;
        if (pad) yield Buffer.alloc(pad);
    }
    yield Buffer.alloc(2 * BLOCK);
}

function octal(n: number, width: number): string {
    return n.toString(8).padStart(width, "0");
}

// EFI System Partition images: a FAT filesystem in a plain file, formatted with mformat and filled with
// mmd/mcopy (mtools), so no mount, loop device or root is needed. The same files and epoch give the same
// bytes: the serial number is fixed (-N), mtools 4.0.32 takes every timestamp it writes (the volume label
// entry, each directory and each file) from SOURCE_DATE_EPOCH, TZ is pinned to UTC because FAT stores
// local time, directories are created in sorted order and files copied in sorted order, so the cluster
// allocation and the generated 8.3 short names come out the same every time.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run, ToolFailedError } from "../run";
import { sha256File, sha256Hex } from "../files";

export class EspError extends Error {
    readonly code = "ESP";
}

export interface EspFile {
    /** Path inside the ESP, "/"-separated and relative, e.g. "EFI/BOOT/BOOTX64.EFI". */
    espPath: string;
    /** Absolute path of a regular file on the host. */
    source: string;
}

export interface BuildEspOptions {
    files: EspFile[];
    /** Directories to create even when no file lands in them (e.g. "EFI/tools", "loader/keys"). */
    emptyDirs?: string[];
    /** The image file to write; replaced atomically. */
    out: string;
    /** Seconds since 1970 for every timestamp in the filesystem; FAT can hold 1980-01-01 .. 2107-12-31. */
    epoch: number;
    /** FAT volume label, at most 11 characters. @default "KAIROS_ESP" */
    volumeLabel?: string;
    /** FAT volume serial as 8 hex digits; default: derived from the label, the epoch and the file list. */
    volumeId?: string;
    /** Fixed image size; default: computed from the contents (see espSizeMiB). */
    sizeMiB?: number;
}

export interface EspImage {
    path: string;
    sha256: string;
    /** Image size in bytes (= sizeMiB MiB). */
    size: number;
    sizeMiB: number;
    fatBits: 12 | 16 | 32;
    volumeLabel: string;
    volumeId: string;
    /** The ESP paths of the files, sorted. */
    files: string[];
    /** Every directory created, sorted (parents before children). */
    dirs: string[];
}

export const DEFAULT_ESP_LABEL = "KAIROS_ESP";
const MIB = 1024 * 1024;
/** Below this mformat cannot make a valid FAT32 (it needs 65525 clusters); it then picks FAT12/16. */
export const FAT32_MIN_MIB = 33;
const FAT_EPOCH_MIN = Date.UTC(1980, 0, 1) / 1000;
const FAT_EPOCH_MAX = Date.UTC(2107, 11, 31, 23, 59, 58) / 1000;
/** Worst-case cluster size mformat picks for the sizes an ESP has (8 sectors up to several GiB). */
const CLUSTER = 4096;
const MAX_GROW_ATTEMPTS = 4;

// ---------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------

const FORBIDDEN_NAME_CHARS = /["*/:<>?\\|\x00-\x1f\x7f]/;

/** Checks one ESP path and returns its components. FAT compares names case-insensitively. */
export function espPathParts(p: string, what = "ESP path"): string[] {
    if (typeof p !== "string" || p.length === 0) throw new EspError(`${what} must be a non-empty string`);
    if (p.startsWith("/")) throw new EspError(`${what} "${p}" must be relative (no leading "/")`);
    const parts = p.replace(/\/+$/, "").split("/");
    for (const part of parts) {
        if (part === "" || part === "." || part === "..") throw new EspError(`${what} "${p}" has an empty, "." or ".." component`);
        if (FORBIDDEN_NAME_CHARS.test(part)) throw new EspError(`${what} "${p}" has a character FAT cannot store (one of " * / : < > ? \\ | or a control character)`);
        if (/[ .]$/.test(part)) throw new EspError(`${what} "${p}": FAT drops trailing spaces and dots from "${part}"`);
        if (Buffer.byteLength(part, "utf16le") / 2 > 255) throw new EspError(`${what} "${p}": component longer than 255 characters`);
    }
    return parts;
}

export function validateVolumeLabel(label: string): string {
    if (!/^[A-Z0-9 !#$%&'()@^_`{}~-]{1,11}$/.test(label) || label.startsWith(" ")) {
        throw new EspError(`volume label "${label}" must be 1-11 characters of A-Z 0-9 space !#$%&'()@^_\`{}~- (upper case, no leading space)`);
    }
    return label;
}

export function validateVolumeId(id: string): string {
    if (!/^[0-9a-fA-F]{8}$/.test(id)) throw new EspError(`volume id "${id}" must be 8 hex digits (a 32-bit FAT serial)`);
    return id.toLowerCase();
}

export function validateEpoch(epoch: number): number {
    if (!Number.isInteger(epoch) || epoch < FAT_EPOCH_MIN || epoch > FAT_EPOCH_MAX) {
        throw new EspError(`epoch ${epoch} is outside what FAT timestamps can hold (${FAT_EPOCH_MIN} = 1980-01-01 .. ${FAT_EPOCH_MAX} = 2107-12-31)`);
    }
    return epoch;
}

export interface EspPlan {
    /** Files sorted by ESP path. */
    files: EspFile[];
    /** All directories, sorted; a parent always sorts before its children. */
    dirs: string[];
}

/** Normalises and checks the file list: no duplicates (case-insensitively), no file where a directory must be. */
export function planEsp(files: EspFile[], emptyDirs: string[] = []): EspPlan {
    const seen = new Map<string, { kind: "file" | "dir"; name: string }>();
    const dirs = new Set<string>();
    const addDir = (d: string) => {
        const key = d.toUpperCase();
        const prev = seen.get(key);
        if (prev?.kind === "file") throw new EspError(`"${prev.name}" is a file but is also needed as a directory`);
        if (prev && prev.name !== d) throw new EspError(`directories "${prev.name}" and "${d}" are the same on FAT (names are case-insensitive)`);
        seen.set(key, { kind: "dir", name: d });
        dirs.add(d);
    };
    const sorted = [...files].sort((a, b) => cmp(a.espPath, b.espPath));
    const out: EspFile[] = [];
    for (const f of sorted) {
        const parts = espPathParts(f.espPath);
        if (!path.isAbsolute(f.source)) throw new EspError(`source "${f.source}" of ${f.espPath} must be an absolute path`);
        for (let i = 1; i < parts.length; i++) addDir(parts.slice(0, i).join("/"));
        const name = parts.join("/");
        const key = name.toUpperCase();
        const prev = seen.get(key);
        if (prev) throw new EspError(prev.kind === "dir" ? `"${name}" is a directory but is also given as a file` : `"${prev.name}" and "${name}" are given twice (FAT names are case-insensitive)`);
        seen.set(key, { kind: "file", name });
        out.push({ espPath: name, source: f.source });
    }
    for (const d of emptyDirs) {
        const parts = espPathParts(d, "empty directory");
        for (let i = 1; i <= parts.length; i++) addDir(parts.slice(0, i).join("/"));
    }
    return { files: out, dirs: [...dirs].sort(cmp) };
}

/**
 * The image size in MiB for the given contents: AuroraBoot's formula (Σsize + 2% + 32 B per entry +
 * 2 KiB per file + 512 KiB, rounded up, + 1 MiB), made safe for 4 KiB clusters (each file and directory
 * rounded up to a cluster) and for the two FAT copies (8 bytes per 512-byte sector). From 33 MiB the
 * image is FAT32; below, mformat's FAT12/16 (valid ESPs for removable media and El Torito).
 */
export function espSizeMiB(fileSizes: number[], dirCount: number): number {
    const total = fileSizes.reduce((a, b) => a + b, 0);
    const clusters = fileSizes.reduce((a, s) => a + Math.ceil(Math.max(s, 1) / CLUSTER) * CLUSTER, 0) + dirCount * CLUSTER;
    const entries = (fileSizes.length + dirCount) * 32;
    const fats = Math.ceil((clusters / 512) * 8);
    const bytes = clusters + entries + fats + Math.ceil(total * 0.02) + 512 * 1024 + fileSizes.length * 2048;
    return Math.max(Math.ceil(bytes / MIB) + 1, 2);
}

/** The default serial: stable for a given label, epoch and list of (path, size). */
export function defaultVolumeId(label: string, epoch: number, files: Array<{ espPath: string; size: number }>): string {
    const list = files.map((f) => `${f.espPath}\t${f.size}`).sort(cmp).join("\n");
    return sha256Hex(`pulumi-kairos/esp:${label}:${epoch}\n${list}`).slice(0, 8);
}

function cmp(a: string, b: string): number {
    return a < b ? -1 : a > b ? 1 : 0;
}

/** The FAT type, read from the boot sector's file system type string. */
export function fatBitsOf(bootSector: Buffer): 12 | 16 | 32 {
    if (bootSector.toString("latin1", 82, 90) === "FAT32   ") return 32;
    const t = bootSector.toString("latin1", 54, 62);
    if (t === "FAT16   ") return 16;
    if (t === "FAT12   ") return 12;
    throw new EspError(`not a FAT boot sector (type strings "${bootSector.toString("latin1", 54, 62)}" / "${bootSector.toString("latin1", 82, 90)}")`);
}

// ---------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------

function mtoolsEnv(epoch: number): Record<string, string> {
    return {
        MTOOLS_SKIP_CHECK: "1",
        // Every timestamp mtools writes (label entry, mmd, mcopy without -m) comes from here.
        SOURCE_DATE_EPOCH: String(epoch),
        // FAT timestamps are local time: pin the zone so the bytes do not depend on the host.
        TZ: "UTC",
        // No user configuration (~/.mtoolsrc) may change name mangling or checks.
        MTOOLSRC: "/dev/null",
    };
}

/** mtools' "::/a/b" form of an ESP path. */
function mpath(p: string): string {
    return `::/${p}`;
}

/** Builds the FAT image. Deterministic: the same files (bytes), paths, epoch, label and id give the same sha256. */
export async function buildEspImage(opts: BuildEspOptions): Promise<EspImage> {
    const epoch = validateEpoch(opts.epoch);
    const volumeLabel = validateVolumeLabel(opts.volumeLabel ?? DEFAULT_ESP_LABEL);
    const plan = planEsp(opts.files, opts.emptyDirs);
    const sizes = plan.files.map((f) => {
        let st: fs.Stats;
        try {
            st = fs.statSync(f.source);
        } catch (e) {
            throw new EspError(`source of ${f.espPath} is not readable: ${(e as Error).message}`);
        }
        if (!st.isFile()) throw new EspError(`source of ${f.espPath} (${f.source}) is not a regular file`);
        if (st.size >= 4 * 1024 * MIB) throw new EspError(`${f.espPath} is ${st.size} bytes; FAT32 files must be smaller than 4 GiB`);
        return st.size;
    });
    const volumeId = validateVolumeId(
        opts.volumeId ?? defaultVolumeId(volumeLabel, epoch, plan.files.map((f, i) => ({ espPath: f.espPath, size: sizes[i] }))),
    );
    if (opts.sizeMiB !== undefined && (!Number.isInteger(opts.sizeMiB) || opts.sizeMiB < 1 || opts.sizeMiB > 1024 * 1024)) {
        throw new EspError(`sizeMiB ${opts.sizeMiB} must be a whole number of MiB between 1 and 1048576`);
    }
    const env = mtoolsEnv(epoch);
    fs.mkdirSync(path.dirname(opts.out), { recursive: true });
    const tmp = `${opts.out}.tmp-${process.pid}-${Date.now()}`;
    let sizeMiB = opts.sizeMiB ?? espSizeMiB(sizes, plan.dirs.length);
    try {
        for (let attempt = 0; ; attempt++) {
            try {
                await fillImage(tmp, sizeMiB, volumeLabel, volumeId, plan, env);
                break;
            } catch (e) {
                // A computed size that was too small (many tiny files, big clusters): grow and start over.
                // Still deterministic: the same inputs fail and grow the same way.
                if (opts.sizeMiB === undefined && attempt < MAX_GROW_ATTEMPTS && isDiskFull(e)) {
                    sizeMiB = Math.max(FAT32_MIN_MIB, Math.ceil(sizeMiB * 1.25));
                    continue;
                }
                if (isDiskFull(e)) throw new EspError(`the files do not fit into a ${sizeMiB} MiB FAT image: ${(e as Error).message}`);
                throw e;
            }
        }
        const fd = fs.openSync(tmp, "r");
        const boot = Buffer.alloc(512);
        try {
            fs.readSync(fd, boot, 0, 512, 0);
        } finally {
            fs.closeSync(fd);
        }
        const fatBits = fatBitsOf(boot);
        fs.renameSync(tmp, opts.out);
        return {
            path: opts.out,
            sha256: await sha256File(opts.out),
            size: sizeMiB * MIB,
            sizeMiB,
            fatBits,
            volumeLabel,
            volumeId,
            files: plan.files.map((f) => f.espPath),
            dirs: plan.dirs,
        };
    } finally {
        fs.rmSync(tmp, { force: true });
    }
}

async function fillImage(file: string, sizeMiB: number, label: string, volumeId: string, plan: EspPlan, env: Record<string, string>): Promise<void> {
    fs.rmSync(file, { force: true });
    // -C creates the file (sparse); -T is the sector count; FAT32 (-F) when it is big enough, else
    // mformat picks FAT12/16 for the size. -N: the serial; -v: the label (its entry is timestamped from SOURCE_DATE_EPOCH).
    await run(["mformat", "-C", "-i", file, "-T", String(sizeMiB * 2048), ...(sizeMiB >= FAT32_MIN_MIB ? ["-F"] : []), "-N", volumeId, "-v", label, "::"], { env });
    if (plan.dirs.length > 0) await run(["mmd", "-i", file, ...plan.dirs.map(mpath)], { env });
    for (const f of plan.files) {
        // No -m: the entry gets SOURCE_DATE_EPOCH, not the source's mtime.
        await run(["mcopy", "-i", file, f.source, mpath(f.espPath)], { env });
    }
}

function isDiskFull(e: unknown): boolean {
    return e instanceof ToolFailedError && /disk full|no free clusters|not enough space/i.test(e.stderr);
}

// ---------------------------------------------------------------------------------------------
// Inspect
// ---------------------------------------------------------------------------------------------

/** The paths in a FAT image, sorted ("EFI/BOOT/BOOTX64.EFI"); with `dirs`, directories too, with a trailing "/". */
export async function listEsp(image: string, opts: { dirs?: boolean } = {}): Promise<string[]> {
    // -a: hidden and system files too (without it mdir leaves them out, and a check of what the ESP holds would miss them)
    const { stdout } = await run(["mdir", "-i", image, "-/", "-a", "-b", "::/"], { env: { MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null" } });
    return stdout
        .split("\n")
        .filter((l) => l.startsWith("::/"))
        .map((l) => l.slice(3))
        .filter((l) => l !== "" && (opts.dirs || !l.endsWith("/")))
        .sort(cmp);
}

/** Reads one file out of a FAT image. */
export async function readEspFile(image: string, espPath: string): Promise<Buffer> {
    espPathParts(espPath);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-esp-read-"));
    try {
        const out = path.join(dir, "f");
        await run(["mcopy", "-i", image, "-n", mpath(espPath), out], { env: { MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null" } });
        return fs.readFileSync(out);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

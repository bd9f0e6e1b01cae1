// UEFI boot ISOs in AuroraBoot's layout, built with xorriso (no mount, no root): the ISO root holds
// /efiboot.img (the ESP image, as a file: immucore loop-mounts it from /run/initramfs/live at install
// time) plus overlay files; the volume id is UKI_ISO_INSTALL (immucore finds the medium by that label);
// one El Torito entry, platform 0xEF (UEFI), no emulation, points at /efiboot.img.
//
// Unlike AuroraBoot's ISO the file is also a hybrid disk image: `-efi-boot-part --efi-boot-image` writes
// a protective MBR and a GPT whose EFI System Partition entry covers the very blocks of /efiboot.img
// inside the ISO 9660 tree (the rest of the image is described by two "Gap" basic-data entries), so the
// ESP is stored once and the same file boots from a CD drive, BMC virtual media, or `dd` to a USB stick.
// (AuroraBoot's `-isohybrid-gpt-basdat` alone writes no table at all; `-append_partition … -appended_part_as_gpt`
// would also work but stores the ESP a second time after the ISO tree.)
//
// Deterministic: every file and directory date, the volume dates, the volume "UUID" and the GPT GUIDs
// come from the epoch (SOURCE_DATE_EPOCH plus explicit --modification-date/--set_all_file_dates/
// --gpt_disk_guid), Rock Ridge attributes are normalised (-r: owner 0:0, modes r-x/r--), TZ is UTC.
import * as fs from "fs";
import * as path from "path";
import { run } from "../run";
import { sha256File } from "../files";

export class IsoError extends Error {
    readonly code = "ISO";
}

/** The label immucore mounts the installation medium by. */
export const UKI_ISO_VOLUME_ID = "UKI_ISO_INSTALL";
/** The ESP image's name in the ISO root; immucore loop-mounts /run/initramfs/live/efiboot.img. */
export const ISO_ESP_NAME = "efiboot.img";
/** The type GUID of an EFI System Partition. */
export const ESP_TYPE_GUID = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

export interface IsoFile {
    /** Path in the ISO, e.g. "README.txt" or "/var/lib/kairos/extensions/x.raw" (leading "/" optional). */
    isoPath: string;
    /** Absolute host path of a file, or of a directory that is grafted with all its contents. */
    source: string;
}

export interface BuildIsoOptions {
    /** The FAT ESP image (see esp.ts); stored as /efiboot.img. */
    espImage: string;
    /** Extra files (AuroraBoot's --overlay-iso): unsigned, readable at /run/initramfs/live during install. */
    rootFiles?: IsoFile[];
    /** ISO 9660 volume id (max. 32 of A-Z 0-9 _). @default "UKI_ISO_INSTALL" */
    volumeId?: string;
    out: string;
    /** Seconds since 1970 for every date in the image. */
    epoch: number;
    /** Also write a protective MBR + GPT with an ESP entry, so the file boots as a disk. @default true */
    hybrid?: boolean;
}

export interface IsoImage {
    path: string;
    sha256: string;
    size: number;
    volumeId: string;
    hybrid: boolean;
    /** Where /efiboot.img lies in the file (the GPT ESP partition when hybrid); bytes. */
    esp: { offset: number; size: number };
}

const ISO_VOLUME_ID_RE = /^[A-Z0-9_]{1,32}$/;
const RESERVED = new Set([ISO_ESP_NAME, "boot.catalog"]);

// ---------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------

/** "a/b", "/a/b" -> "/a/b"; refuses "..", empty components and the names the builder owns. */
export function normalizeIsoPath(p: string): string {
    if (typeof p !== "string" || p.replace(/^\/+|\/+$/g, "") === "") throw new IsoError(`ISO path "${p}" is empty`);
    const parts = p.replace(/^\/+|\/+$/g, "").split("/");
    for (const part of parts) {
        if (part === "" || part === "." || part === "..") throw new IsoError(`ISO path "${p}" has an empty, "." or ".." component`);
        if (/[\x00-\x1f\x7f]/.test(part)) throw new IsoError(`ISO path "${p}" has a control character`);
        if (Buffer.byteLength(part) > 255) throw new IsoError(`ISO path "${p}": component longer than 255 bytes`);
    }
    if (parts.length === 1 && RESERVED.has(parts[0])) throw new IsoError(`ISO path "/${parts[0]}" is reserved for the boot image / catalog`);
    return `/${parts.join("/")}`;
}

/** mkisofs graft-point syntax: "=" separates ISO path and disk path; "\" and "=" in either are escaped. */
export function graftPoint(isoPath: string, source: string): string {
    const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/=/g, "\\=");
    return `${esc(isoPath)}=${esc(source)}`;
}

/** The 16-digit ISO 9660 time string (YYYYMMDDhhmmsscc, UTC) of an epoch. */
export function isoTimestamp(epoch: number): string {
    const d = new Date(epoch * 1000);
    const p = (n: number, w = 2) => String(n).padStart(w, "0");
    return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}00`;
}

/** The xorriso argv (without the leading "xorriso"), exported for tests and for provider previews. */
export function xorrisoArgs(opts: { espImage: string; rootFiles: IsoFile[]; volumeId: string; out: string; epoch: number; hybrid: boolean }): string[] {
    const t = isoTimestamp(opts.epoch);
    const grafts = [graftPoint(`/${ISO_ESP_NAME}`, opts.espImage), ...opts.rootFiles.map((f) => graftPoint(normalizeIsoPath(f.isoPath), f.source))];
    return [
        "-as", "mkisofs",
        "-o", opts.out,
        "-iso-level", "3", // files >= 4 GiB (big sysexts, images) are stored as multi-extent files
        "-r", // Rock Ridge with normalised owner/modes: the host's uid/umask do not leak into the image
        "-V", opts.volumeId,
        `--modification-date=${t}`, // volume creation/modification dates and the volume "UUID"
        "--set_all_file_dates", t, // mtime/atime/ctime of every file and directory
        "--gpt_disk_guid", "modification-date", // GPT disk + partition GUIDs derived from the date
        "-c", "/boot.catalog", // the El Torito catalog as a visible file, as in AuroraBoot's ISO
        "-e", `/${ISO_ESP_NAME}`, "-no-emul-boot", // El Torito: platform 0xEF, no emulation
        ...(opts.hybrid ? ["-efi-boot-part", "--efi-boot-image"] : []), // GPT ESP entry = the El Torito image's blocks
        "-graft-points",
        ...grafts,
    ];
}

// ---------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------

export async function buildIso(opts: BuildIsoOptions): Promise<IsoImage> {
    const volumeId = opts.volumeId ?? UKI_ISO_VOLUME_ID;
    if (!ISO_VOLUME_ID_RE.test(volumeId)) throw new IsoError(`volume id "${volumeId}" must be 1-32 characters of A-Z 0-9 _`);
    if (!Number.isInteger(opts.epoch) || opts.epoch < 0 || opts.epoch > Date.UTC(9999, 0) / 1000) throw new IsoError(`epoch ${opts.epoch} is not a valid time`);
    const hybrid = opts.hybrid ?? true;
    checkSource(opts.espImage, "espImage", false);
    const seen = new Set<string>();
    const rootFiles = (opts.rootFiles ?? []).map((f) => {
        const isoPath = normalizeIsoPath(f.isoPath);
        if (seen.has(isoPath)) throw new IsoError(`ISO path ${isoPath} is given twice`);
        seen.add(isoPath);
        checkSource(f.source, isoPath, true);
        return { isoPath, source: f.source };
    });
    for (const p of seen) {
        for (let q = path.posix.dirname(p); q !== "/"; q = path.posix.dirname(q)) {
            if (seen.has(q)) throw new IsoError(`ISO path ${p} lies inside ${q}, which is also given`);
        }
    }
    rootFiles.sort((a, b) => (a.isoPath < b.isoPath ? -1 : a.isoPath > b.isoPath ? 1 : 0));

    fs.mkdirSync(path.dirname(opts.out), { recursive: true });
    const tmp = `${opts.out}.tmp-${process.pid}-${Date.now()}`;
    try {
        await run(["xorriso", ...xorrisoArgs({ espImage: opts.espImage, rootFiles, volumeId, out: tmp, epoch: opts.epoch, hybrid })], {
            env: { SOURCE_DATE_EPOCH: String(opts.epoch), TZ: "UTC" },
        });
        const info = await inspectIso(tmp);
        const boot = info.elTorito.find((e) => e.platform === "UEFI");
        if (!boot) throw new IsoError("xorriso wrote no UEFI El Torito entry");
        const esp = { offset: boot.lba * 2048, size: fs.statSync(opts.espImage).size };
        if (hybrid) {
            const part = info.gpt.find((p) => p.type === ESP_TYPE_GUID);
            if (!part || part.start * 512 !== esp.offset || part.size * 512 !== esp.size) {
                throw new IsoError(`the GPT ESP entry does not cover /${ISO_ESP_NAME} (${JSON.stringify(part)} vs ${JSON.stringify(esp)})`);
            }
        }
        fs.renameSync(tmp, opts.out);
        return { path: opts.out, sha256: await sha256File(opts.out), size: fs.statSync(opts.out).size, volumeId, hybrid, esp };
    } finally {
        fs.rmSync(tmp, { force: true });
    }
}

function checkSource(source: string, what: string, dirOk: boolean): void {
    if (!path.isAbsolute(source)) throw new IsoError(`source of ${what} must be an absolute path: ${source}`);
    let st: fs.Stats;
    try {
        st = fs.statSync(source);
    } catch (e) {
        throw new IsoError(`source of ${what} is not readable: ${(e as Error).message}`);
    }
    if (!st.isFile() && !(dirOk && st.isDirectory())) throw new IsoError(`source of ${what} (${source}) is not a regular file${dirOk ? " or directory" : ""}`);
}

// ---------------------------------------------------------------------------------------------
// Inspect
// ---------------------------------------------------------------------------------------------

/** Splits xorriso's shell-quoted output words ('a'"'"'b' -> a'b). */
export function unquoteXorriso(s: string): string {
    let out = "";
    let i = 0;
    while (i < s.length) {
        const q = s[i];
        if (q === "'" || q === '"') {
            const end = s.indexOf(q, i + 1);
            if (end < 0) throw new IsoError(`unbalanced quote in xorriso output: ${s}`);
            out += s.slice(i + 1, end);
            i = end + 1;
        } else {
            out += q;
            i++;
        }
    }
    return out;
}

/** The paths in an ISO (no leading "/"), sorted; with `dirs`, directories too, with a trailing "/". */
export async function listIso(iso: string, opts: { dirs?: boolean } = {}): Promise<string[]> {
    const files = await findIso(iso, "f");
    const all = opts.dirs ? [...files, ...(await findIso(iso, "d")).filter((d) => d !== "/").map((d) => `${d}/`)] : files;
    return all.map((p) => p.replace(/^\//, "")).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function findIso(iso: string, type: "f" | "d"): Promise<string[]> {
    // "-type f" would skip the boot catalog (xorriso's type "e"), so non-files are "not a directory".
    const test = type === "d" ? ["-type", "d"] : ["-not", "-type", "d"];
    const { stdout } = await run(["xorriso", "-abort_on", "FAILURE", "-indev", iso, "-find", "/", ...test]);
    return stdout.split("\n").filter((l) => l.startsWith("'")).map(unquoteXorriso);
}

export interface IsoInfo {
    volumeId: string;
    elTorito: Array<{ index: number; platform: string; bootable: boolean; emulation: string; lba: number; path?: string }>;
    /** "none", or xorriso's summary, e.g. "MBR protective-msdos-label cyl-align-off GPT". */
    systemArea: string;
    /** GPT entries, 512-byte sectors; type and guid as lower-case GUID strings. */
    gpt: Array<{ index: number; name: string; type: string; start: number; size: number; path?: string }>;
    mbr: Array<{ index: number; type: string; start: number; blocks: number }>;
}

/** Reads the volume id, El Torito catalog and system area (MBR/GPT) with xorriso's own reports. */
export async function inspectIso(iso: string): Promise<IsoInfo> {
    const { stdout } = await run(["xorriso", "-abort_on", "FAILURE", "-indev", iso, "-pvd_info", "-report_el_torito", "plain", "-report_system_area", "plain"]);
    const lines = stdout.split("\n");
    const field = (re: RegExp) => lines.map((l) => l.match(re)).filter((m): m is RegExpMatchArray => m !== null);
    const volumeId = field(/^Volume Id\s*:\s?(.*)$/)[0]?.[1] ?? "";
    const elTorito: IsoInfo["elTorito"] = field(/^El Torito boot img :\s+(\d+)\s+(\S+)\s+([yn])\s+(\S+)\s+\S+\s+\S+\s+\S+\s+(\d+)$/).map((m) => ({
        index: Number(m[1]),
        platform: m[2],
        bootable: m[3] === "y",
        emulation: m[4],
        lba: Number(m[5]),
    }));
    for (const m of field(/^El Torito img path :\s+(\d+)\s+(.*)$/)) {
        const e = elTorito.find((x) => x.index === Number(m[1]));
        if (e) e.path = m[2];
    }
    const gpt = new Map<number, IsoInfo["gpt"][number]>();
    const entry = (i: number) => {
        if (!gpt.has(i)) gpt.set(i, { index: i, name: "", type: "", start: 0, size: 0 });
        return gpt.get(i)!;
    };
    for (const m of field(/^GPT partname local :\s+(\d+)\s+(.*)$/)) entry(Number(m[1])).name = m[2];
    for (const m of field(/^GPT type GUID\s*:\s+(\d+)\s+([0-9a-f]{32})$/)) entry(Number(m[1])).type = guidFromXorriso(m[2]);
    for (const m of field(/^GPT start and size :\s+(\d+)\s+(\d+)\s+(\d+)$/)) Object.assign(entry(Number(m[1])), { start: Number(m[2]), size: Number(m[3]) });
    for (const m of field(/^GPT partition path :\s+(\d+)\s+(.*)$/)) entry(Number(m[1])).path = m[2];
    const mbr = field(/^MBR partition\s*:\s+(\d+)\s+\S+\s+(0x[0-9a-f]+)\s+(\d+)\s+(\d+)$/).map((m) => ({ index: Number(m[1]), type: m[2], start: Number(m[3]), blocks: Number(m[4]) }));
    const systemArea = field(/^System area summary:\s*(.*)$/)[0]?.[1] ?? "none";
    return { volumeId, elTorito, systemArea, gpt: [...gpt.values()].sort((a, b) => a.index - b.index), mbr };
}

/** Where a file's data lies in the ISO: its first 2048-byte block and its block count (one extent only). */
export async function isoFileExtent(iso: string, isoPath: string): Promise<{ lba: number; blocks: number; size: number }> {
    const { stdout } = await run(["xorriso", "-abort_on", "FAILURE", "-indev", iso, "-find", isoPath, "-exec", "report_lba", "--"]);
    const extents = stdout.split("\n").map((l) => /^File data lba:\s+\d+\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
    if (extents.length !== 1) throw new IsoError(`${iso}: ${isoPath} has ${extents.length} data extents, not one`);
    return { lba: Number(extents[0][1]), blocks: Number(extents[0][2]), size: Number(extents[0][3]) };
}

/** GPT type of the "Gap" partitions xorriso adds around an appended or embedded ESP (Microsoft basic data). */
export const GAP_TYPE_GUID = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";

/**
 * What is wrong with how the ISO boots, measured against /efiboot.img: the El Torito catalog must hold
 * one UEFI image, /efiboot.img at its own blocks; the GPT exactly one ESP, spanning exactly
 * /efiboot.img's blocks (a USB boot uses it, so an ESP appended elsewhere would boot unchecked), besides
 * only xorriso's "Gap" entries over the ISO's own data; the MBR only the protective entry. undefined: fine.
 */
export async function espBootProblem(iso: string): Promise<string | undefined> {
    const info = await inspectIso(iso);
    const esp = await isoFileExtent(iso, `/${ISO_ESP_NAME}`);
    const sectors = { start: esp.lba * 4, size: esp.blocks * 4 };
    const isoSectors = Math.floor(fs.statSync(iso).size / 512);
    if (info.elTorito.length !== 1) return `its El Torito catalog has ${info.elTorito.length} boot images, not one`;
    const et = info.elTorito[0];
    if (et.platform !== "UEFI" || et.path !== `/${ISO_ESP_NAME}` || et.lba !== esp.lba) return `its El Torito boot image is ${et.platform} at block ${et.lba} (${et.path ?? "no path"}), not /${ISO_ESP_NAME} at block ${esp.lba}`;
    const espEntries = info.gpt.filter((g) => g.type === ESP_TYPE_GUID);
    if (espEntries.length !== 1) return `its GPT has ${espEntries.length} EFI system partitions, not one`;
    if (espEntries[0].start !== sectors.start || espEntries[0].size !== sectors.size) {
        return `its GPT EFI system partition spans sectors ${espEntries[0].start}+${espEntries[0].size}, not /${ISO_ESP_NAME} (${sectors.start}+${sectors.size})`;
    }
    for (const g of info.gpt.filter((x) => x.type !== ESP_TYPE_GUID)) {
        const overlaps = g.start < sectors.start + sectors.size && sectors.start < g.start + g.size;
        if (g.type !== GAP_TYPE_GUID || !/^Gap\d+$/.test(g.name) || overlaps || g.start + g.size > isoSectors) return `its GPT has a partition ${g.index} ("${g.name}", type ${g.type}, sectors ${g.start}+${g.size}) that no build makes`;
    }
    const other = info.mbr.filter((m) => m.type !== "0xee");
    if (other.length > 0) return `its MBR has partitions ${other.map((m) => `${m.index} (type ${m.type})`).join(", ")} besides the protective one`;
    return undefined;
}

/** xorriso prints GUIDs as their 16 on-disk bytes (first three fields little-endian). */
export function guidFromXorriso(hex: string): string {
    const b = Buffer.from(hex, "hex");
    const le = (o: number, n: number) => Buffer.from(b.subarray(o, o + n)).reverse().toString("hex");
    return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${b.subarray(8, 10).toString("hex")}-${b.subarray(10, 16).toString("hex")}`;
}

// PCR 13 as systemd-stub leaves it: the stub (≥ 250) loads the extension images it finds in
// `<uki>.efi.extra.d/`, packs them into ONE cpio archive that the kernel unpacks as /.extra/sysext/,
// and measures that archive's bytes into PCR 13 as a single EV_IPL event. Predicting PCR 13 therefore
// means rebuilding that archive byte for byte (systemd 257 src/boot/cpio.c, pack_cpio):
// - picked up: every regular file whose name ends in ".raw" (case-insensitively), except names
//   starting with "." and non-ASCII or > 255 character names; sorted by strcmp16 (code-unit order,
//   case-sensitive). systemd 257's stub leaves out "*.confext.raw" (it measures those into PCR 12);
//   252's picks them up as sysexts (both read in their sources; the change came in between);
// - newc records, inode numbers counting from 1: the directories ".extra" and ".extra/sysext" (0555),
//   then each file as ".extra/sysext/NAME" (0444), uid/gid/mtime 0, nlink 1, every record and every
//   file's data padded to 4 bytes; then the TRAILER!!! record;
// - no file: no measurement at all, PCR 13 stays zero.
// The stub hashes with each bank's algorithm and extends: PCR = H(PCR || H(archive)).
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { PcrBank, extendPcr } from "./pcr11";

export type Pcr13Bank = Extract<PcrBank, "sha1" | "sha256">;
const PCR13_BANKS: readonly Pcr13Bank[] = ["sha1", "sha256"];

export class Pcr13Error extends Error {
    readonly code = "PCR13";
}

const SYSEXT_DIR = ".extra/sysext";
const CPIO_MAGIC = "070701";
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const DIR_MODE = 0o555;
const FILE_MODE = 0o444;
const MAX_NAME = 255;
const MAX_CPIO_FILE = 0xffffffff;

/** The first systemd-stub release known to keep *.confext.raw out of /.extra/sysext (255's NEWS; 252 does not, 257 does). */
export const STUB_CONFEXT_SPLIT_MAJOR = 255;

export interface StubBehaviour {
    /** The stub's systemd major version. @default a current stub (confexts are left out) */
    stubMajor?: number;
}

/** Would systemd-stub put this file name into /.extra/sysext (and PCR 13)? */
export function stubLoadsAsSysext(name: string, stub: StubBehaviour = {}): boolean {
    const lower = name.toLowerCase();
    const confextsApart = (stub.stubMajor ?? STUB_CONFEXT_SPLIT_MAJOR) >= STUB_CONFEXT_SPLIT_MAJOR;
    return (
        lower.endsWith(".raw") &&
        !(confextsApart && lower.endsWith(".confext.raw")) &&
        !name.startsWith(".") &&
        /^[\x01-\x7f]*$/.test(name) &&
        name.length <= MAX_NAME
    );
}

/** strcmp16 on ASCII names: code-unit order, case-sensitive. */
function byCodeUnit(a: string, b: string): number {
    return a < b ? -1 : a > b ? 1 : 0;
}

function hex8(v: number): string {
    return v.toString(16).padStart(8, "0");
}

function padding(length: number): Buffer {
    return Buffer.alloc((4 - (length % 4)) % 4);
}

/** One newc header + name (NUL-terminated) + padding to 4 bytes. */
export function cpioHeader(inode: number, mode: number, size: number, name: string): Buffer {
    const fields = [inode, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, Buffer.byteLength(name) + 1, 0];
    const head = Buffer.from(CPIO_MAGIC + fields.map(hex8).join("") + name + "\0", "latin1");
    return Buffer.concat([head, padding(head.length)]);
}

/** The fixed trailer record, exactly as the stub writes it (upper-case B in the name size). */
export const STUB_CPIO_TRAILER = Buffer.from(`${CPIO_MAGIC}${"00000000".repeat(4)}00000001${"00000000".repeat(6)}0000000B00000000TRAILER!!!\0\0\0\0`, "latin1");

export interface StubExtension {
    /** The file name on the ESP (what the stub sees). */
    name: string;
    /** Where its bytes are on this machine. */
    source: string;
}

export interface Pcr13Prediction {
    /** Hex PCR 13 per bank after the stub ran (all zeros when no extension is loaded). */
    values: Record<Pcr13Bank, string>;
    /** The files the stub measures, in its order. */
    extensions: string[];
    /** Digest of the archive per bank (the event's digest); undefined when nothing is measured. */
    eventDigests?: Record<Pcr13Bank, string>;
}

/** Streams the stub's archive for `files` through `sink` (no file is read into memory whole). */
export async function writeStubSysextCpio(files: StubExtension[], sink: (chunk: Buffer) => void, stub: StubBehaviour = {}): Promise<string[]> {
    const loaded = files.filter((f) => stubLoadsAsSysext(f.name, stub)).sort((a, b) => byCodeUnit(a.name, b.name));
    const names = loaded.map((f) => f.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new Pcr13Error(`${dup} is given twice; one folder cannot hold it twice`);
    if (loaded.length === 0) return [];
    let inode = 1;
    sink(cpioHeader(inode++, S_IFDIR | DIR_MODE, 0, ".extra"));
    sink(cpioHeader(inode++, S_IFDIR | DIR_MODE, 0, SYSEXT_DIR));
    for (const f of loaded) {
        const size = fs.statSync(f.source).size;
        if (size > MAX_CPIO_FILE) throw new Pcr13Error(`${f.name} is ${size} bytes; the stub's cpio cannot hold files of 4 GiB or more, so it would load no extension at all`);
        sink(cpioHeader(inode++, S_IFREG | FILE_MODE, size, `${SYSEXT_DIR}/${f.name}`));
        let read = 0;
        for await (const chunk of fs.createReadStream(f.source)) {
            read += (chunk as Buffer).length;
            sink(chunk as Buffer);
        }
        if (read !== size) throw new Pcr13Error(`${f.source} changed while it was read (${read} of ${size} bytes)`);
        sink(padding(size));
    }
    sink(STUB_CPIO_TRAILER);
    return names;
}

/** PCR 13 after systemd-stub loaded `files` from the booted UKI's .extra.d folder. */
export async function predictPcr13(files: StubExtension[], stub: StubBehaviour = {}): Promise<Pcr13Prediction> {
    const hashes = new Map(PCR13_BANKS.map((b) => [b, crypto.createHash(b)]));
    const extensions = await writeStubSysextCpio(files, (chunk) => hashes.forEach((h) => h.update(chunk)), stub);
    const perBank = (value: (b: Pcr13Bank) => Buffer) => Object.fromEntries(PCR13_BANKS.map((b) => [b, value(b).toString("hex")])) as Record<Pcr13Bank, string>;
    const zero = (b: Pcr13Bank) => Buffer.alloc(b === "sha1" ? 20 : 32);
    if (extensions.length === 0) return { values: perBank(zero), extensions };
    const event = new Map(PCR13_BANKS.map((b) => [b, hashes.get(b)!.digest()]));
    return { values: perBank((b) => extendPcr(b, zero(b), event.get(b)!)), extensions, eventDigests: perBank((b) => event.get(b)!) };
}

/** The extensions as the stub will see them in one .extra.d folder: file name = the file's own name. */
export function stubExtensions(paths: string[]): StubExtension[] {
    return paths.map((p) => ({ name: path.basename(p), source: p }));
}

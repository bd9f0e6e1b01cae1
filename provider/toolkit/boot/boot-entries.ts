// Boot entries of a Kairos UKI build: which UKIs are made, their file names, command lines and titles,
// and the systemd-boot loader entry and loader.conf texts (AuroraBoot build-uki §3.4, §3.7, §3.8).
//
// File names follow AuroraBoot's code (pkg/uki utils NameFromCmdline), not its docs: the base command line
// stripped from an extra entry is UkiCmdline *without* "install-mode", so an extra command line E gives
// "norole_install-mode_<E sanitised>" (e.g. norole_install-mode_rd.debug_rd.immucore.debug; Palette docs show
// norole_install-mode_stylus.registration.efi from a real build). Only the default entry's "install-mode"
// suffix is dropped from names.
//
// Loader entry key: Kairos ships a recent systemd-boot and AuroraBoot writes `uki <path>` (+ `profile N`).
// systemd-boot 252 (Debian 12) does not know `uki` (nor `profile`): it loads a UKI from a type #1 entry only
// through the `efi` key (it knows title, sort-key, version, machine-id, linux, efi, architecture, initrd,
// options, devicetree). kairos-agent rewrites efi -> uki only for systemd-boot >= 259. So `key` is a
// parameter: "uki" (default, for Kairos' systemd-boot) or "efi" (older systemd-boot, such as this host's 252).
// Likewise `secure-boot-enroll if-safe` is newer than 252 (253 per the AuroraBoot reference); 252 only knows
// off, manual and force, logs an error for other values and keeps its default, manual.

export class BootEntryError extends Error {
    readonly code = "BOOT_ENTRY";
}

/** AuroraBoot's constants.UkiCmdline. */
export const UKI_CMDLINE =
    "console=ttyS0 console=tty1 net.ifnames=1 rd.immucore.oemlabel=COS_OEM rd.immucore.oemtimeout=2 rd.immucore.uki selinux=0 panic=5 rd.shell=0 systemd.crash_reboot=yes";
/** AuroraBoot's constants.UkiCmdlineInstall. */
export const UKI_CMDLINE_INSTALL = "install-mode";
/** The default entry's command line: every UKI starts with it. */
export const DEFAULT_CMDLINE = `${UKI_CMDLINE} ${UKI_CMDLINE_INSTALL}`;
/** The base name kairos-agent looks for (and renames to active/passive/recovery/statereset on install). */
export const ARTIFACT_BASE_NAME = "norole";
export const EFI_DIR = "/EFI/kairos";

export interface SingleEntry {
    /** Shown as "<bootTitle> (<title>)"; also the file name (lowercased, spaces to "_"). */
    title?: string;
    /** Appended to the default command line. */
    cmdline: string;
}

export interface PlanBootEntriesOptions {
    /** Appended to the default command line of the one UKI (norole.efi). */
    extendCmdline?: string;
    /** One more UKI per value, each the default command line plus the value. */
    extraCmdlines?: string[];
    /** One more UKI each (AuroraBoot --single-efi-cmdline). */
    singleEntries?: SingleEntry[];
    /** Boot branding, AuroraBoot's --boot-branding (default "Kairos"). */
    bootTitle: string;
}

export interface BootEntry {
    /** Without extension: <fileName>.efi and <fileName>.conf. */
    fileName: string;
    /** The full kernel command line baked into the UKI. */
    cmdline: string;
    title: string;
    /** What AuroraBoot writes after `sort-key` (before the -<profile> suffix). */
    sortKey: string;
    /** The command line minus UkiCmdline, "" for the default entry (AuroraBoot's conf `cmdline`). */
    extraCmdline: string;
}

/** AuroraBoot's NameFromCmdline: the command line minus UkiCmdline, sanitised, appended to `base`. */
export function nameFromCmdline(base: string, cmdline: string): string {
    let rest = (cmdline.startsWith(UKI_CMDLINE) ? cmdline.slice(UKI_CMDLINE.length) : cmdline).trim();
    if (rest === UKI_CMDLINE_INSTALL) rest = "";
    const clean = rest.replace(/[^a-zA-Z0-9._-]+/g, "_");
    return `${base}_${clean}`.replace(/_$/, "").toLowerCase();
}

/** The part of a command line after UkiCmdline, as AuroraBoot puts it in a conf's `cmdline` line. */
export function extraPartOf(cmdline: string): string {
    const rest = (cmdline.startsWith(UKI_CMDLINE) ? cmdline.slice(UKI_CMDLINE.length) : cmdline).trim();
    return rest === UKI_CMDLINE_INSTALL ? "" : rest;
}

/** Parses AuroraBoot's --single-efi-cmdline value: "Title: args" or "args". */
export function parseSingleEntry(value: string): SingleEntry {
    const i = value.indexOf(":");
    return i < 0 ? { cmdline: value } : { title: value.slice(0, i), cmdline: value.slice(i + 1) };
}

const SAFE_NAME = /^[a-z0-9._-]+$/;

function checkCmdlinePart(what: string, value: string): string {
    if (/[\0\n\r]/.test(value)) throw new BootEntryError(`${what} contains a NUL or line break`);
    return value.trim().replace(/\s+/g, " ");
}

/** The UKIs a build makes, in AuroraBoot's order: norole, extras, single entries. */
export function planBootEntries(opts: PlanBootEntriesOptions): BootEntry[] {
    const title = opts.bootTitle.trim();
    if (!title || /[\n\r\0]/.test(title)) throw new BootEntryError("bootTitle must be one non-empty line");
    const extras = opts.extraCmdlines ?? [];
    if (opts.extendCmdline !== undefined && opts.extendCmdline.trim() !== "" && extras.length > 0) {
        throw new BootEntryError("extendCmdline and extraCmdlines cannot be combined: extend changes the one default UKI, extra adds more UKIs");
    }
    const entry = (fileName: string, cmdline: string, entryTitle: string): BootEntry => ({
        fileName,
        cmdline,
        title: entryTitle,
        sortKey: fileName,
        extraCmdline: extraPartOf(cmdline),
    });
    const entries: BootEntry[] = [];
    const extend = opts.extendCmdline === undefined ? "" : checkCmdlinePart("extendCmdline", opts.extendCmdline);
    // --extend-cmdline keeps the name "norole" on purpose: upgrades look for norole.efi (AuroraBoot #122).
    entries.push(entry(ARTIFACT_BASE_NAME, extend ? `${DEFAULT_CMDLINE} ${extend}` : DEFAULT_CMDLINE, title));
    for (const [i, raw] of extras.entries()) {
        const extra = checkCmdlinePart(`extraCmdlines[${i}]`, raw);
        if (!extra) throw new BootEntryError(`extraCmdlines[${i}] is empty`);
        const cmdline = `${DEFAULT_CMDLINE} ${extra}`;
        entries.push(entry(nameFromCmdline(ARTIFACT_BASE_NAME, cmdline), cmdline, title));
    }
    for (const [i, single] of (opts.singleEntries ?? []).entries()) {
        const args = checkCmdlinePart(`singleEntries[${i}].cmdline`, single.cmdline);
        const cmdline = args ? `${DEFAULT_CMDLINE} ${args}` : DEFAULT_CMDLINE;
        if (single.title !== undefined) {
            const t = single.title.trim();
            if (!t || /[\n\r\0]/.test(t)) throw new BootEntryError(`singleEntries[${i}].title must be one non-empty line`);
            const fileName = t.replace(/ /g, "_").toLowerCase();
            if (!SAFE_NAME.test(fileName)) {
                throw new BootEntryError(
                    `singleEntries[${i}].title '${t}' gives the file name '${fileName}.efi'; only letters, digits, '.', '_', '-' and spaces may be used`,
                );
            }
            entries.push(entry(fileName, cmdline, `${title} (${t})`));
        } else {
            entries.push(entry(nameFromCmdline("single_entry", args), cmdline, title));
        }
    }
    const seen = new Map<string, number>();
    for (const [i, e] of entries.entries()) {
        if (seen.has(e.fileName)) {
            throw new BootEntryError(`entries ${seen.get(e.fileName)} and ${i} would both be written as ${e.fileName}.efi`);
        }
        seen.set(e.fileName, i);
    }
    return entries;
}

export type LoaderEntryKey = "uki" | "efi";

export interface RenderLoaderEntryOptions {
    /** "uki" (default, what AuroraBoot writes, for a recent systemd-boot) or "efi" (older ones, e.g. Debian 12's 252). */
    key?: LoaderEntryKey;
    /** Profile number (`profile N` line, sort-key suffix). Default 0 with the uki key, none with efi. */
    profile?: number | null;
    /** Adds `version <value>` (AuroraBoot --include-version-in-config, value KAIROS_RELEASE). */
    version?: string;
    /** Adds `cmdline <extra part>` (AuroraBoot --include-cmdline-in-config); systemd-boot ignores the key. */
    includeCmdline?: boolean;
    /** Directory of the UKIs on the ESP (default /EFI/kairos). */
    efiDir?: string;
}

/** The loader entry (.conf) text for one UKI. */
export function renderLoaderEntry(entry: BootEntry, opts: RenderLoaderEntryOptions = {}): string {
    const key = opts.key ?? "uki";
    if (key !== "uki" && key !== "efi") throw new BootEntryError(`loader entry key must be 'uki' or 'efi', not '${key}'`);
    const profile = opts.profile === undefined ? (key === "uki" ? 0 : null) : opts.profile;
    if (profile !== null && (!Number.isInteger(profile) || profile < 0)) throw new BootEntryError(`profile ${profile} is not a non-negative integer`);
    const lines = [`title ${entry.title}`, `sort-key ${entry.sortKey}${profile !== null ? `-${profile}` : ""}`, `${key} ${opts.efiDir ?? EFI_DIR}/${entry.fileName}.efi`];
    if (profile !== null) lines.push(`profile ${profile}`);
    if (opts.version !== undefined) {
        if (/[\n\r\0]/.test(opts.version)) throw new BootEntryError("version must be one line");
        lines.push(`version ${opts.version}`);
    }
    if (opts.includeCmdline) lines.push(entry.extraCmdline ? `cmdline ${entry.extraCmdline}` : "cmdline");
    return `${lines.join("\n")}\n`;
}

/** The .conf file name of an entry (profile N >= 1 of a multi-profile UKI gets its own file). */
export function loaderEntryFileName(entry: BootEntry, profile = 0): string {
    return profile === 0 ? `${entry.fileName}.conf` : `${entry.fileName}-profile${profile}.conf`;
}

export type SecureBootEnroll = "if-safe" | "force" | "manual" | "off";

export interface LoaderConfOptions {
    /** Seconds (default 5). */
    timeout?: number;
    /** Default "if-safe" (AuroraBoot); needs systemd-boot >= 253, use "force" or "manual" with 252. */
    secureBootEnroll?: SecureBootEnroll;
    /** Default "max". */
    consoleMode?: "auto" | "keep" | "max" | number;
    /** Default false. */
    editor?: boolean;
    /** When set, values this systemd-boot release does not know are refused instead of ignored at boot. */
    systemdBootMajor?: number;
}

/** loader/loader.conf, in AuroraBoot's field order (no `default`: kairos-agent sets it at install). */
export function renderLoaderConf(opts: LoaderConfOptions = {}): string {
    const timeout = opts.timeout ?? 5;
    if (!Number.isInteger(timeout) || timeout < 0) throw new BootEntryError(`timeout ${timeout} is not a non-negative integer`);
    const enroll = opts.secureBootEnroll ?? "if-safe";
    if (!["if-safe", "force", "manual", "off"].includes(enroll)) throw new BootEntryError(`secureBootEnroll '${enroll}' is not one of if-safe, force, manual, off`);
    if (enroll === "if-safe" && opts.systemdBootMajor !== undefined && opts.systemdBootMajor < 253) {
        throw new BootEntryError(`systemd-boot ${opts.systemdBootMajor} does not know 'secure-boot-enroll if-safe' (added in 253) and would ignore it; use force or manual`);
    }
    const mode = opts.consoleMode ?? "max";
    if (typeof mode === "number" ? !Number.isInteger(mode) || mode < 0 : !["auto", "keep", "max"].includes(mode)) {
        throw new BootEntryError(`consoleMode '${mode}' is not auto, keep, max or a mode number`);
    }
    return `timeout ${timeout}\nconsole-mode ${mode}\neditor ${opts.editor ? "yes" : "no"}\nsecure-boot-enroll ${enroll}\n`;
}

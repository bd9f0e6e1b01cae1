// What KairosUkiImage records and lays out: its checked inputs and outputs, the files it takes from the
// image, the boot entries it renders and what a UKI's sections say.
import * as fs from "fs";
import * as path from "path";
import { BuildReport } from "../build-log";
import { sha256File, sha256Hex } from "../toolkit/files";
import { HOST_EFI_DIR } from "../toolkit/tools";
import { ExtensionSourceSpec, sourceDigest } from "../toolkit/source/extension-source";
import { INITRD_EXCLUDES } from "../toolkit/boot/initrd";
import { BootEntry, LoaderEntryKey, SingleEntry, planBootEntries, renderLoaderEntry } from "../toolkit/boot/boot-entries";
import { readPeSections } from "../toolkit/boot/uki";
import { readSectionData } from "../toolkit/boot/pe";
import type { UkiEntry } from "../generated/contract";

export const STUB_IN_IMAGE = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
export const SDBOOT_IN_IMAGE = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/** systemd-boot learned the `uki` entry key late; kairos-agent writes it only for >= 259. */
export const UKI_KEY_MIN_SYSTEMD_BOOT = 259;

export const MB = 1_000_000;

/** Filled at boot and left out of the initrd: an OS directory's contents there are not even copied. */
export const RUNTIME_DIRS = INITRD_EXCLUDES.filter((d) => d !== "boot");

/** Marks a folder as made (and so owned) by KairosUkiImage: only such a folder is ever replaced. */
export const OWNER_MARKER = ".kairos-uki-image";

export const OWNER_TEXT = "This folder is rebuilt whole by pulumi-kairos' KairosUkiImage.\n";

/** What a KairosUkiImage folder may hold; anything else is someone else's and stops a rebuild. */
export const OWN_ENTRY = /^(\.kairos-uki-image|BOOTX64\.EFI|entries|[^/]+\.efi)$/;

export interface CheckedInputs {
    outputDir: string;
    source: ExtensionSourceSpec;
    signing: { key: string; certificate: string };
    pcrKey: string;
    bootTitle: string;
    extendCmdline?: string;
    extraCmdlines?: string[];
    singleEntries?: SingleEntry[];
    includeVersionInConfig: boolean;
    includeCmdlineInConfig: boolean;
    loaderEntryKey: "auto" | LoaderEntryKey;
    splash?: string;
    maxUkiSizeMB: number;
    initrdCompressionLevel: number;
    initrdWindowLog: number;
    sourceDigest: string;
    hashParts: Record<string, string>;
    inputHash: string;
}

/** One UKI and its loader entry, as schema.json's UkiEntry declares it. */
export type UkiOutput = UkiEntry;

export interface Outputs extends CheckedInputs {
    ukis: UkiOutput[];
    systemdBoot: { path: string; sha256: string; version: string; origin: "image" | "host" };
    /** The files BootMedia's `uki` input takes, in its shape (YAML programs pass `${os.bootFiles}`). */
    bootFiles: { efiFiles: string[]; loaderEntries: string[]; systemdBoot: string };
    stubOrigin: "image" | "host";
    pcr11: Record<string, Record<string, string>>;
    kairosRelease: string;
    entryKey: LoaderEntryKey;
    drift: string[];
    lastBuild: BuildReport;
}

export function bootEntriesOf(i: CheckedInputs): BootEntry[] {
    return planBootEntries({ extendCmdline: i.extendCmdline, extraCmdlines: i.extraCmdlines, singleEntries: i.singleEntries, bootTitle: i.bootTitle });
}

/** The loader entry file for `entry`, as a build writes it; a fetch and a move hold the files found to it. */
export function renderedEntry(i: CheckedInputs, entry: BootEntry, key: LoaderEntryKey, kairosRelease: string): string {
    return renderLoaderEntry(entry, { key, version: i.includeVersionInConfig ? kairosRelease : undefined, includeCmdline: i.includeCmdlineInConfig });
}

/** A UKI section's text as the stub reads it (trailing NUL padding dropped); undefined without the section. */
export function sectionText(uki: string, name: string): string | undefined {
    return readSectionData(uki, readPeSections(uki), name)?.toString("utf8").replace(/\0+$/, "");
}

/** The .osrel every one of `ukis` carries: one build embeds one os-release in all of them. */
export function ukiOsRelease(ukis: string[], refuse: (why: string) => Error): string {
    const texts = ukis.map((f) => sectionText(f, ".osrel"));
    if (texts.some((t) => t === undefined)) throw refuse(`${path.basename(ukis[texts.indexOf(undefined)])} has no .osrel section`);
    if (new Set(texts).size !== 1) throw refuse("its UKIs carry different .osrel sections: they are not from one build");
    return texts[0]!;
}

/** The host's systemd-boot-efi is the fallback stub; an upgrade of it may change the UKI. */
export async function hostEfiDigest(): Promise<string> {
    const files = ["linuxx64.efi.stub", "systemd-bootx64.efi"].map((f) => path.join(HOST_EFI_DIR, f)).filter((f) => fs.existsSync(f));
    return sha256Hex((await Promise.all(files.map(sha256File))).join(":") || "none");
}

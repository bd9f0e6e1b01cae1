// What BootMedia holds, from its checked inputs: the files on the ESP and at the media root, the
// extensions next to every UKI and the PCR 13 they predict, and the content part of the input hash.
import * as path from "path";
import { BuildReport } from "../build-log";
import { canonicalJson, sha256File, sha256Hex } from "../toolkit/files";
import { EspFile } from "../toolkit/boot/esp";
import { SecureBootEnroll } from "../toolkit/boot/boot-entries";
import { readLoaderInfo } from "../toolkit/boot/uki";
import { predictPcr13, stubExtensions } from "../toolkit/boot/pcr13";

/** NAME.sysext.raw / NAME.confext.raw: the names Kairos and systemd-stub pick up. */
export const EXTENSION_FILE = /^(.+)\.(sysext|confext)\.raw$/;
/** Empty folders auroraboot's ESP map has (kairos-agent expects the tree). */
export const EMPTY_ESP_DIRS = ["EFI/tools", "loader/keys"];

export interface CheckedInputs {
    name: string;
    outputDir: string;
    type: "iso" | "dir";
    uki: { efiFiles: string[]; loaderEntries: string[]; systemdBoot: string };
    enrollKeys: { PK: string; KEK: string; db: string };
    extensions?: string[];
    espExtensions: boolean;
    cloudConfig?: string;
    overlayFiles?: { source: string; path: string }[];
    timeout: number;
    secureBootEnroll: SecureBootEnroll;
    consoleMode: string;
    sourceDateEpoch: number;
    hashParts: Record<string, string>;
    inputHash: string;
}

export interface Outputs extends CheckedInputs {
    path: string;
    sha256: string;
    size: number;
    files: string[];
    pcr13: { sha256: string; sha1: string; extensions: string[] };
    drift: string[];
    lastBuild: BuildReport;
}

/** Every file the media hold (ESP tree and ISO root), with the local file it must equal. */
export function mediaFiles(i: CheckedInputs, loaderConf: string): { to: string; from: string }[] {
    return [...espFiles(i, loaderConf).map((f) => ({ to: f.espPath, from: f.source })), ...rootFiles(i).map((r) => ({ to: r.isoPath.replace(/^\/+/, ""), from: r.source }))];
}

/**
 * The ESP's content: every file with its place, as auroraboot's imageFiles map has it, plus each
 * extension in every UKI's .extra.d folder (systemd-stub looks next to the UKI it runs from).
 */
export function espFiles(i: CheckedInputs, loaderConf: string): EspFile[] {
    const onEsp = extensionsOnEsp(i);
    const files: EspFile[] = [
        { espPath: "EFI/BOOT/BOOTX64.EFI", source: i.uki.systemdBoot },
        ...i.uki.efiFiles.map((f) => ({ espPath: `EFI/kairos/${path.basename(f)}`, source: f })),
        ...i.uki.efiFiles.flatMap((f) => onEsp.map((e) => ({ espPath: `EFI/kairos/${path.basename(f)}.extra.d/${path.basename(e)}`, source: e }))),
        { espPath: "loader/loader.conf", source: loaderConf },
        ...i.uki.loaderEntries.map((f) => ({ espPath: `loader/entries/${path.basename(f)}`, source: f })),
        ...(["PK", "KEK", "db"] as const).map((k) => ({ espPath: `loader/keys/auto/${k}.auth`, source: i.enrollKeys[k] })),
    ];
    return files.map((f) => ({ ...f, source: path.resolve(f.source) })); // the image builders take absolute paths
}

/** Files for the ISO root: extensions by name, the cloud-config as config.yaml, overlay files. */
export function rootFiles(i: CheckedInputs): { isoPath: string; source: string }[] {
    return [
        ...(i.extensions ?? []).map((f) => ({ isoPath: path.basename(f), source: f })),
        ...(i.cloudConfig ? [{ isoPath: "config.yaml", source: i.cloudConfig }] : []),
        ...(i.overlayFiles ?? []).map((o) => ({ isoPath: o.path, source: o.source })),
    ].map((f) => ({ ...f, source: path.resolve(f.source) }));
}

/**
 * PCR 13 after the stub loaded this media's .extra.d extensions (the same set next to every UKI). Which
 * files count depends on the stub inside the UKI (an older one also measures confexts there).
 */
export async function pcr13Of(i: CheckedInputs): Promise<Outputs["pcr13"]> {
    const stubMajor = readLoaderInfo(i.uki.efiFiles[0])?.major;
    const p = await predictPcr13(stubExtensions(extensionsOnEsp(i)), { stubMajor: Number.isFinite(stubMajor) ? stubMajor : undefined });
    return { sha256: p.values.sha256, sha1: p.values.sha1, extensions: p.extensions };
}

/** The extensions that go into each UKI's .extra.d folder. */
function extensionsOnEsp(i: CheckedInputs): string[] {
    return i.espExtensions ? i.extensions ?? [] : [];
}

/** The property each content part of the input hash covers, to name it when its files change. */
export const CONTENT_PART_PROPERTY: Record<string, string> = { uki: "uki", keys: "enrollKeys", extensions: "extensions", overlay: "cloudConfig/overlayFiles" };

/** The parts of the input hash that digest file contents (names as the media carry them, and bytes). */
export async function contentHashParts(i: CheckedInputs): Promise<Record<string, string>> {
    const digest = async (files: string[]) => Promise.all(files.map(async (f) => `${path.basename(f)}:${await sha256File(f)}`));
    return {
        uki: sha256Hex(canonicalJson(await digest([i.uki.systemdBoot, ...i.uki.efiFiles, ...i.uki.loaderEntries]))),
        keys: sha256Hex(canonicalJson(await digest([i.enrollKeys.PK, i.enrollKeys.KEK, i.enrollKeys.db]))),
        extensions: sha256Hex(canonicalJson(await digest(i.extensions ?? []))),
        overlay: sha256Hex(canonicalJson({ cloudConfig: i.cloudConfig ? await sha256File(i.cloudConfig) : null, files: await Promise.all((i.overlayFiles ?? []).map(async (o) => [o.path, await sha256File(o.source)])) })),
    };
}

// BootMedia: media that enrol the Secure Boot keys and boot the signed UKI with Secure Boot enforced,
// laid out as `auroraboot build-uki --output-type iso` does (efiboot.img, volume UKI_ISO_INSTALL,
// EFI/kairos, loader/keys/auto), plus system extensions and a cloud-config at the ISO root. The ISO
// is hybrid: it also boots when written raw to a USB disk. Extensions also go next to every UKI on the
// ESP (EFI/kairos/<uki>.efi.extra.d/), where systemd-stub hands them to the booted system and measures
// them into PCR 13 (predicted in the pcr13 output).
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { MoveSpec, sameHashPartsBut } from "./artifact-move";
import { Handler, checkInputs, packageProvider, replacedFields, samePath } from "./resource-kit";
import { BuildLog, BuildReport, driftOf, updateAction, updateReasons } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, isInside, sha256File, sha256FileIfExists, sha256Hex } from "./toolkit/files";
import { stageThenMove, replaceDirectory, restoreInterruptedSwap, withScratch } from "./output/staging";
import { treeDigest, treeEntries } from "./toolkit/source/tree-digest";
import { EspFile, buildEspImage, listEsp, readEspFile } from "./toolkit/boot/esp";
import { buildIso, espBootProblem, ISO_ESP_NAME, listIso, normalizeIsoPath } from "./toolkit/boot/iso";
import { run } from "./toolkit/run";
import { StoreIntegrityError } from "./store/artifact-store";
import { SecureBootEnroll, renderLoaderConf } from "./toolkit/boot/boot-entries";
import { readLoaderInfo } from "./toolkit/boot/uki";
import { predictPcr13, stubExtensions } from "./toolkit/boot/pcr13";
import { readPartitionTable } from "./toolkit/sysext/ddi-verify";
import { extensionReleaseNames } from "./toolkit/sysext/erofs-reader";
import { EnrolledCertificate, efiImageProblem, enrolledCertificates, extensionImageProblem, loaderEntryProblem } from "./toolkit/boot/media-trust";
import { rememberedPass } from "./output/verdict-cache";
import * as os from "os";
import type { KairosUkiImage } from "./kairos-uki-image";
import type { SigningKeys } from "./signing-keys";
import type { SystemExtension } from "./system-extension";
import type { ArtifactLayout, StoreOutput } from "./store/stored-artifacts";
import type { ArtifactStoreSpec } from "./store/artifact-store";
import { artifactStoreInput } from "./artifact-store-config";
import { plainHashValues, replaceFields } from "./validation/input-roles";

export const BOOT_MEDIA_TOKEN = "kairos:index:BootMedia";
const BUILDER_VERSION = "boot-media/2";
/** NAME.sysext.raw / NAME.confext.raw: the names Kairos and systemd-stub pick up. */
const EXTENSION_FILE = /^(.+)\.(sysext|confext)\.raw$/;
/** Empty folders auroraboot's ESP map has (kairos-agent expects the tree). */
const EMPTY_ESP_DIRS = ["EFI/tools", "loader/keys"];

export interface BootMediaArgs {
    /** NAME.iso */
    name: pulumi.Input<string>;
    outputDir: pulumi.Input<string>;
    /** @default "iso" */
    type?: pulumi.Input<"iso" | "dir">;
    uki?: pulumi.Input<{ efiFiles: pulumi.Input<pulumi.Input<string>[]>; loaderEntries: pulumi.Input<pulumi.Input<string>[]>; systemdBoot: pulumi.Input<string> }>;
    /** Shorthand for `uki`. */
    ukiImage?: KairosUkiImage;
    enrollKeys?: pulumi.Input<{ PK: pulumi.Input<string>; KEK: pulumi.Input<string>; db: pulumi.Input<string> }>;
    /** Shorthand for `enrollKeys`: a SigningKeys resource's .auth files. */
    signingKeys?: SigningKeys;
    /** Extension images for the ISO root (paths), or SystemExtension resources. */
    extensions?: (pulumi.Input<string> | SystemExtension)[];
    /** Also put every extension in EFI/kairos/<uki>.efi.extra.d/ (systemd-stub loads them; PCR 13). @default true */
    espExtensions?: pulumi.Input<boolean>;
    cloudConfig?: pulumi.Input<string>;
    overlayFiles?: pulumi.Input<pulumi.Input<{ source: pulumi.Input<string>; path: pulumi.Input<string> }>[]>;
    /** @default 5 */
    timeout?: pulumi.Input<number>;
    /** @default "if-safe" (systemd-boot >= 253; use "force" or "manual" with 252) */
    secureBootEnroll?: pulumi.Input<SecureBootEnroll>;
    /** @default "max" */
    consoleMode?: pulumi.Input<string>;
    /** @default 315532800 (1980-01-01) */
    sourceDateEpoch?: pulumi.Input<number>;
    /** Keep the media in an S3-compatible store and fetch them instead of building. @default the stack config kairos:artifactStore */
    artifactStore?: pulumi.Input<ArtifactStoreSpec>;
}

interface CheckedInputs {
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

interface Outputs extends CheckedInputs {
    path: string;
    sha256: string;
    size: number;
    files: string[];
    pcr13: { sha256: string; sha1: string; extensions: string[] };
    drift: string[];
    lastBuild: BuildReport;
}

/** type "iso": one file in outputDir; type "dir": the folder outputDir/name, the resource's whole. */
export const bootMediaLayout: ArtifactLayout = {
    root: (p) => (p.type === "dir" ? path.join(p.outputDir, p.name) : p.outputDir),
    placement: (p) => (p.type === "dir" ? "dir" : "files"),
    localFiles: (outs) => [outs.path],
    label: (p) => `BootMedia ${p.name}`,
    id: (outs) => outs.path,
    expectedFiles: (i) => (i.type === "dir" ? mediaFiles(i as CheckedInputs, "").map((f) => f.to) : [`${i.name}.iso`]),
    expectedDirs: () => EMPTY_ESP_DIRS,
    accept: (i, staged, _stored, work) => acceptFetched(i as CheckedInputs, staged, work),
};

/** Every file the media hold (ESP tree and ISO root), with the local file it must equal. */
function mediaFiles(i: CheckedInputs, loaderConf: string): { to: string; from: string }[] {
    return [...espFiles(i, loaderConf).map((f) => ({ to: f.espPath, from: f.source })), ...rootFiles(i).map((r) => ({ to: r.isoPath.replace(/^\/+/, ""), from: r.source }))];
}

/**
 * Fetched media, held to what a build puts on them: every file on the ESP (inside efiboot.img for an
 * ISO) and at the media root is exactly one of this runner's inputs (UKIs, systemd-boot, loader
 * entries, .auth files, extensions, overlay files) or the loader.conf these inputs render, byte for
 * byte, and nothing else is there (hidden and system FAT files included); an ISO boots only
 * /efiboot.img, through El Torito and through its GPT (toolkit/boot/iso.ts espBootProblem). So a manifest
 * cannot slip a key or a foreign binary onto the media.
 * Every output is computed here (pcr13 from the extensions, as a build predicts it).
 */
async function acceptFetched(i: CheckedInputs, staged: string, work: string): Promise<Partial<Outputs>> {
    const refuse = (why: string) => new StoreIntegrityError(`the stored BootMedia ${i.name} is not what a build from these inputs makes: ${why}`);
    const loaderConf = path.join(work, "loader.conf");
    fs.writeFileSync(loaderConf, renderLoaderConf({ timeout: i.timeout, secureBootEnroll: i.secureBootEnroll, consoleMode: i.consoleMode as "max" }));
    const want = new Map<string, string>();
    for (const f of mediaFiles(i, loaderConf)) want.set(f.to, await sha256File(f.from));
    const pcr13 = await pcr13Of(i);
    if (i.type === "dir") {
        for (const [to, digest] of want) {
            const got = await sha256FileIfExists(path.join(staged, to));
            if (got !== digest) throw refuse(`${to} is not the file it is built from`);
        }
        const written = (await treeEntries(staged)).filter((e) => e.type === "file");
        const extra = written.filter((e) => !want.has(e.path)).map((e) => e.path);
        if (extra.length > 0) throw refuse(`it holds ${extra.join(", ")}, which no input puts there`);
        return {
            path: path.join(i.outputDir, i.name), sha256: await treeDigest(staged), files: written.map((f) => f.path),
            size: written.reduce((a, f) => a + fs.statSync(path.join(staged, f.path)).size, 0), pcr13,
        };
    }
    const iso = path.join(staged, `${i.name}.iso`);
    const esp = path.join(work, ISO_ESP_NAME);
    await run(["xorriso", "-abort_on", "FAILURE", "-osirrox", "on", "-indev", iso, "-extract", `/${ISO_ESP_NAME}`, esp]).catch((e) => {
        throw refuse(`no /${ISO_ESP_NAME} can be read from it (${(e as Error).message.split("\n")[0]})`);
    });
    const bootProblem = await espBootProblem(iso);
    if (bootProblem) throw refuse(bootProblem);
    const onEsp = await listEsp(esp);
    const espWant = espFiles(i, loaderConf).map((f) => f.espPath);
    const isoFiles = await listIso(iso);
    const rootWant = rootFiles(i).map((r) => normalizeIsoPath(r.isoPath).slice(1));
    const foreign = [...onEsp.filter((f) => !espWant.includes(f)).map((f) => `${ISO_ESP_NAME}:${f}`), ...isoFiles.filter((f) => !rootWant.includes(f) && f !== ISO_ESP_NAME && f !== "boot.catalog")];
    if (foreign.length > 0) throw refuse(`it holds ${foreign.join(", ")}, which no input puts there`);
    for (const f of espWant) {
        if (!onEsp.includes(f)) throw refuse(`its ESP lacks ${f}`);
        if (sha256Hex(await readEspFile(esp, f)) !== want.get(f)) throw refuse(`${ISO_ESP_NAME}:${f} is not the file it is built from`);
    }
    for (const r of rootFiles(i)) {
        const isoPath = normalizeIsoPath(r.isoPath);
        const out = path.join(work, "root-file");
        fs.rmSync(out, { force: true });
        await run(["xorriso", "-abort_on", "FAILURE", "-osirrox", "on", "-indev", iso, "-extract", isoPath, out]).catch(() => {
            throw refuse(`it lacks ${isoPath}`);
        });
        if ((await sha256File(out)) !== (await sha256File(r.source))) throw refuse(`${isoPath} is not the file it is built from`);
    }
    return {
        path: path.join(i.outputDir, `${i.name}.iso`), sha256: await sha256File(iso), size: fs.statSync(iso).size,
        files: [...onEsp.map((f) => `${ISO_ESP_NAME}:${f}`), ...isoFiles].sort(), pcr13,
    };
}

export const bootMediaHandler: Handler = {
    writes: (p) => [path.join(p.outputDir, p.name)],
    check: (olds, news) => checkInputs<CheckedInputs>(BOOT_MEDIA_TOKEN, olds, news, { crossField: crossFieldProblems, derive: deriveHashes }),

    async diff(_id, olds: Outputs, news: CheckedInputs) {
        const replaces = replacedFields(olds, news, replaceFields<CheckedInputs>(BOOT_MEDIA_TOKEN), ["outputDir"]);
        return { changes: replaces.length > 0 || olds.inputHash !== news.inputHash || (olds.drift ?? []).length > 0, replaces };
    },

    async create(inputs: CheckedInputs) {
        const outs = await build(inputs, new BuildLog(`BootMedia ${inputs.name}`, "created", ["new"]));
        return { id: outs.path, outs };
    },

    async read(id, props: Outputs) {
        if (props.type === "dir") restoreInterruptedSwap(props.path);
        const now = props.type === "iso" ? await sha256FileIfExists(props.path) : fs.existsSync(props.path) ? await treeDigest(props.path) : undefined;
        return { id, props: { ...props, drift: driftOf(props.path, props.sha256, now) } };
    },

    async update(_id, olds: Outputs, news: CheckedInputs) {
        const reasons = updateReasons(olds, news);
        return { outs: await build(news, new BuildLog(`BootMedia ${news.name}`, updateAction(reasons), reasons)) };
    },

    async delete(_id, props: Outputs) {
        fs.rmSync(props.path, { recursive: true, force: true });
    },
};

/**
 * The ESP's content: every file with its place, as auroraboot's imageFiles map has it, plus each
 * extension in every UKI's .extra.d folder (systemd-stub looks next to the UKI it runs from).
 */
function espFiles(i: CheckedInputs, loaderConf: string): EspFile[] {
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
function rootFiles(i: CheckedInputs): { isoPath: string; source: string }[] {
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
async function pcr13Of(i: CheckedInputs): Promise<Outputs["pcr13"]> {
    const stubMajor = readLoaderInfo(i.uki.efiFiles[0])?.major;
    const p = await predictPcr13(stubExtensions(extensionsOnEsp(i)), { stubMajor: Number.isFinite(stubMajor) ? stubMajor : undefined });
    return { sha256: p.values.sha256, sha1: p.values.sha1, extensions: p.extensions };
}

/** The extensions that go into each UKI's .extra.d folder. */
function extensionsOnEsp(i: CheckedInputs): string[] {
    return i.espExtensions ? i.extensions ?? [] : [];
}

async function build(i: CheckedInputs, log: BuildLog): Promise<Outputs> {
    return withScratch(i.outputDir, i.name, async (work) => {
        // A file may change between preview and up: the media are made from private copies, checked
        // again here, so what goes on them is exactly what passed.
        const s = await log.step("check inputs", () => checkedCopies(i, path.join(work, "inputs")));
        const pcr13 = await log.step("predict PCR 13", () => pcr13Of(s));
        const loaderConf = path.join(work, "loader.conf");
        fs.writeFileSync(loaderConf, renderLoaderConf({ timeout: i.timeout, secureBootEnroll: i.secureBootEnroll, consoleMode: i.consoleMode as "max" }));
        const files = espFiles(s, loaderConf);
        if (i.type === "dir") return { ...(await buildDir(i, s, files, log)), pcr13 };
        const esp = await log.step("build ESP image", () => buildEspImage({ files, emptyDirs: EMPTY_ESP_DIRS, out: path.join(work, ISO_ESP_NAME), epoch: i.sourceDateEpoch }));
        const fileName = `${i.name}.iso`;
        const iso = await log.step("build hybrid ISO", () =>
            stageThenMove(i.outputDir, (staging) => buildIso({ espImage: esp.path, rootFiles: rootFiles(s), out: path.join(staging, fileName), epoch: i.sourceDateEpoch }), 0o755),
        );
        const target = path.join(i.outputDir, fileName);
        const listed = [...esp.files.map((f) => `${ISO_ESP_NAME}:${f}`), ...(await listIso(target))].sort();
        return { ...i, path: target, sha256: iso.sha256, size: iso.size, files: listed, pcr13, drift: [], lastBuild: log.report() };
    });
}

/**
 * The inputs with every file the media take from them (UKIs, systemd-boot, loader entries, .auth files,
 * extensions, cloud-config, overlay files) copied into `dir` under its own name, and the copies checked
 * as check() checks the originals. Throws naming every refused entry.
 */
async function checkedCopies(i: CheckedInputs, dir: string): Promise<CheckedInputs> {
    let n = 0;
    const copy = (file: string): string => {
        const to = path.join(dir, String(n++), path.basename(file));
        fs.mkdirSync(path.dirname(to), { recursive: true });
        fs.copyFileSync(file, to, fs.constants.COPYFILE_FICLONE); // a reflink where the filesystem has them
        return to;
    };
    const s: CheckedInputs = {
        ...i,
        uki: { efiFiles: i.uki.efiFiles.map(copy), loaderEntries: i.uki.loaderEntries.map(copy), systemdBoot: copy(i.uki.systemdBoot) },
        enrollKeys: { PK: copy(i.enrollKeys.PK), KEK: copy(i.enrollKeys.KEK), db: copy(i.enrollKeys.db) },
        extensions: i.extensions?.map(copy),
        cloudConfig: i.cloudConfig === undefined ? undefined : copy(i.cloudConfig),
        overlayFiles: i.overlayFiles?.map((o) => ({ ...o, source: copy(o.source) })),
    };
    const problems = await trustProblems(s, { remember: false, shownAs: i });
    if (problems.length > 0) throw new Error(problems.map((p) => `${p.property}: ${p.reason}`).join("\n"));
    // A file changed since the input hash was taken (a valid, re-signed UKI, say) would go on the media
    // under the old hash: the copies must be the bytes the hash records.
    const copied = await contentHashParts(s);
    const changed = Object.keys(copied).filter((k) => copied[k] !== i.hashParts[k]);
    if (changed.length > 0) {
        throw new Error(`${changed.map((k) => CONTENT_PART_PROPERTY[k]).join(", ")} changed after the input hash was taken (the files are no longer the bytes it records); run the update again so the media are built from what is there now`);
    }
    return s;
}

/** The property each content part of the input hash covers, to name it when its files change. */
const CONTENT_PART_PROPERTY: Record<string, string> = { uki: "uki", keys: "enrollKeys", extensions: "extensions", overlay: "cloudConfig/overlayFiles" };

/** The parts of the input hash that digest file contents (names as the media carry them, and bytes). */
async function contentHashParts(i: CheckedInputs): Promise<Record<string, string>> {
    const digest = async (files: string[]) => Promise.all(files.map(async (f) => `${path.basename(f)}:${await sha256File(f)}`));
    return {
        uki: sha256Hex(canonicalJson(await digest([i.uki.systemdBoot, ...i.uki.efiFiles, ...i.uki.loaderEntries]))),
        keys: sha256Hex(canonicalJson(await digest([i.enrollKeys.PK, i.enrollKeys.KEK, i.enrollKeys.db]))),
        extensions: sha256Hex(canonicalJson(await digest(i.extensions ?? []))),
        overlay: sha256Hex(canonicalJson({ cloudConfig: i.cloudConfig ? await sha256File(i.cloudConfig) : null, files: await Promise.all((i.overlayFiles ?? []).map(async (o) => [o.path, await sha256File(o.source)])) })),
    };
}

/** type "dir": the ESP tree as a folder, with the ISO-root files beside it. */
async function buildDir(i: CheckedInputs, s: CheckedInputs, files: EspFile[], log: BuildLog): Promise<Omit<Outputs, "pcr13">> {
    const target = path.join(i.outputDir, i.name);
    await log.step("write ESP tree", () =>
        replaceDirectory(target, async (staging) => {
            for (const d of EMPTY_ESP_DIRS) fs.mkdirSync(path.join(staging, d), { recursive: true });
            for (const f of [...files.map((f) => ({ to: f.espPath, from: f.source })), ...rootFiles(s).map((r) => ({ to: r.isoPath, from: r.source }))]) {
                const to = path.join(staging, f.to);
                // check() refuses such paths already; this keeps any caller from writing outside the media
                if (!isInside(staging, to)) throw new Error(`${f.to}: outside the media folder`);
                fs.mkdirSync(path.dirname(to), { recursive: true });
                fs.copyFileSync(f.from, to);
            }
        }),
    );
    const written = (await treeEntries(target)).filter((e) => e.type === "file");
    const size = written.reduce((a, f) => a + fs.statSync(path.join(target, f.path)).size, 0);
    return { ...i, path: target, sha256: await treeDigest(target), size, files: written.map((f) => f.path), drift: [], lastBuild: log.report() };
}

async function deriveHashes(i: CheckedInputs, olds: Partial<CheckedInputs>): Promise<InputProblem[]> {
    const refused = await trustProblems(i, { remember: true, shownAs: i });
    if (refused.length > 0) return refused;
    const foreign = await movedFolderProblem(i, olds);
    if (foreign) return [foreign];
    i.hashParts = {
        ...(await contentHashParts(i)),
        options: sha256Hex(canonicalJson(plainHashValues(BOOT_MEDIA_TOKEN, "options", i))),
        // The artifact's name and form (NAME.iso or the folder NAME): media that differ only there must
        // not share a manifest in the store, where the input hash is the key.
        media: sha256Hex(canonicalJson(plainHashValues(BOOT_MEDIA_TOKEN, "media", i))),
        builder: BUILDER_VERSION,
    };
    i.inputHash = sha256Hex(canonicalJson(i.hashParts));
    return [];
}

function nonEmptyFolder(p: string): boolean {
    return fs.existsSync(p) && (!fs.statSync(p).isDirectory() || fs.readdirSync(p).length > 0);
}

function foreignFolder(target: string): InputProblem {
    return { property: "name", reason: `${target} already exists and was not made by this BootMedia; type "dir" replaces its folder whole, so give a name or outputDir of its own` };
}

/**
 * A "dir" media given another folder that is not empty: the build would replace that folder whole, so
 * it must hold exactly what these inputs write there (this media, moved with its folder; artifact-move.ts
 * then takes it over). Anything else is someone else's, whether or not a move is planned: a replace
 * (a rebuild there) would empty it.
 */
async function movedFolderProblem(i: CheckedInputs, olds: Partial<CheckedInputs>): Promise<InputProblem | undefined> {
    const target = path.join(i.outputDir, i.name);
    if (i.type !== "dir" || olds.type !== "dir" || olds.outputDir === undefined || olds.name === undefined) return undefined;
    if (samePath(path.join(olds.outputDir, olds.name), target) || !nonEmptyFolder(target)) return undefined;
    return (await holdsRenderedMedia(i, target)) ? undefined : foreignFolder(target);
}

/** Whether `folder` holds exactly the files a type "dir" build from `i` writes, with their bytes, and nothing else. */
async function holdsRenderedMedia(i: CheckedInputs, folder: string): Promise<boolean> {
    if (!fs.statSync(folder).isDirectory()) return false;
    const loaderConf = "\0loader.conf"; // stands for the rendered loader.conf: no real path holds a NUL
    const want = new Map(mediaFiles(i, loaderConf).map((f) => [path.posix.normalize(f.to), f.from]));
    const dirs = new Set(EMPTY_ESP_DIRS.flatMap(ancestorsAndSelf));
    for (const f of want.keys()) for (const d of ancestorsAndSelf(path.posix.dirname(f))) dirs.add(d);
    const entries = await treeEntries(folder);
    const files = entries.filter((e) => e.type === "file");
    if (entries.some((e) => (e.type === "dir" ? !dirs.has(e.path) : e.type !== "file"))) return false;
    if (files.length !== want.size || files.some((e) => !want.has(e.path))) return false;
    const rendered = sha256Hex(renderLoaderConf({ timeout: i.timeout, secureBootEnroll: i.secureBootEnroll, consoleMode: i.consoleMode as "max" }));
    for (const e of files) {
        const from = want.get(e.path)!;
        if (e.sha256 !== (from === path.resolve(loaderConf) ? rendered : await sha256File(from))) return false;
    }
    return true;
}

/** "a/b/c" -> ["a", "a/b", "a/b/c"]; "." -> []. */
function ancestorsAndSelf(p: string): string[] {
    const parts = p.split("/").filter((x) => x !== "" && x !== ".");
    return parts.map((_, k) => parts.slice(0, k + 1).join("/"));
}

/**
 * What the media may carry, judged by the keys they enrol (toolkit/boot/media-trust.ts): each UKI and the
 * systemd-boot a PE image signed for the enrolled db, each loader entry a loader entry, each extension
 * a DDI signed by a certificate in PK, KEK or db that carries the extension-release file of its name.
 * One problem per refused entry, named by its property. `shownAs` holds the paths to name (the build
 * checks copies of the inputs). `remember`: reuse passes of unchanged files (preview; never the build).
 */
async function trustProblems(i: CheckedInputs, opts: { remember: boolean; shownAs: CheckedInputs }): Promise<InputProblem[]> {
    const problems: InputProblem[] = [];
    const shown = (file: string, as: string) => (reason: string) => reason.split(file).join(as);
    const enrolled = enrolledCertificates(i.enrollKeys);
    for (const p of enrolled.problems) problems.push({ property: `enrollKeys.${p.role}`, reason: shown(i.enrollKeys[p.role], opts.shownAs.enrollKeys[p.role])(p.reason) });
    i.uki.loaderEntries.forEach((f, k) => {
        const why = loaderEntryProblem(f);
        if (why) problems.push({ property: `uki.loaderEntries[${k}]`, reason: shown(f, opts.shownAs.uki.loaderEntries[k])(why) });
    });
    if (enrolled.problems.length > 0) return problems; // the signatures cannot be judged without the certificates
    const db = enrolled.certificates.filter((c) => c.role === "db").map((c) => c.certificate);
    const anchorsOf = (certs: EnrolledCertificate[]) => sha256Hex(certs.map((c) => `${c.role}:${c.certificate.fingerprint256}`).join(","));
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-media-check-"));
    try {
        const judge = (file: string, check: string, run: () => Promise<string | undefined>) => (opts.remember ? rememberedPass(file, check, run) : run());
        const efi: [string, string, string][] = [
            ...i.uki.efiFiles.map((f, k): [string, string, string] => [`uki.efiFiles[${k}]`, f, opts.shownAs.uki.efiFiles[k]]),
            ["uki.systemdBoot", i.uki.systemdBoot, opts.shownAs.uki.systemdBoot],
        ];
        for (const [property, file, as] of efi) {
            const why = await judge(file, `efi signed for db ${anchorsOf(enrolled.certificates.filter((c) => c.role === "db"))}`, () => efiImageProblem(file, db, scratch));
            if (why) problems.push({ property, reason: shown(file, as)(why) });
        }
        for (const [k, file] of (i.extensions ?? []).entries()) {
            const as = opts.shownAs.extensions![k];
            const why =
                (await judge(file, `extension signed for ${anchorsOf(enrolled.certificates)}`, () => extensionImageProblem(file, enrolled.certificates, scratch))) ?? (await misnamedExtension(file));
            if (why) problems.push({ property: `extensions[${k}]`, reason: shown(file, as)(why) });
        }
    } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
    }
    return problems;
}

/**
 * systemd merges NAME.sysext.raw only if it carries extension-release.NAME; a renamed file would be
 * refused on the booted machine, so it is refused here, before anything is built.
 */
async function misnamedExtension(file: string): Promise<string | undefined> {
    const m = path.basename(file).match(EXTENSION_FILE);
    if (!m) return undefined; // crossFieldProblems reports names Kairos does not pick up
    const [, name, kind] = m;
    let carried: string[];
    try {
        const { partitions } = await readPartitionTable(file);
        carried = await extensionReleaseNames(file, partitions.root.offset, kind as "sysext" | "confext");
    } catch (e) {
        return `${file} is not a readable extension image: ${(e as Error).message}`;
    }
    if (carried.includes(name)) return undefined;
    const has = carried.length > 0 ? `carries ${carried.map((n) => `extension-release.${n}`).join(", ")}` : "carries no extension-release file";
    const fix = carried.length === 1 ? `name the file ${carried[0]}.${kind}.raw, or rebuild the extension with name "${name}"` : `rebuild the extension with name "${name}"`;
    return `${file} ${has}; systemd merges ${path.basename(file)} only with extension-release.${name} inside: ${fix}`;
}

function crossFieldProblems(i: CheckedInputs, olds: Partial<CheckedInputs>): InputProblem[] {
    const problems: InputProblem[] = [];
    (i.overlayFiles ?? []).forEach((o, k) => {
        const why = unsafeMediaPath(o.path);
        if (why) problems.push({ property: `overlayFiles[${k}].path`, reason: `"${o.path}" ${why}; give a path inside the media, such as "config/extra.yaml"` });
    });
    const target = path.join(i.outputDir, i.name);
    // Its own folder: the one the previous inputs wrote. Another non-empty folder is judged by derive
    // (folderProblem), when a "dir" media moves: it may be this media, moved there with its folder.
    const ownFolder = olds.type === "dir" && olds.outputDir !== undefined && olds.name !== undefined && samePath(path.join(olds.outputDir, olds.name), target);
    if (i.type === "dir" && !ownFolder && olds.type !== "dir" && nonEmptyFolder(target)) problems.push(foreignFolder(target));
    const need = (property: string, files: string[]) => {
        const missing = files.filter((f) => !fs.existsSync(f));
        if (missing.length > 0) problems.push({ property, reason: `${missing.join(", ")} not found` });
    };
    need("uki", [i.uki.systemdBoot, ...i.uki.efiFiles, ...i.uki.loaderEntries]);
    need("enrollKeys", [i.enrollKeys.PK, i.enrollKeys.KEK, i.enrollKeys.db]);
    need("extensions", i.extensions ?? []);
    need("cloudConfig", i.cloudConfig ? [i.cloudConfig] : []);
    need("overlayFiles", (i.overlayFiles ?? []).map((o) => o.source));
    if (i.uki.efiFiles.length === 0) problems.push({ property: "uki.efiFiles", reason: "must name at least one UKI" });
    const notExtensions = (i.extensions ?? []).filter((f) => !EXTENSION_FILE.test(path.basename(f)));
    if (notExtensions.length > 0) problems.push({ property: "extensions", reason: `${notExtensions.join(", ")}: Kairos picks up only NAME.sysext.raw / NAME.confext.raw` });
    const extensionNames = (i.extensions ?? []).map((f) => path.basename(f).toLowerCase());
    const twice = [...new Set(extensionNames.filter((n, k) => extensionNames.indexOf(n) !== k))];
    if (twice.length > 0) problems.push({ property: "extensions", reason: `more than one extension named ${twice.join(", ")}: the media hold one file per name, and systemd merges one extension per name` });
    const names = rootFiles(i).map((r) => r.isoPath.toLowerCase());
    const clash = names.filter((n, k) => (names.indexOf(n) !== k && !twice.includes(n)) || n === ISO_ESP_NAME || n === "boot.catalog");
    if (clash.length > 0) problems.push({ property: "overlayFiles", reason: `more than one file for ${[...new Set(clash)].join(", ")} at the ISO root (efiboot.img and boot.catalog are reserved)` });
    if (i.secureBootEnroll === "if-safe" && fs.existsSync(i.uki.systemdBoot)) {
        const major = readLoaderInfo(i.uki.systemdBoot)?.major;
        if (major !== undefined && major < 253) {
            problems.push({ property: "secureBootEnroll", reason: `the systemd-boot on these media is ${major}, which does not know "if-safe" (added in 253) and would not enrol the keys; use "force" or "manual"` });
        }
    }
    return problems;
}

/** Why a media path would land outside the media (absolute, or a ".." component), or undefined. */
export function unsafeMediaPath(p: string): string | undefined {
    if (p.startsWith("/")) return "is absolute";
    if (p.split("/").includes("..")) return "climbs out with '..'";
    if (p.split("/").every((part) => part === "" || part === ".")) return "names the media root, not a file in it";
    return undefined;
}

/** Secure Boot install media for a KairosUkiImage; see schema.json. */
export class BootMedia extends pulumi.dynamic.Resource {
    declare readonly path: pulumi.Output<string>;
    declare readonly sha256: pulumi.Output<string>;
    declare readonly size: pulumi.Output<number>;
    declare readonly files: pulumi.Output<string[]>;
    /** PCR 13 after systemd-stub loaded the ESP's extensions (bind TPM policies to an extension set). */
    declare readonly pcr13: pulumi.Output<{ sha256: string; sha1: string; extensions: string[] }>;
    declare readonly inputHash: pulumi.Output<string>;
    declare readonly hashParts: pulumi.Output<Record<string, string>>;
    declare readonly lastBuild: pulumi.Output<BuildReport>;
    declare readonly drift: pulumi.Output<string[]>;
    /** Where the artifact store keeps the media (undefined without a store). */
    declare readonly store: pulumi.Output<StoreOutput | undefined>;

    /** Which handler contract wrote this state (handlers.ts); an older one updates on the next up. */
    declare readonly stateVersion: pulumi.Output<number>;

    constructor(name: string, args: BootMediaArgs, opts?: pulumi.CustomResourceOptions) {
        const { ukiImage, signingKeys, extensions, ...rest } = args;
        const uki = rest.uki ?? ukiImage?.bootFiles;
        const enrollKeys = rest.enrollKeys ?? signingKeys?.files.apply((f) => ({ PK: f.PK.auth, KEK: f.KEK.auth, db: f.db.auth }));
        const extensionPaths = extensions?.map((e) => (pulumi.Resource.isInstance(e) ? (e as SystemExtension).path : e));
        const outputs = { stateVersion: undefined, path: undefined, sha256: undefined, size: undefined, files: undefined, pcr13: undefined, inputHash: undefined, hashParts: undefined, lastBuild: undefined, drift: undefined, store: undefined };
        super(packageProvider(BOOT_MEDIA_TOKEN), name, { ...outputs, ...rest, uki, enrollKeys, extensions: extensionPaths, artifactStore: artifactStoreInput(rest.artifactStore) }, opts, "kairos", "BootMedia");
    }
}

/**
 * A new outputDir or name whose place already holds the recorded media (same sha256; for type "dir"
 * the same tree digest) is a move (artifact-move.ts). A "dir" place holding other files is refused by check().
 */
export const bootMediaMoves: MoveSpec = {
    label: bootMediaLayout.label,
    placeFields: ["name", "outputDir"],
    // Not the layout's root (the folder NAME of a "dir" media): a rename moves within outputDir.
    root: (p) => p.outputDir,
    // A "media" hash part (name and type: the store's manifests per artifact) may differ; the bytes may not.
    sameArtifact: (olds, news) => (olds.type !== news.type ? false : sameHashPartsBut(["media"])(olds, news)),
    settled: (olds, news) => sameHashPartsBut(["media"])(olds, news) === true,
    files: (olds, news) => [{ from: olds.path, to: mediaPath(news), sha256: olds.sha256, tree: olds.type === "dir" }],
    moved: (_olds, news) => ({ path: mediaPath(news) }),
    // No refusal here: check() already refused a "dir" place holding anything but what these inputs
    // write (movedFolderProblem), whether or not a move is planned; what passed it may be rebuilt over.
};

function mediaPath(p: Record<string, any>): string {
    return path.join(p.outputDir, p.type === "dir" ? p.name : `${p.name}.iso`);
}

// BootMedia's checks beyond schema.json: output folders, the trust the media carry, extension names
// and overlay paths.
import * as fs from "fs";
import * as path from "path";
import { samePath } from "../check-kit";
import { InputProblem } from "../validation/schema-validator";
import { sha256File, sha256Hex } from "../toolkit/files";
import { treeEntries } from "../toolkit/source/tree-digest";
import { ISO_ESP_NAME } from "../toolkit/boot/iso";
import { run } from "../toolkit/run";
import { renderLoaderConf } from "../toolkit/boot/boot-entries";
import { readLoaderInfo } from "../toolkit/boot/uki";
import { readPartitionTable } from "../toolkit/sysext/ddi-verify";
import { extensionReleaseNames } from "../toolkit/sysext/erofs-reader";
import { EnrolledCertificate, efiImageProblem, enrolledCertificates, extensionImageProblem, loaderEntryProblem } from "../toolkit/boot/media-trust";
import { rememberedPass } from "../output/verdict-cache";
import * as os from "os";
import { CheckedInputs, EMPTY_ESP_DIRS, EXTENSION_FILE, mediaFiles, rootFiles } from "./media";

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
export async function movedFolderProblem(i: CheckedInputs, olds: Partial<CheckedInputs>): Promise<InputProblem | undefined> {
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
export async function trustProblems(i: CheckedInputs, opts: { remember: boolean; shownAs: CheckedInputs }): Promise<InputProblem[]> {
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

export function crossFieldProblems(i: CheckedInputs, olds: Partial<CheckedInputs>): InputProblem[] {
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

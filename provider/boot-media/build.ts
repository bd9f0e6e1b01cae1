// Building BootMedia: private checked copies of the inputs, then an ISO or a folder of the media.
import * as fs from "fs";
import * as path from "path";
import { BuildLog } from "../build-log";
import { isInside } from "../toolkit/files";
import { stageThenMove, replaceDirectory, withScratch } from "../output/staging";
import { treeDigest, treeEntries } from "../toolkit/source/tree-digest";
import { EspFile, buildEspImage } from "../toolkit/boot/esp";
import { buildIso, ISO_ESP_NAME, listIso } from "../toolkit/boot/iso";
import { renderLoaderConf } from "../toolkit/boot/boot-entries";
import { CONTENT_PART_PROPERTY, CheckedInputs, EMPTY_ESP_DIRS, Outputs, contentHashParts, espFiles, pcr13Of, rootFiles } from "./media";
import { trustProblems } from "./check";

export async function build(i: CheckedInputs, log: BuildLog): Promise<Outputs> {
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

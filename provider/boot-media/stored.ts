// BootMedia in the artifact store: its layout, and fetched media held to what a build puts on them.
import * as fs from "fs";
import * as path from "path";
import { sha256File, sha256FileIfExists, sha256Hex } from "../toolkit/files";
import { treeDigest, treeEntries } from "../toolkit/source/tree-digest";
import { listEsp, readEspFile } from "../toolkit/boot/esp";
import { espBootProblem, ISO_ESP_NAME, listIso, normalizeIsoPath } from "../toolkit/boot/iso";
import { run } from "../toolkit/run";
import { StoreIntegrityError } from "../store/manifest";
import { renderLoaderConf } from "../toolkit/boot/boot-entries";
import type { ArtifactLayout } from "../store/stored-artifacts";
import { CheckedInputs, EMPTY_ESP_DIRS, Outputs, espFiles, mediaFiles, pcr13Of, rootFiles } from "./media";

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

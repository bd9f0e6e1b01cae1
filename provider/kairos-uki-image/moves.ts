// KairosUkiImage moved to a new outputDir (artifact-move.ts).
import * as path from "path";
import { MoveSpec, sameInputHash } from "../artifact-move";
import { sha256Hex } from "../toolkit/files";
import { OWNER_MARKER, OWNER_TEXT, Outputs, UkiOutput, bootEntriesOf, renderedEntry } from "./uki-image";
import { kairosUkiImageLayout } from "./stored";

/**
 * A new outputDir already holding the recorded folder is a move (artifact-move.ts): every UKI and
 * systemd-boot with its recorded sha256, the loader entries and the owner marker present.
 */
export const kairosUkiImageMoves: MoveSpec = {
    label: kairosUkiImageLayout.label,
    placeFields: ["outputDir"],
    root: kairosUkiImageLayout.root,
    sameArtifact: sameInputHash,
    // State without these outputs (an older version) names no files, so it is never taken for a move.
    // Every file is held to its bytes: the UKIs and systemd-boot to their recorded sha256, each loader
    // entry to what the recorded inputs render (as a fetch is, acceptFetched), the marker to its text.
    files: (olds, _news, at) => {
        if (!Array.isArray(olds.ukis) || !olds.systemdBoot?.path || !olds.bootFiles || typeof olds.entryKey !== "string" || typeof olds.kairosRelease !== "string") return [];
        const entries = new Map(bootEntriesOf(olds as Outputs).map((e) => [e.fileName, e]));
        const ukis = olds.ukis as UkiOutput[];
        if (ukis.some((u) => !entries.has(u.fileName))) return [];
        return [
            ...ukis.flatMap((u) => [
                { from: u.path, to: at(u.path), sha256: u.sha256 },
                { from: u.entryPath, to: at(u.entryPath), sha256: sha256Hex(renderedEntry(olds as Outputs, entries.get(u.fileName)!, olds.entryKey, olds.kairosRelease)) },
            ]),
            { from: olds.systemdBoot.path, to: at(olds.systemdBoot.path), sha256: olds.systemdBoot.sha256 },
            { from: path.join(olds.outputDir, OWNER_MARKER), to: at(path.join(olds.outputDir, OWNER_MARKER)), sha256: sha256Hex(OWNER_TEXT) },
        ];
    },
    moved: (olds, _news, at) => ({
        ukis: (olds.ukis as UkiOutput[]).map((u) => ({ ...u, path: at(u.path), entryPath: at(u.entryPath) })),
        systemdBoot: { ...olds.systemdBoot, path: at(olds.systemdBoot.path) },
        bootFiles: { efiFiles: olds.bootFiles.efiFiles.map(at), loaderEntries: olds.bootFiles.loaderEntries.map(at), systemdBoot: at(olds.bootFiles.systemdBoot) },
    }),
};

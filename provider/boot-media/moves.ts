// BootMedia moved to a new outputDir (artifact-move.ts).
import * as path from "path";
import { MoveSpec, sameHashPartsBut } from "../artifact-move";
import { bootMediaLayout } from "./stored";

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

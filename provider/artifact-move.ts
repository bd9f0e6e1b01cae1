// Moves. A resource whose outputDir (or file name) changed, and whose recorded artifact is already at the
// new place (a checkout moved with its output folder, a folder moved on purpose), takes that artifact
// over: the diff says update instead of replace, and the update checks the digests there and records
// the new place. Nothing is rebuilt or regenerated, and the old place is left as it is (a move never
// writes there). When the new place does not hold the recorded artifact, the resource behaves as
// without this module: it is replaced (rebuilt at the new place), or refused (SigningKeys).
import * as fs from "fs";
import * as path from "path";
import type { ArtifactRecord, Handler } from "./artifact-contract";
import { samePath } from "./check-kit";
import { UNKNOWN } from "./validation/schema-validator";
import { BuildLog, logLine } from "./build-log";
import { isInside, sha256FileIfExists } from "./toolkit/files";
import { treeDigest } from "./toolkit/source/tree-digest";
import { artifactStoreFor } from "./store/artifact-store";

/** One recorded file (or folder) of an artifact: where the state has it, where the new inputs put it. */
export interface RecordedFile {
    from: string;
    to: string;
    /** The recorded digest; undefined: the state records none, so only its presence is checked. */
    sha256?: string;
    /** A folder whose tree digest is recorded (BootMedia type "dir"). */
    tree?: boolean;
}

/** Maps a path the outputs record to the same place under the new folder. */
export type Relocate = (recorded: string) => string;

/** What a resource tells the move logic about its artifact. */
export interface MoveSpec {
    label(props: Record<string, any>): string;
    /** What the resource's diff may name in `replaces` for a change to be a move: inputs that only say where the artifact lives. */
    placeFields: string[];
    /** The folder the outputs' paths live under: from outputs (olds) or from checked inputs (news). */
    root(props: Record<string, any>): unknown;
    /**
     * Whether the new inputs describe the recorded artifact (its content hashes are equal); undefined
     * when that is not known yet (a preview whose inputs wait on another resource's update).
     */
    sameArtifact(olds: Record<string, any>, news: Record<string, any>): boolean | undefined;
    /** The recorded files and where they would be under the new inputs. */
    files(olds: Record<string, any>, news: Record<string, any>, at: Relocate): RecordedFile[];
    /** The outputs that name places, rewritten for the new place (the rest of the outputs stay). */
    moved(olds: Record<string, any>, news: Record<string, any>, at: Relocate): Record<string, any>;
    /**
     * Whether the moved outputs need nothing more than the new paths (default: the input hash is the
     * same). SigningKeys with a new authTimestamp, say, re-signs after the move.
     */
    settled?(olds: Record<string, any>, news: Record<string, any>): boolean;
    /** Files that may differ at the new place without making it someone else's (SigningKeys' derived files). */
    repairable?(file: RecordedFile): boolean;
    /** Reads what is at the new place; default: sha256 (or tree digest), undefined when missing. */
    digestsAt?(files: RecordedFile[]): Promise<(string | undefined)[]>;
    /**
     * Puts right what the taken-over files may have lost on the way without being other files (a
     * private key's mode after a copy); returns what it changed, for the build log.
     */
    takeOver?(files: RecordedFile[]): string[];
    /** The error when the new place holds something else that must not be built over; undefined: replace as usual. */
    refusal?(olds: Record<string, any>, news: Record<string, any>, differing: RecordedFile[]): Error | undefined;
}

/** sameArtifact for resources whose input hash names their content. */
export function sameInputHash(olds: Partial<ArtifactRecord>, news: Partial<ArtifactRecord>): boolean | undefined {
    if (typeof news.inputHash !== "string" || news.inputHash === UNKNOWN) return undefined;
    return olds.inputHash === news.inputHash;
}

/**
 * sameArtifact for resources whose input hash also names where the artifact is (a hash part for the
 * file name, which keeps the artifact store's manifests apart): the other parts must be equal.
 */
export function sameHashPartsBut(placeParts: string[]) {
    return (olds: Record<string, any>, news: Record<string, any>): boolean | undefined => {
        const same = sameInputHash(olds, news);
        if (same !== false || !olds.hashParts || !news.hashParts) return same;
        const content = (parts: Record<string, string>) => JSON.stringify(Object.entries(parts).filter(([k]) => !placeParts.includes(k)).sort());
        return content(olds.hashParts) === content(news.hashParts);
    };
}

/** The one step of a move (lastBuild.steps). */
export const MOVE_STEP = "verify the recorded digests at the new place";

/** The reason a moved resource's lastBuild gives. */
export function movedReason(from: string, to: string): string {
    return `moved from ${from} to ${to}`;
}

/**
 * `h` with moves: its diff turns a replace whose only cause is a new place into an update when the
 * recorded artifact is there, and its update takes that artifact over instead of building.
 */
export function withMoves(h: Handler, spec: MoveSpec): Handler {
    return {
        ...h,
        async diff(id, olds, news) {
            const plan = planMove(spec, olds, news);
            if (!plan) return h.diff(id, olds, news);
            const seen = await inspect(spec, plan.files);
            const refusal = seen.foreign.length > 0 ? spec.refusal?.(olds, news, seen.foreign) : undefined;
            if (refusal) throw refusal;
            const inner = await h.diff(id, olds, news);
            const same = spec.sameArtifact(olds, news);
            if (same === false || seen.foreign.length > 0 || (inner.replaces ?? []).some((f) => !spec.placeFields.includes(f))) return inner;
            logLine(
                `${labelOf(spec, olds, news)}: ${movedReason(plan.from, plan.to)}: the recorded artifact is there (${describe(plan.files)}), ` +
                    `so the update takes it over and rebuilds nothing${same ? "" : " (if its other inputs, known only then, are unchanged)"}` +
                    (seen.repair.length > 0 ? `; ${seen.repair.map((f) => path.basename(f.to)).join(", ")} will be put right` : "") +
                    `; ${plan.from} is left as it is`,
            );
            return { ...inner, changes: true, replaces: [] };
        },
        // The update takes the artifact over at the new place and never writes the old one (README: Moves).
        leavesOldPlace: (olds, news) => updatePlan(spec, olds, news) !== undefined || (h.leavesOldPlace?.(olds, news) ?? false),
        async update(id, olds, news) {
            const plan = updatePlan(spec, olds, news);
            if (!plan) return h.update(id, olds, news);
            const reason = movedReason(plan.from, plan.to);
            const log = new BuildLog(labelOf(spec, olds, news), "moved", [reason]);
            const seen = await log.step(MOVE_STEP, () => inspect(spec, plan.files));
            if (seen.foreign.length > 0) {
                const refusal = spec.refusal?.(olds, news, seen.foreign);
                if (refusal) throw refusal;
                // Not there after all (changed since the diff): built at the new place, as a replace would.
                log.say(`${seen.foreign.map((f) => path.basename(f.to)).join(", ")} at ${plan.to} ${seen.foreign.length > 1 ? "are" : "is"} not the recorded artifact; building there instead`);
                return h.update(id, olds, news);
            }
            const fixed = spec.takeOver?.(plan.files) ?? [];
            if (fixed.length > 0) log.say(fixed.join("; "));
            const moved: Record<string, any> = {
                ...olds, ...news, ...spec.moved(olds, news, plan.at),
                drift: seen.repair.map((f) => `${path.basename(f.to)}: ${fs.existsSync(f.to) ? "altered" : "missing"}`),
            };
            // The store keeps the same objects (content-addressed); only the local paths they stand for move.
            if (olds.store) moved.store = { ...olds.store, objects: Object.fromEntries(Object.entries(olds.store.objects ?? {}).map(([f, uri]) => [plan.at(f), uri])) };
            // A store keeps manifests by input hash: a new store, or a new hash, needs the update's publish.
            const store = artifactStoreFor(news.artifactStore);
            const publish = store !== undefined && (olds.store?.location !== store.location || olds.inputHash !== news.inputHash);
            const settled = spec.settled ? spec.settled(olds, news) : olds.inputHash === news.inputHash;
            if (moved.drift.length === 0 && settled && !publish) return { outs: { ...moved, lastBuild: log.report() } };
            // Moved, and more to do (files to put right, a re-sign, a store that lacks it): the update runs on the moved state.
            const updated = await h.update(id, moved, news);
            const b = updated.outs?.lastBuild;
            // Publishing the moved artifact (a store new to it, or a BootMedia's new name) builds nothing: still a move.
            const action = b?.action === "published" ? "moved" : b?.action;
            return { outs: { ...updated.outs, lastBuild: b ? { ...b, action, reasons: [reason, ...b.reasons], steps: [...log.report().steps, ...b.steps] } : log.report() } };
        },
    };
}

/** The resource's label from the new inputs, or the recorded ones while a preview does not know them yet. */
function labelOf(spec: MoveSpec, olds: Record<string, any>, news: Record<string, any>): string {
    const label = spec.label(news);
    return label.includes(UNKNOWN) ? spec.label(olds) : label;
}

interface Plan {
    from: string;
    to: string;
    at: Relocate;
    files: RecordedFile[];
}

/** The move an update makes: only once every input is known to describe the recorded artifact. */
function updatePlan(spec: MoveSpec, olds: Record<string, any>, news: Record<string, any>): Plan | undefined {
    return spec.sameArtifact(olds, news) === true ? planMove(spec, olds, news) : undefined;
}

/** Where the artifact was and where the new inputs put it; undefined: the same place, or not known yet. */
function planMove(spec: MoveSpec, olds: Record<string, any>, news: Record<string, any>): Plan | undefined {
    const from = spec.root(olds);
    const to = spec.root(news);
    const known = (p: unknown): p is string => typeof p === "string" && !p.includes(UNKNOWN);
    if (!known(from) || !known(to)) return undefined;
    const at = (p: string) => relocatedPath(p, from, to);
    const files = spec.files(olds, news, at);
    if (files.length === 0 || files.some((f) => !known(f.to) || !known(f.from))) return undefined;
    if (samePath(from, to)) {
        // Same folder, another file name (BootMedia's name): the move is said by file.
        const renamed = files.find((f) => !samePath(f.from, f.to));
        return renamed ? { from: renamed.from, to: renamed.to, at, files } : undefined;
    }
    return { from, to, at, files };
}

/** What the new place holds: files that are not the recorded ones, split by whether they may be put right. */
async function inspect(spec: MoveSpec, files: RecordedFile[]): Promise<{ foreign: RecordedFile[]; repair: RecordedFile[] }> {
    const now = await (spec.digestsAt ?? digestsAt)(files);
    const differing = files.filter((f, i) => now[i] === undefined || (f.sha256 !== undefined && now[i] !== f.sha256));
    const repairable = spec.repairable ?? (() => false);
    return { foreign: differing.filter((f) => !repairable(f)), repair: differing.filter(repairable) };
}

/** The sha256 (or tree digest) of each file at its new place; undefined when it is not there ("" when there and no digest is recorded). */
async function digestsAt(files: RecordedFile[]): Promise<(string | undefined)[]> {
    return Promise.all(
        files.map(async (f) => {
            if (f.tree) return fs.existsSync(f.to) && fs.statSync(f.to).isDirectory() ? treeDigest(f.to) : undefined;
            if (f.sha256 === undefined) return fs.existsSync(f.to) ? "" : undefined;
            return sha256FileIfExists(f.to);
        }),
    );
}

function describe(files: RecordedFile[]): string {
    if (files.length === 1) return `${path.basename(files[0].to)}, same ${files[0].tree ? "tree digest" : "sha256"}`;
    const digested = files.filter((f) => f.sha256 !== undefined).length;
    return `${files.length} files, ${digested === files.length ? "each with its recorded digest" : `${digested} of them with their recorded digests`}`;
}

/**
 * The place `recorded` (a path at or under `from`) takes under `to`, in the form `to` has (relative
 * stays relative: it resolves against the project folder). A path outside `from` is returned as it is.
 */
export function relocatedPath(recorded: string, from: string, to: string): string {
    if (!isInside(from, recorded)) return recorded;
    const rel = path.relative(path.resolve(from), path.resolve(recorded));
    return rel === "" ? to : path.join(to, rel);
}

// Not the artifact store's relocate (store/manifest.ts), on purpose: that one rewrites the text of
// stored outputs under a placeholder root (`${outputRoot}` is no path to resolve) and refuses what climbs
// out as a corrupt store; this one compares resolved places (the state may say /abs/out, the inputs "out")
// and leaves a path outside the folder as it is.

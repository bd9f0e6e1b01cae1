// The artifact store in a resource's life: before building, take what the store holds for this input
// hash (verified, placed with the same staging-then-rename as a build); after building, publish the
// files and a manifest. Local files are then a cache: a runner with an empty disk fetches instead of
// building, and a deleted file comes back from the store on the next up.
import * as fs from "fs";
import * as path from "path";
import type { Handler } from "../resource-kit";
import { BuildLog } from "../build-log";
import { sha256File, sha256FileIfExists } from "../toolkit/files";
import { treeEntries } from "../toolkit/tree-digest";
import { replaceDirectory, stageThenMove } from "./staging";
import { ArtifactManifest, ArtifactStore, ArtifactStoreSpec, ManifestEntry, OUTPUT_ROOT, StoreIntegrityError, artifactStoreFor, relocate } from "./artifact-store";

/** Where a resource's artifacts live and how they are put in place. */
export interface ArtifactLayout {
    /** The folder the artifacts live under, from inputs or outputs (as the state writes it). */
    root(props: Record<string, any>): string;
    /** "files": the named files land beside whatever else the folder holds; "dir": the folder is the resource's, replaced whole. */
    placement(props: Record<string, any>): "files" | "dir";
    /** The artifact files the outputs record (state form); one missing means this machine lacks the artifact. */
    localFiles(outs: Record<string, any>): string[];
    /** For "files": what is published (default: localFiles). Private keys are never in this list. */
    storedFiles?(outs: Record<string, any>): string[];
    /** Label for the build log. */
    label(props: Record<string, any>): string;
}

/** The `store` output: where this resource's artifacts are kept besides the local files. */
export interface StoreOutput {
    location: string;
    manifest: string;
    /** Local path (as in the other outputs) -> object URI. */
    objects: Record<string, string>;
}

/** Outputs that describe one run, not the artifact: never stored, never taken from the store. */
const RUN_OUTPUTS = ["drift", "lastBuild", "store", "stateVersion"];

/**
 * `h` with the artifact store of its `artifactStore` input: create and update fetch what the store has
 * for the input hash, else build and publish; diff asks for an update when this machine lacks a
 * recorded artifact (a fresh runner) or the store does not have it yet. Without a store, `h` as it is.
 */
export function withArtifactStore(token: string, h: Handler, layout: ArtifactLayout): Handler {
    return {
        ...h,
        diff: (id, olds, news) => diffWithStore(h, layout, id, olds, news),
        async create(inputs) {
            const store = artifactStoreFor(inputs.artifactStore);
            if (!store) return h.create(inputs);
            const fetched = await fetchFromStore(store, token, inputs, layout);
            if (fetched) return { id: idOf(layout, fetched), outs: fetched };
            const built = await h.create(inputs);
            return { id: built.id, outs: await publish(store, token, inputs, built.outs, layout, { replace: mustReplace(token, inputs.inputHash) }) };
        },
        async update(id, olds, news) {
            const store = artifactStoreFor(news.artifactStore);
            if (!store) return h.update(id, olds, news);
            if (olds.inputHash === news.inputHash && (await intactLocally(olds, layout))) {
                // Same artifact, all here: only the store is new to it.
                const log = new BuildLog(layout.label(news), "published", [`not yet in ${store.location}`]);
                return { outs: await publish(store, token, news, { ...olds, ...news, drift: [] }, layout, { log }) };
            }
            const fetched = await fetchFromStore(store, token, news, layout);
            if (fetched) return { outs: fetched };
            const built = await h.update(id, olds, news);
            return { outs: await publish(store, token, news, built.outs, layout, { replace: mustReplace(token, news.inputHash) }) };
        },
    };
}

/**
 * `h.diff`, and with a store also a change when this machine lacks a recorded artifact (a fresh
 * runner: the update fetches it) or the store does not hold it yet (the update publishes it).
 */
export async function diffWithStore(h: Handler, layout: ArtifactLayout, id: string, olds: Record<string, any>, news: Record<string, any>) {
    const result = await h.diff(id, olds, news);
    const store = artifactStoreFor(news.artifactStore);
    if (result.changes || !store) return result;
    return missingLocally(olds, layout).length > 0 || olds.store?.location !== store.location ? { ...result, changes: true } : result;
}

function idOf(layout: ArtifactLayout, outs: Record<string, any>): string {
    return outs.path ?? outs.keyDir ?? layout.root(outs);
}

function missingLocally(outs: Record<string, any>, layout: ArtifactLayout): string[] {
    return layout.localFiles(outs).filter((f) => !fs.existsSync(f));
}

/** Every recorded artifact is here with the recorded bytes (outputs name their digests per file). */
async function intactLocally(outs: Record<string, any>, layout: ArtifactLayout): Promise<boolean> {
    if ((outs.drift ?? []).length > 0 || missingLocally(outs, layout).length > 0) return false;
    const recorded = recordedDigests(outs);
    for (const f of layout.localFiles(outs)) {
        const want = recorded.get(f);
        if (want && (await sha256FileIfExists(f)) !== want) return false;
    }
    return true;
}

/** path -> sha256 pairs found anywhere in the outputs ({path, sha256} objects). */
function recordedDigests(outs: Record<string, any>): Map<string, string> {
    const found = new Map<string, string>();
    const walk = (v: any) => {
        if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === "object") {
            if (typeof v.path === "string" && typeof v.sha256 === "string" && /^[0-9a-f]{64}$/.test(v.sha256)) found.set(v.path, v.sha256);
            Object.values(v).forEach(walk);
        }
    };
    walk(outs);
    return found;
}

/** The entries to publish: the named files, or every file and folder of an owned folder. */
async function entriesOf(outs: Record<string, any>, layout: ArtifactLayout): Promise<(ManifestEntry & { file?: string })[]> {
    const root = layout.root(outs);
    if (layout.placement(outs) === "files") {
        const files = (layout.storedFiles ?? layout.localFiles)(outs);
        return Promise.all(files.map(async (f) => {
            const st = fs.statSync(f);
            return { path: path.relative(root, f), sha256: await sha256File(f), size: st.size, mode: st.mode & 0o7777, file: f };
        }));
    }
    const entries = await treeEntries(root);
    const odd = entries.filter((e) => e.type !== "file" && e.type !== "dir");
    if (odd.length > 0) throw new Error(`${root} holds ${odd.map((e) => `${e.path} (${e.type})`).join(", ")}; the artifact store keeps files and folders only`);
    return entries.map((e) => e.type === "dir"
        ? { path: e.path, mode: e.mode }
        : { path: e.path, sha256: e.sha256!, size: fs.statSync(path.join(root, e.path)).size, mode: e.mode, file: path.join(root, e.path) });
}

/**
 * Uploads the artifacts and the manifest; returns the outputs with their `store` record. The upload is
 * a step of `opts.log` when given (its report becomes lastBuild), else it is added to the build's report.
 * `opts.replace` rewrites objects found damaged.
 */
export async function publish(
    store: ArtifactStore, token: string, inputs: Record<string, any>, outs: Record<string, any>, layout: ArtifactLayout,
    opts: { log?: BuildLog; replace?: boolean } = {},
): Promise<Record<string, any>> {
    const log = opts.log ?? new BuildLog(layout.label(inputs), "published", []);
    const root = layout.root(outs);
    const entries = await entriesOf(outs, layout);
    const uploaded = await log.step(`upload to ${store.location}`, async () => {
        let n = 0;
        for (const e of entries) {
            if (!e.sha256) continue;
            if (opts.replace) await store.replaceBlob(e.file!, e.sha256, e.size!);
            else if ((await store.putBlob(e.file!, e.sha256, e.size!)) === "uploaded") n++;
        }
        const outputs = Object.fromEntries(Object.entries(outs).filter(([k]) => !(k in inputs) && !RUN_OUTPUTS.includes(k)));
        await store.putManifest({ resource: token, inputHash: inputs.inputHash, entries: entries.map(({ file: _f, ...e }) => e), outputs: relocate(outputs, root, OUTPUT_ROOT) }, opts);
        return n;
    });
    log.say(`${uploaded} of ${entries.filter((e) => e.sha256).length} files uploaded (the rest were there already)`);
    const lastBuild = opts.log || !outs.lastBuild ? log.report() : { ...outs.lastBuild, steps: [...outs.lastBuild.steps, ...log.report().steps] };
    return { ...outs, lastBuild, store: storeOutput(store, token, inputs.inputHash, root, entries) };
}

function storeOutput(store: ArtifactStore, token: string, inputHash: string, root: string, entries: ManifestEntry[]): StoreOutput {
    return {
        location: store.location,
        manifest: store.manifestUri(token, inputHash),
        objects: Object.fromEntries(entries.filter((e) => e.sha256).map((e) => [path.join(root, e.path), store.blobUri(e.sha256!)])),
    };
}

/**
 * The artifacts the store holds for `inputs.inputHash`, downloaded, verified and put in place, as
 * outputs; undefined when the store has none. A file already here with the recorded digest is reused.
 * A damaged object fails the update, or with onCorrupt "rebuild" returns undefined (build instead)
 * and the publish after the build replaces it.
 */
export async function fetchFromStore(store: ArtifactStore, token: string, inputs: Record<string, any>, layout: ArtifactLayout): Promise<Record<string, any> | undefined> {
    const log = new BuildLog(layout.label(inputs), "fetched", [`input hash ${String(inputs.inputHash).slice(0, 12)}… is in ${store.location}`]);
    let manifest: ArtifactManifest | undefined;
    try {
        manifest = await store.getManifest(token, inputs.inputHash);
        if (!manifest) return undefined;
        const root = layout.root(inputs);
        const m = manifest;
        await log.step("fetch from the store", () => placeEntries(store, root, layout.placement(inputs), m.entries));
        const outputs = relocate(m.outputs, OUTPUT_ROOT, root);
        return { ...inputs, ...outputs, drift: [], lastBuild: log.report(), store: storeOutput(store, token, inputs.inputHash, root, m.entries) };
    } catch (e) {
        const integrity = e instanceof StoreIntegrityError || (e as Error).name === "StoreIntegrityError" || (e as { cause?: unknown }).cause instanceof StoreIntegrityError;
        if (integrity && store.spec.onCorrupt === "rebuild") {
            log.say(`the stored artifact is damaged; building instead (onCorrupt: "rebuild"): ${(e as Error).message}`);
            replaceAfterRebuild.add(`${token} ${inputs.inputHash}`);
            return undefined;
        }
        throw e;
    }
}

/** Input hashes whose stored objects were found damaged in this process: the next publish rewrites them. */
const replaceAfterRebuild = new Set<string>();

export function mustReplace(token: string, inputHash: string): boolean {
    return replaceAfterRebuild.delete(`${token} ${inputHash}`);
}

async function placeEntries(store: ArtifactStore, root: string, placement: "files" | "dir", entries: ManifestEntry[]): Promise<void> {
    const write = async (staging: string) => {
        for (const e of [...entries].sort((a, b) => a.path.localeCompare(b.path))) {
            if (e.path.split("/").includes("..") || path.isAbsolute(e.path)) throw new StoreIntegrityError(`the manifest names ${e.path}, outside the artifact folder`);
            const to = path.join(staging, e.path);
            if (!e.sha256) {
                fs.mkdirSync(to, { recursive: true });
                fs.chmodSync(to, e.mode);
                continue;
            }
            fs.mkdirSync(path.dirname(to), { recursive: true });
            const here = path.join(root, e.path);
            if ((await sha256FileIfExists(here)) === e.sha256) fs.copyFileSync(here, to);
            else await store.getBlob(e.sha256, e.size, to);
            fs.chmodSync(to, e.mode);
        }
    };
    if (placement === "dir") await replaceDirectory(root, write, entries.find((e) => e.path === "")?.mode ?? 0o755);
    else await stageThenMove(root, write, 0o755);
}

/** The `artifactStore` of a resource's inputs, as a store (undefined: none configured). */
export function storeOf(props: { artifactStore?: ArtifactStoreSpec }): ArtifactStore | undefined {
    return artifactStoreFor(props.artifactStore);
}

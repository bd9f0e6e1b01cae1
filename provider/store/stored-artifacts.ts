// The artifact store in a resource's life: before building, take what the store holds for this input
// hash (verified, placed with the same staging-then-rename as a build); after building, publish the
// files and a manifest. Local files are then a cache: a runner with an empty disk fetches instead of
// building, and a deleted file comes back from the store on the next up.
import * as fs from "fs";
import * as path from "path";
import { ArtifactOutputs, Handler, StoreOutput, artifactFields } from "../artifact-contract";
import { BuildLog } from "../build-log";
import { isInside, sha256File, sha256FileIfExists } from "../toolkit/files";
import { treeEntries } from "../toolkit/source/tree-digest";
import { ToolNotFoundError } from "../toolkit/run";
import { X509Certificate } from "crypto";
import { containsUnknown, signingPairProblems } from "../check-kit";
import type { InputProblem } from "../validation/schema-validator";
import { replaceDirectory, stageThenMove, withScratch } from "../output/staging";
import { ArtifactStore, artifactStoreFor } from "./artifact-store";
import { ArtifactStoreSpec, ManifestEntry, OUTPUT_ROOT, StoreIntegrityError, relocate } from "./manifest";

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
    /** The resource id from its outputs. @default root */
    id?(outs: Record<string, any>): string;
    /**
     * The files (paths relative to root) a build from these inputs places. A fetched manifest must list
     * exactly these files: no sibling's image, no lock or staging name. Absent: the resource never fetches.
     */
    expectedFiles?(inputs: Record<string, any>): string[];
    /** For "dir": empty folders a build makes besides the parents of expectedFiles. */
    expectedDirs?(inputs: Record<string, any>): string[];
    /**
     * Verifies fetched artifacts, staged under `staged` as they will lie under root, with the checks a
     * build makes, and returns the outputs computed from them and the runner's own inputs. `stored` is
     * the manifest's outputs: only values that name no file and no digest may be taken from it, each
     * validated. Throws StoreIntegrityError when the artifacts are not what a build would accept.
     */
    accept?(inputs: Record<string, any>, staged: string, stored: Record<string, unknown>, work: string): Promise<Record<string, any>>;
    /**
     * Throws when the artifacts must not be placed at root (a folder holding files the resource did not
     * make, which a build refuses to replace): a fetch places as a build does, so it refuses alike.
     */
    beforePlace?(inputs: Record<string, any>): void;
    /**
     * For a resource that never reads manifests (no accept): its update with a store, which puts back
     * the recorded files this machine lacks (from the store and its own sources) and publishes
     * (SigningKeys: signing-keys/key-store.ts). Absent: the update fetches what the store holds for
     * the input hash, else builds, and publishes.
     */
    updateWithStore?(store: ArtifactStore, h: Handler, id: string, olds: Record<string, any>, news: Record<string, any>): Promise<{ outs: ArtifactOutputs }>;
}

/** Names the store's own machinery uses beside an output (locks, staging, scratch): never artifact files. */
const MACHINERY_NAME = /\.lock$|\.(staging|work)-/;

/**
 * `h` with the artifact store of its `artifactStore` input: create and update fetch what the store has
 * for the input hash, else build and publish; diff asks for an update when this machine lacks a
 * recorded artifact (a fresh runner) or the store does not have it yet. Without a store, `h` as it is.
 * A resource that never reads manifests (no layout.accept: SigningKeys) never fetches: its create
 * builds and publishes, its update is layout.updateWithStore.
 */
export function withArtifactStore(token: string, h: Handler, layout: ArtifactLayout): Handler {
    const readsManifests = !!layout.accept;
    return {
        ...h,
        // A resource that reads manifests needs the publisher's certificate to verify them; one that
        // never does needs a publisher only to publish, and then a matching pair.
        check: async (olds, news) => {
            const checked = await h.check!(olds, news);
            if (readsManifests && (checked.failures ?? []).some((f) => String(f.property).startsWith("artifactStore"))) return checked;
            const problems = publisherProblems(checked.inputs?.artifactStore, readsManifests);
            return problems.length > 0 ? { ...checked, failures: [...(checked.failures ?? []), ...problems] } : checked;
        },
        diff: (id, olds, news) => diffWithStore(h, layout, id, olds, news),
        async create(inputs) {
            const store = artifactStoreFor(inputs.artifactStore);
            if (!store) return h.create(inputs);
            const fetched = readsManifests ? await fetchFromStore(store, token, inputs, layout) : { outs: undefined, replace: false };
            if (fetched.outs) return { id: idOf(layout, fetched.outs), outs: fetched.outs };
            const built = await h.create(inputs);
            return { id: built.id, outs: await publish(store, token, inputs, built.outs, layout, { replace: fetched.replace }) };
        },
        async update(id, olds, news) {
            const store = artifactStoreFor(news.artifactStore);
            if (!store) return h.update(id, olds, news);
            if (layout.updateWithStore) return layout.updateWithStore(store, h, id, olds, news);
            if (olds.inputHash === news.inputHash && (await intactLocally(olds, layout))) {
                // Same artifact, all here: only the store is new to it.
                const log = new BuildLog(layout.label(news), "published", [`not yet in ${store.location}`]);
                return { outs: await publish(store, token, news, { ...olds, ...news, drift: [] }, layout, { log }) };
            }
            const fetched = await fetchFromStore(store, token, news, layout);
            if (fetched.outs) return { outs: fetched.outs };
            const built = await h.update(id, olds, news);
            return { outs: await publish(store, token, news, built.outs, layout, { replace: fetched.replace }) };
        },
    };
}

/**
 * Problems with `artifactStore.publisher`: required when the resource reads manifests (`required`), its
 * key and certificate must belong together, a certificate alone must be one.
 */
export function publisherProblems(spec: ArtifactStoreSpec | undefined, required: boolean): InputProblem[] {
    if (!spec || !spec.bucket || containsUnknown(spec)) return [];
    const property = "artifactStore.publisher";
    const p = spec.publisher;
    if (!p || !p.certificate) {
        return required
            ? [{ property, reason: "is not set: every manifest in the store is signed, and a runner reads only manifests signed by the publisher's key; give { certificate, key } (the project's db certificate and key, or a key of its own), or the certificate alone on a runner that only fetches" }]
            : [];
    }
    if (p.key) return signingPairProblems(property, { key: p.key, certificate: p.certificate });
    if (!fs.existsSync(p.certificate)) return [{ property: `${property}.certificate`, reason: `${p.certificate} does not exist` }];
    try {
        new X509Certificate(fs.readFileSync(p.certificate));
    } catch (e) {
        return [{ property: `${property}.certificate`, reason: `${p.certificate} is not an X.509 certificate (${(e as Error).message})` }];
    }
    return [];
}

/**
 * `h.diff`, and with a store also a change when this machine lacks a recorded artifact (a fresh
 * runner: the update fetches it) or the store does not hold it yet (the update publishes it).
 */
export async function diffWithStore(h: Handler, layout: ArtifactLayout, id: string, olds: Record<string, any>, news: Record<string, any>) {
    const result = await h.diff(id, olds, news);
    const store = artifactStoreFor(news.artifactStore);
    if (result.changes || !store) return result;
    const unpublished = olds.store?.published === false && store.canPublish; // the key came later: publish now
    return missingLocally(olds, layout).length > 0 || olds.store?.location !== store.location || unpublished ? { ...result, changes: true } : result;
}

function idOf(layout: ArtifactLayout, outs: Record<string, any>): string {
    return layout.id ? layout.id(outs) : layout.root(outs);
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
            return { path: path.relative(root, f), sha256: await sha256File(f), size: st.size, mode: placedMode(st.mode, false), file: f };
        }));
    }
    const entries = await treeEntries(root);
    const odd = entries.filter((e) => e.type !== "file" && e.type !== "dir");
    if (odd.length > 0) throw new Error(`${root} holds ${odd.map((e) => `${e.path} (${e.type})`).join(", ")}; the artifact store keeps files and folders only`);
    return entries.map((e) => e.type === "dir"
        ? { path: e.path, mode: placedMode(e.mode, true) }
        : { path: e.path, sha256: e.sha256!, size: fs.statSync(path.join(root, e.path)).size, mode: placedMode(e.mode, false), file: path.join(root, e.path) });
}

/**
 * Uploads the artifacts and the manifest; returns the outputs with their `store` record. The upload is
 * a step of `opts.log` when given (its report becomes lastBuild), else it is added to the build's report.
 * `opts.replace` rewrites objects found damaged.
 */
export async function publish(
    store: ArtifactStore, token: string, inputs: Record<string, any>, outs: ArtifactOutputs, layout: ArtifactLayout,
    opts: { log?: BuildLog; replace?: boolean } = {},
): Promise<ArtifactOutputs> {
    const log = opts.log ?? new BuildLog(layout.label(inputs), "published", []);
    const root = layout.root(outs);
    const entries = await entriesOf(outs, layout);
    const withReport = () => (opts.log || !outs.lastBuild ? log.report() : { ...outs.lastBuild, steps: [...outs.lastBuild.steps, ...log.report().steps] });
    // A resource that never reads manifests (SigningKeys: lost files come back by the digests its state
    // records) still uploads its public files without a publisher key; every other one only fetches then.
    const readsManifests = !!layout.accept;
    if (!store.canPublish && readsManifests) {
        log.say(`not published to ${store.location}: artifactStore.publisher has no key, so this runner only fetches`);
        return { ...outs, lastBuild: withReport(), store: storeOutput(store, token, inputs.inputHash, root, entries, false) };
    }
    const uploaded = await log.step(`upload to ${store.location}`, async () => {
        let n = 0;
        for (const e of entries) {
            if (!e.sha256) continue;
            if (opts.replace) await store.replaceBlob(e.file!, e.sha256, e.size!);
            else if ((await store.putBlob(e.file!, e.sha256, e.size!)) === "uploaded") n++;
        }
        if (!store.canPublish) {
            log.say("no manifest written: artifactStore.publisher has no key");
            return n;
        }
        const outputs = artifactFields(outs, inputs);
        await store.putManifest({ resource: token, inputHash: inputs.inputHash, entries: entries.map(({ file: _f, ...e }) => e), outputs: relocate(outputs, root, OUTPUT_ROOT) }, opts);
        return n;
    });
    log.say(`${uploaded} of ${entries.filter((e) => e.sha256).length} files uploaded (the rest were there already)`);
    return { ...outs, lastBuild: withReport(), store: storeOutput(store, token, inputs.inputHash, root, entries) };
}

function storeOutput(store: ArtifactStore, token: string, inputHash: string, root: string, entries: ManifestEntry[], published = true): StoreOutput {
    return {
        location: store.location,
        manifest: store.manifestUri(token, inputHash),
        objects: Object.fromEntries(entries.filter((e) => e.sha256).map((e) => [path.join(root, e.path), store.blobUri(e.sha256!)])),
        published,
    };
}

/**
 * The artifacts the store holds for `inputs.inputHash`, downloaded, verified as a build verifies its
 * own (layout.accept) and put in place, as outputs computed here from the placed files and the
 * runner's inputs: a manifest never overrides an input and never names a path. `outs` is undefined
 * when the store has none or, with onCorrupt "rebuild", when what it has was refused (then `replace`:
 * the publish after the build overwrites the manifest and objects).
 */
export async function fetchFromStore(
    store: ArtifactStore, token: string, inputs: Record<string, any>, layout: ArtifactLayout,
): Promise<{ outs?: ArtifactOutputs; replace: boolean }> {
    const log = new BuildLog(layout.label(inputs), "fetched", [`input hash ${String(inputs.inputHash).slice(0, 12)}… is in ${store.location}`]);
    try {
        const manifest = await store.getManifest(token, inputs.inputHash);
        if (!manifest) return { replace: false };
        if (!layout.expectedFiles || !layout.accept) throw new Error(`${layout.label(inputs)} does not fetch from the artifact store`);
        const root = layout.root(inputs);
        const placement = layout.placement(inputs);
        const uri = store.manifestUri(token, inputs.inputHash);
        const entries = checkedEntries(uri, manifest.entries, placement, layout.expectedFiles(inputs), layout.expectedDirs?.(inputs) ?? []);
        layout.beforePlace?.(inputs);
        const outputs = await log.step("fetch from the store", () =>
            withScratch(root, "fetch", (work) => placeEntries(store, root, placement, entries, (staged) => layout.accept!(inputs, staged, manifest.outputs ?? {}, work))).catch((e) => {
                // A refusal names the manifest it came from, whatever object failed.
                if (e instanceof StoreIntegrityError && !e.message.includes(uri)) e.message = `${uri}: ${e.message}`;
                throw e;
            }),
        );
        const fromInputs = artifactFields(outputs, inputs);
        return { outs: { ...inputs, inputHash: inputs.inputHash, ...fromInputs, drift: [], lastBuild: log.report(), store: storeOutput(store, token, inputs.inputHash, root, entries) }, replace: false };
    } catch (e) {
        const integrity = e instanceof StoreIntegrityError || (e as Error).name === "StoreIntegrityError" || (e as { cause?: unknown }).cause instanceof StoreIntegrityError;
        if (integrity && store.spec.onCorrupt === "rebuild") {
            log.say(`the stored artifact is damaged; building instead (onCorrupt: "rebuild"): ${(e as Error).message}`);
            return { replace: true };
        }
        throw e;
    }
}

/** A file mode as placed: 0755 or 0644 by the owner's exec bit, folders 0755; never setuid, setgid or sticky. */
export function placedMode(mode: unknown, dir: boolean): number {
    if (dir) return 0o755;
    return typeof mode === "number" && (mode & 0o100) !== 0 ? 0o755 : 0o644;
}

/**
 * The manifest's entries, refused unless each is a well-formed relative path inside the root (no "..",
 * not absolute, no lock/staging/scratch name), every file has a digest and a size, and the files are
 * exactly the ones a build from this runner's inputs places.
 */
function checkedEntries(uri: string, raw: unknown[], placement: "files" | "dir", expected: string[], emptyDirs: string[]): ManifestEntry[] {
    const refuse = (why: string) => new StoreIntegrityError(`${uri} ${why}; it was not used. Delete it (or set artifactStore.onCorrupt: "rebuild" to build instead and overwrite it).`);
    const entries: ManifestEntry[] = [];
    for (const r of raw) {
        const e = r as ManifestEntry;
        if (!e || typeof e !== "object" || typeof e.path !== "string") throw refuse("has an entry without a path");
        const parts = e.path.split("/");
        const isRoot = e.path === "" && placement === "dir" && e.sha256 === undefined;
        if (!isRoot && (path.isAbsolute(e.path) || parts.some((p) => p === "" || p === "." || p === "..") || e.path.includes("\0"))) {
            throw refuse(`names ${JSON.stringify(e.path)}, outside the artifact folder`);
        }
        if (parts.some((p) => MACHINERY_NAME.test(p))) throw refuse(`names ${e.path}, a lock or staging name, never an artifact`);
        if (e.sha256 !== undefined) {
            if (typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(e.sha256)) throw refuse(`gives ${e.path} no valid sha256`);
            if (!Number.isSafeInteger(e.size) || (e.size as number) < 0) throw refuse(`gives ${e.path} no size (every file entry needs its size)`);
        } else if (placement === "files") {
            throw refuse(`lists the folder ${e.path}; this resource's artifacts are files only`);
        }
        entries.push({ path: e.path, ...(e.sha256 !== undefined ? { sha256: e.sha256, size: e.size } : {}), mode: placedMode(e.mode, e.sha256 === undefined) });
    }
    const dirsAllowed = new Set(["", ...emptyDirs, ...[...expected, ...emptyDirs].flatMap((f) => f.split("/").slice(0, -1).map((_, k, parts) => parts.slice(0, k + 1).join("/")))]);
    const strayDirs = entries.filter((e) => e.sha256 === undefined && !dirsAllowed.has(e.path)).map((e) => e.path);
    if (strayDirs.length > 0) throw refuse(`lists the folders ${strayDirs.join(", ")}, which a build from these inputs does not make`);
    const files = entries.filter((e) => e.sha256 !== undefined).map((e) => e.path).sort();
    const want = [...expected].sort();
    const extra = files.filter((f) => !want.includes(f));
    const missing = want.filter((f) => !files.includes(f));
    if (extra.length > 0 || missing.length > 0 || new Set(files).size !== files.length) {
        throw refuse(`lists ${files.join(", ") || "no files"}, but a build from these inputs makes ${want.join(", ")}${extra.length ? ` (not ours: ${extra.join(", ")})` : ""}`);
    }
    return entries;
}

async function placeEntries<T>(store: ArtifactStore, root: string, placement: "files" | "dir", entries: ManifestEntry[], accept: (staged: string) => Promise<T>): Promise<T> {
    const write = async (staging: string) => {
        for (const e of [...entries].sort((a, b) => a.path.localeCompare(b.path))) {
            const to = path.join(staging, e.path);
            if (!isInside(staging, to)) throw new StoreIntegrityError(`the manifest names ${e.path}, outside the artifact folder`);
            if (!e.sha256) {
                fs.mkdirSync(to, { recursive: true });
                fs.chmodSync(to, placedMode(e.mode, true));
                continue;
            }
            fs.mkdirSync(path.dirname(to), { recursive: true });
            const here = path.join(root, e.path);
            // A file already here counts only as a regular file (never through a symlink) with the digest.
            if (fs.existsSync(here) && fs.lstatSync(here).isFile() && (await sha256FileIfExists(here)) === e.sha256) fs.copyFileSync(here, to);
            else await store.getBlob(e.sha256, e.size!, to);
            fs.chmodSync(to, placedMode(e.mode, false));
        }
        // Verified in staging: a refused artifact never reaches root. A check that fails on the fetched
        // bytes is a refusal (onCorrupt "rebuild" then builds); a failure of this machine (a full disk,
        // an I/O error, a missing tool) is not the store's fault and stays what it is.
        return accept(staging).catch((e) => {
            throw e instanceof StoreIntegrityError || isLocalFailure(e) ? e : new StoreIntegrityError(`the fetched artifacts do not pass the checks a build makes: ${(e as Error).message}`);
        });
    };
    if (placement === "dir") return replaceDirectory(root, write, 0o755);
    return stageThenMove(root, write, 0o755);
}

/** errno codes that say the machine failed, whatever bytes it was handed. */
const LOCAL_ERRNO = new Set(["ENOSPC", "EDQUOT", "EIO", "EACCES", "EPERM", "EROFS", "EMFILE", "ENFILE", "ENOMEM", "EBUSY"]);

/** An error of this machine rather than of the bytes checked: a full disk, an I/O error, a tool not installed. */
export function isLocalFailure(e: unknown): boolean {
    if (e instanceof ToolNotFoundError) return true;
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (typeof code === "string" && LOCAL_ERRNO.has(code)) return true;
    const cause = (e as { cause?: unknown } | undefined)?.cause;
    return cause !== undefined && cause !== e && isLocalFailure(cause);
}

/** The `artifactStore` of a resource's inputs, as a store (undefined: none configured). */
export function storeOf(props: { artifactStore?: ArtifactStoreSpec }): ArtifactStore | undefined {
    return artifactStoreFor(props.artifactStore);
}

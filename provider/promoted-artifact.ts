// PromotedArtifact: take an artifact that an earlier environment (staging) built and tested into the
// next one (prod) without rebuilding it. The bytes are checked against the sha256 the earlier stack
// recorded; a system extension may be re-signed with this environment's key, and the output proves
// that only the verity-signature partition changed.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { MoveSpec, sameInputHash } from "./artifact-move";
import { Handler } from "./artifact-contract";
import { checkInputs, containsUnknown, replacedFields, signingPairProblems } from "./check-kit";
import { packageProvider, withoutPromiseStackTraces } from "./dynamic-transport";
import { BuildLog, BuildReport, driftOf, updateAction, updateReasons } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, rangesEqual, sha256File, sha256FileIfExists, sha256Hex } from "./toolkit/files";
import { readCertificate } from "./toolkit/keys/openssl";
import { readPartitionTable, verifySysextImage } from "./toolkit/sysext/ddi-verify";
import { resignSysextImage } from "./toolkit/sysext/ddi";
import { stageThenMove, withScratch } from "./output/staging";
import { ArtifactStore, artifactStoreFor } from "./store/artifact-store";
import { ArtifactStoreSpec, StoreIntegrityError } from "./store/manifest";
import type { ArtifactLayout } from "./store/stored-artifacts";
import { artifactStoreInput } from "./artifact-store-config";
import * as contract from "./generated/contract";
import { registeredOutputs } from "./generated/contract";
import { plainHashValues } from "./validation/input-roles";

export const PROMOTED_ARTIFACT_TOKEN = "kairos:index:PromotedArtifact";
const BUILDER_VERSION = "promoted-artifact/1";

/** schema.json's inputs (provider/generated/contract.ts). */
export interface PromotedArtifactArgs extends contract.PromotedArtifactArgs {}

interface CheckedInputs {
    source: string;
    expectedSha256: string;
    outputDir: string;
    kind: "sysext" | "confext" | "file";
    resign?: { key: string; certificate: string };
    fromStore?: ArtifactStoreSpec;
    artifactStore?: ArtifactStoreSpec;
    hashParts: Record<string, string>;
    inputHash: string;
}

interface Outputs extends CheckedInputs {
    path: string;
    sha256: string;
    sourceSha256: string;
    rootHash: string | null;
    changes: string[];
    drift: string[];
    lastBuild: BuildReport;
}

/** One file in outputDir. */
export const promotedArtifactLayout: ArtifactLayout = {
    root: (p) => p.outputDir,
    placement: () => "files",
    localFiles: (outs) => [outs.path],
    label: (p) => `PromotedArtifact ${path.basename(String(p.source))}`,
    id: (outs) => outs.path,
    expectedFiles: (i) => [path.basename(i.source)],
    accept: (i, staged, _stored, work) => acceptFetched(i as CheckedInputs, staged, work),
};

/**
 * A fetched promotion, held to promote()'s rules: as tested, the bytes are expectedSha256 (an extension
 * also passes verifySysextImage); re-signed, the image verifies against `resign.certificate` and differs
 * from the tested bytes (taken again from fromStore or source) only in its signature partition, with
 * the same root hash. Every output is computed here; nothing is taken from the manifest.
 */
async function acceptFetched(i: CheckedInputs, staged: string, work: string): Promise<Partial<Outputs>> {
    const fileName = path.basename(i.source);
    const file = path.join(staged, fileName);
    const refuse = (why: string) => new StoreIntegrityError(`the stored ${fileName} is not what promoting ${i.expectedSha256} makes: ${why}`);
    const sha256 = await sha256File(file);
    const isExtension = i.kind !== "file";
    let rootHash: string | null = null;
    let changes: string[] = [];
    if (!i.resign) {
        if (sha256 !== i.expectedSha256) throw refuse(`its sha256 is ${sha256}`);
        if (isExtension) rootHash = (await verifySysextImage(file, { workDir: work }).catch((e) => { throw refuse((e as Error).message); })).rootHash;
    } else {
        const image = await verifySysextImage(file, { workDir: work, certificate: i.resign.certificate, requireSignature: true }).catch((e) => {
            throw refuse(`it does not verify against ${i.resign!.certificate}: ${(e as Error).message}`);
        });
        const tested = await testedBytes(i, path.join(work, "tested"));
        const table = await readPartitionTable(tested);
        const testedRoot = (await verifySysextImage(tested, { workDir: work })).rootHash;
        if (image.rootHash !== testedRoot) throw refuse(`its root hash ${image.rootHash} is not the tested ${testedRoot}`);
        changes = await changedRegions(tested, file, table);
        const allowed = table.partitions.signature ? [`signature partition (${table.partitions.signature.name})`] : [];
        if (changes.some((c) => !allowed.includes(c))) throw refuse(`it differs from the tested image in ${changes.join(", ")}; re-signing changes only the signature partition`);
        rootHash = image.rootHash;
    }
    return { path: path.join(i.outputDir, fileName), sha256, sourceSha256: i.expectedSha256, rootHash, changes };
}

/** The tested bytes, from fromStore or the source file, checked against expectedSha256. */
async function testedBytes(i: CheckedInputs, dir: string): Promise<string> {
    const fromStore = artifactStoreFor(i.fromStore);
    if (!fromStore) {
        if ((await sha256File(i.source)) !== i.expectedSha256) throw new Error(`${i.source} is not the tested artifact ${i.expectedSha256}`);
        return i.source;
    }
    fs.mkdirSync(dir, { recursive: true });
    const out = path.join(dir, path.basename(i.source));
    await fromStore.getBlob(i.expectedSha256, await testedSize(fromStore, i.expectedSha256), out);
    return out;
}

/**
 * The largest artifact a promotion downloads by its digest (a sysext, a confext or an ISO: well under
 * this). The object's own length is the store's word; this bounds what a bucket writer can make a
 * runner write before the digest check.
 */
export const MAX_PROMOTED_BYTES = 16 * 1024 ** 3;

async function testedSize(store: ArtifactStore, sha256: string): Promise<number> {
    const size = await store.blobSizeAtMost(sha256, MAX_PROMOTED_BYTES, "a promoted artifact");
    if (size === undefined) throw new Error(`${store.blobUri(sha256)} is not in the store: the tested artifact must be in fromStore`);
    return size;
}

export const promotedArtifactHandler: Handler = {
    artifactPaths: (p) => [path.join(p.outputDir, path.basename(p.source))],
    check: (olds, news) =>
        checkInputs<CheckedInputs>(PROMOTED_ARTIFACT_TOKEN, olds, news, {
            crossField: crossFieldProblems,
            async derive(i) {
                // The promised bytes are named by the recorded sha256, not by the file's current state:
                // a file altered after testing fails in create() instead of being silently promoted.
                // The file name is part of the artifact: two promotions of the same bytes under two
                // names are two files, and must not share a manifest in the store (its key is this hash).
                i.hashParts = {
                    artifact: i.expectedSha256,
                    file: sha256Hex(canonicalJson({ ...plainHashValues(PROMOTED_ARTIFACT_TOKEN, "file", i), source: path.basename(i.source) })),
                    signing: i.resign ? readCertificate(i.resign.certificate).sha256Fingerprint : "as-tested",
                    builder: BUILDER_VERSION,
                };
                i.inputHash = sha256Hex(canonicalJson(i.hashParts));
                return [];
            },
        }),

    async diff(_id, olds: Outputs, news: CheckedInputs) {
        const renamed = typeof news.source === "string" && !containsUnknown(news.source) && path.basename(olds.source) !== path.basename(news.source);
        const replaces = [...replacedFields(olds, news, ["outputDir"], ["outputDir"]), ...(renamed ? ["source"] : [])];
        return { changes: replaces.length > 0 || olds.inputHash !== news.inputHash || (olds.drift ?? []).length > 0, replaces };
    },

    async create(inputs: CheckedInputs) {
        const outs = await promote(inputs, new BuildLog(`PromotedArtifact ${path.basename(inputs.source)}`, "created", ["new"]));
        return { id: outs.path, outs };
    },

    async read(id, props: Outputs) {
        return { id, props: { ...props, drift: driftOf(props.path, props.sha256, await sha256FileIfExists(props.path)) } };
    },

    async update(_id, olds: Outputs, news: CheckedInputs) {
        const reasons = updateReasons(olds, news);
        const log = new BuildLog(`PromotedArtifact ${path.basename(news.source)}`, updateAction(reasons), reasons);
        return { outs: await promote(news, log) };
    },

    async delete(_id, props: Outputs) {
        fs.rmSync(props.path, { force: true });
    },
};

async function promote(checked: CheckedInputs, log: BuildLog): Promise<Outputs> {
    const fileName = path.basename(checked.source);
    return withScratch(checked.outputDir, "promote", async (work) => {
        const fromStore = artifactStoreFor(checked.fromStore);
        // From a store, the blob named by the tested digest is downloaded and hashed as it streams.
        const source = fromStore ? path.join(work, "tested", fileName) : checked.source;
        if (fromStore) {
            fs.mkdirSync(path.dirname(source));
            await log.step(`fetch tested artifact from ${fromStore.location}`, async () => fromStore.getBlob(checked.expectedSha256, await testedSize(fromStore, checked.expectedSha256), source));
        }
        const inputs = { ...checked, source };
        const actual = fromStore ? checked.expectedSha256 : await log.step("verify tested artifact", () => sha256File(inputs.source));
        if (actual !== inputs.expectedSha256) {
            throw new Error(
                `${inputs.source} is not the artifact that was tested: its sha256 is ${actual}, the earlier stack recorded ${inputs.expectedSha256}. ` +
                    `Promotion copies tested bytes only; rebuild and test it in the earlier environment first.`,
            );
        }
        const isExtension = inputs.kind !== "file";
        const before = isExtension ? await readPartitionTable(inputs.source) : undefined;
        const result = await stageThenMove(
            inputs.outputDir,
            async (staging) => {
                const out = path.join(staging, fileName);
                if (inputs.resign && isExtension) {
                    const image = await log.step("re-sign verity signature", () => resignSysextImage({ inFile: inputs.source, outFile: out, workDir: work, signing: inputs.resign! }));
                    return { rootHash: image.rootHash, changes: await changedRegions(inputs.source, out, before!) };
                }
                await log.step("copy", async () => {
                    fs.copyFileSync(inputs.source, out);
                    // the source was verified before the copy; the copy is what ships, so it is verified too
                    const copied = await sha256File(out);
                    if (copied !== inputs.expectedSha256) {
                        throw new Error(`the copy of ${inputs.source} has sha256 ${copied}, not the tested ${inputs.expectedSha256} (the file changed while it was copied, or the disk is failing); nothing was promoted`);
                    }
                });
                const rootHash = isExtension ? (await verifySysextImage(out, { workDir: work })).rootHash : null;
                return { rootHash, changes: [] as string[] };
            },
            0o755,
        );
        const target = path.join(inputs.outputDir, fileName);
        const toStore = artifactStoreFor(inputs.artifactStore);
        if (fromStore && toStore && !inputs.resign && toStore.sameServerAs(fromStore)) {
            // The tested bytes move between buckets on the server; the publish that follows finds them there.
            await log.step(`copy ${fromStore.location} -> ${toStore.location} (server-side)`, () => toStore.copyBlobFrom(fromStore, inputs.expectedSha256, fs.statSync(target).size));
        }
        return {
            ...checked,
            path: target,
            sha256: await sha256File(target),
            sourceSha256: actual,
            rootHash: result.rootHash,
            changes: result.changes,
            drift: [],
            lastBuild: log.report(),
        };
    });
}

/**
 * Names the partitions whose bytes differ between the tested and the promoted image. The images are
 * compared a chunk at a time: an extension can be as large as the OS it extends.
 */
export async function changedRegions(tested: string, promoted: string, table: Pick<Awaited<ReturnType<typeof readPartitionTable>>, "partitions">): Promise<string[]> {
    const changed: string[] = [];
    for (const [role, p] of Object.entries(table.partitions)) {
        if (!p) continue;
        if (!(await rangesEqual(tested, promoted, p))) changed.push(`${role} partition (${p.name})`);
    }
    return changed;
}

function crossFieldProblems(i: CheckedInputs): InputProblem[] {
    const problems: InputProblem[] = [];
    if (!i.fromStore && !fs.existsSync(i.source)) problems.push({ property: "source", reason: `${i.source} does not exist` });
    if (i.resign && i.kind === "file") problems.push({ property: "resign", reason: "only sysext and confext images can be re-signed here; set kind" });
    if (i.resign) problems.push(...signingPairProblems("resign", i.resign));
    return problems;
}

/** A tested artifact taken into this environment, checked and copied, never rebuilt. */
export class PromotedArtifact extends pulumi.dynamic.Resource {
    constructor(name: string, args: PromotedArtifactArgs, opts?: pulumi.CustomResourceOptions) {
        const outputs = registeredOutputs("PromotedArtifact");
        const restoreStackTraces = withoutPromiseStackTraces();
        try {
            super(packageProvider(PROMOTED_ARTIFACT_TOKEN), name, { ...outputs, ...args, artifactStore: artifactStoreInput(args.artifactStore) }, opts, "kairos", "PromotedArtifact");
        } finally {
            restoreStackTraces();
        }
    }
}

/** The outputs schema.json declares, as this class's fields (generated; see PromotedArtifactOutputFields). */
export interface PromotedArtifact extends contract.PromotedArtifactOutputFields {}

/** A new outputDir (or source file name) already holding the promoted file is a move (artifact-move.ts). */
export const promotedArtifactMoves: MoveSpec = {
    label: promotedArtifactLayout.label,
    placeFields: ["outputDir", "source"],
    root: promotedArtifactLayout.root,
    sameArtifact: sameInputHash,
    files: (olds, news) => [{ from: olds.path, to: promotedPath(olds, news), sha256: olds.sha256 }],
    moved: (olds, news) => ({ path: promotedPath(olds, news) }),
};

/** Where the promoted file goes; a source still unknown in a preview (another resource's output) is taken to keep its name. */
function promotedPath(olds: Record<string, any>, news: Record<string, any>): string {
    const source = typeof news.source === "string" && !containsUnknown(news.source) ? news.source : olds.source;
    return path.join(String(news.outputDir), path.basename(String(source)));
}

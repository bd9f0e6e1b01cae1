// SystemExtension: a signed systemd system/configuration extension image (NAME.sysext.raw) built
// from a directory, an OCI layout, a docker-save archive, a registry image or a Dockerfile (BuildKit).
// Content-addressed: check() hashes the inputs and the source's content digest, so preview knows what
// will rebuild.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { MoveSpec, sameInputHash } from "./artifact-move";
import { Handler } from "./artifact-contract";
import { checkInputs, replacedFields, signingPairProblems, sourceProblems } from "./check-kit";
import { packageProvider, withoutPromiseStackTraces } from "./dynamic-transport";
import { BuildLog, BuildReport, driftOf, updateAction, updateReasons } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, isInside, sha256File, sha256FileIfExists, sha256Hex } from "./toolkit/files";
import { readCertificate } from "./toolkit/keys/openssl";
import { stageThenMove, withScratch } from "./output/staging";
import { FilterViolationError } from "./toolkit/source/tree-writer";
import { DdiArchitecture, ExtensionKind, buildSysextImage, extensionReleasePath, resignSysextImage } from "./toolkit/sysext/ddi";
import { verifySysextImage } from "./toolkit/sysext/ddi-verify";
import { extensionReleaseNames } from "./toolkit/sysext/erofs-reader";
import { StoreIntegrityError } from "./store/manifest";
import { ensureExtensionRelease, foreignReleaseFiles, releaseNameMismatch, ReleaseFields } from "./toolkit/sysext/extension-release";
import { ExtensionSourceSpec, materializeSource, sourceDigest, sourceForms } from "./toolkit/source/extension-source";
import { usableAsIs } from "./toolkit/source/tree-as-is";
import { buildkitHost } from "./toolkit/source/dockerfile-build";
import type { SigningKeys } from "./signing-keys";
import type { ArtifactLayout } from "./store/stored-artifacts";
import { artifactStoreInput } from "./artifact-store-config";
import { plainHashValues, replaceFields } from "./validation/input-roles";
import * as contract from "./generated/contract";
import { registeredOutputs } from "./generated/contract";

export const SYSTEM_EXTENSION_TOKEN = "kairos:index:SystemExtension";
const BUILDER_VERSION = "system-extension/1";
/** The image root's mode. */
const TREE_ROOT_MODE = 0o755;
/** Extension images are public artifacts (the keys folder is the private one). */
const ARTIFACT_DIR_MODE = 0o755;

/** schema.json's inputs (provider/generated/contract.ts), and the shorthand. */
export interface SystemExtensionArgs extends contract.SystemExtensionArgs {
    /** Shorthand for `signing`: the db key and certificate of a SigningKeys resource. */
    signingKeys?: SigningKeys;
}

interface CheckedInputs {
    name: string;
    outputDir: string;
    source: ExtensionSourceSpec;
    kind: ExtensionKind;
    arch: "amd64" | "arm64";
    layers: "last" | "all";
    withOpt: boolean;
    dropDisallowedPaths: boolean;
    release?: ReleaseFields;
    compression: "none" | "lz4" | "lz4hc";
    signing?: { key: string; certificate: string };
    sourceDateEpoch: number;
    sourceDigest: string;
    signingCertificateFingerprint: string | null;
    /** The named parts the hashes are made of; preview shows which one changed. */
    hashParts: { source: string; options: string; signing: string; builder: string };
    contentHash: string;
    inputHash: string;
}

interface Outputs extends CheckedInputs {
    path: string;
    sha256: string;
    size: number;
    rootHash: string;
    certificateFingerprint: string | null;
    extensionRelease: string;
    droppedPaths: string[];
    drift: string[];
    lastBuild: BuildReport;
}

const DDI_ARCH: Record<CheckedInputs["arch"], DdiArchitecture> = { amd64: "x86-64", arm64: "arm64" };

export function imageFileName(name: string, kind: ExtensionKind): string {
    return `${name}.${kind}.raw`;
}

/** One image file in outputDir. */
export const systemExtensionLayout: ArtifactLayout = {
    root: (p) => p.outputDir,
    placement: () => "files",
    localFiles: (outs) => [outs.path],
    label: (p) => `SystemExtension ${p.name}`,
    id: (outs) => outs.path,
    expectedFiles: (i) => [imageFileName(i.name, i.kind)],
    accept: (i, staged, stored, work) => acceptFetched(i as CheckedInputs, staged, stored, work),
};

/**
 * A fetched image, checked as build() checks its own (verifySysextImage: GPT shape, hash tree, the
 * signature against this runner's `signing` certificate) plus the architecture and the
 * extension-release.NAME systemd looks for; the outputs are read from the image. Only
 * `extensionRelease` (the release file's text) and `droppedPaths` come from the manifest, validated.
 */
async function acceptFetched(i: CheckedInputs, staged: string, stored: Record<string, unknown>, work: string): Promise<Partial<Outputs>> {
    const fileName = imageFileName(i.name, i.kind);
    const file = path.join(staged, fileName);
    let image: Awaited<ReturnType<typeof verifySysextImage>>;
    try {
        image = await verifySysextImage(file, { workDir: work, certificate: i.signing?.certificate, requireSignature: !!i.signing });
    } catch (e) {
        throw new StoreIntegrityError(`the stored ${fileName} is not an image a build would accept: ${(e as Error).message}`);
    }
    const problems: string[] = [];
    if (image.arch !== DDI_ARCH[i.arch]) problems.push(`it is built for ${image.arch}, not ${DDI_ARCH[i.arch]}`);
    if (!i.signing && image.signed) problems.push("it carries a verity signature, but this resource has no signing key");
    if (i.signing && image.certificateFingerprint !== i.signingCertificateFingerprint) problems.push(`its signature names certificate ${image.certificateFingerprint}, not ${i.signingCertificateFingerprint}`);
    const carried = await extensionReleaseNames(file, image.partitions.root.offset, i.kind).catch(() => [] as string[]);
    if (!carried.includes(i.name)) problems.push(`it carries no extension-release.${i.name}`);
    const release = stored.extensionRelease;
    if (typeof release !== "string" || release.length > 65536 || !/^ID=/m.test(release)) problems.push("its manifest gives no extension-release text");
    const dropped = stored.droppedPaths;
    if (!Array.isArray(dropped) || dropped.length > 100000 || !dropped.every((d) => typeof d === "string")) problems.push("its manifest gives no droppedPaths list");
    if (problems.length > 0) throw new StoreIntegrityError(`the stored ${fileName} is not what a build of ${i.name} makes: ${problems.join("; ")}`);
    return {
        path: path.join(i.outputDir, fileName),
        sha256: await sha256File(file),
        size: fs.statSync(file).size,
        rootHash: image.rootHash,
        certificateFingerprint: image.certificateFingerprint ?? null,
        extensionRelease: release as string,
        droppedPaths: dropped as string[],
    };
}

export const systemExtensionHandler: Handler = {
    artifactPaths: (p) => [path.join(p.outputDir, p.name)],
    check: (olds, news) =>
        checkInputs<CheckedInputs>(SYSTEM_EXTENSION_TOKEN, olds, news, { crossField: crossFieldProblems, derive: deriveHashes }),

    async diff(_id, olds: Outputs, news: CheckedInputs) {
        const moved = replacedFields(olds, news, replaceFields<CheckedInputs>(SYSTEM_EXTENSION_TOKEN), ["outputDir"]);
        return {
            changes: moved.length > 0 || olds.inputHash !== news.inputHash || (olds.drift ?? []).length > 0,
            // A new file name is a new artifact: build it, then delete the old one.
            replaces: moved,
        };
    },

    async create(inputs: CheckedInputs) {
        const outs = await build(inputs, new BuildLog(`SystemExtension ${inputs.name}`, "created", ["new"]));
        return { id: outs.path, outs };
    },

    async read(id, props: Outputs) {
        return { id, props: { ...props, drift: driftOf(props.path, props.sha256, await sha256FileIfExists(props.path)) } };
    },

    async update(_id, olds: Outputs, news: CheckedInputs) {
        const onlySigningChanged =
            olds.contentHash === news.contentHash && !!news.signing && !!olds.certificateFingerprint && (await sha256FileIfExists(olds.path)) === olds.sha256;
        const reasons = updateReasons(olds, news);
        const label = `SystemExtension ${news.name}`;
        if (onlySigningChanged) return { outs: await resign(olds, news, new BuildLog(label, "re-signed", reasons)) };
        return { outs: await build(news, new BuildLog(label, updateAction(reasons), reasons)) };
    },

    async delete(_id, props: Outputs) {
        fs.rmSync(props.path, { force: true });
    },
};

/** The source's content digest and the content/input hashes preview compares. */
async function deriveHashes(inputs: CheckedInputs): Promise<InputProblem[]> {
    try {
        inputs.sourceDigest = await sourceDigest(inputs.source, { layers: inputs.layers, arch: inputs.arch });
    } catch (e) {
        return [{ property: "source", reason: `cannot read the source: ${(e as Error).message}` }];
    }
    inputs.signingCertificateFingerprint = inputs.signing ? readCertificate(inputs.signing.certificate).sha256Fingerprint : null;
    inputs.hashParts = {
        source: inputs.sourceDigest,
        options: sha256Hex(canonicalJson({
            ...plainHashValues(SYSTEM_EXTENSION_TOKEN, "options", inputs),
            source: sourceForms(inputs.source)[0], // where the source lives is not its content; sourceDigest is
        })),
        signing: inputs.signingCertificateFingerprint ?? "unsigned",
        builder: BUILDER_VERSION,
    };
    const { signing, ...content } = inputs.hashParts;
    inputs.contentHash = sha256Hex(canonicalJson(content));
    inputs.inputHash = sha256Hex(canonicalJson({ ...content, signing }));
    return [];
}

async function build(inputs: CheckedInputs, log: BuildLog): Promise<Outputs> {
    const fileName = imageFileName(inputs.name, inputs.kind);
    return withScratch(inputs.outputDir, inputs.name, async (work) => {
        const { tree, dropped } = await log.step("read source", () => sourceTree(inputs, work, log));
        const extensionRelease = ensureExtensionRelease(tree, inputs.name, inputs.kind, DDI_ARCH[inputs.arch], inputs.release ?? {});
        const image = await log.step("build and verify image", () => stageThenMove(inputs.outputDir, (staging) =>
            buildSysextImage({
                sourceDir: tree,
                outFile: path.join(staging, fileName),
                workDir: work,
                name: inputs.name,
                kind: inputs.kind,
                arch: DDI_ARCH[inputs.arch],
                compression: inputs.compression,
                sourceDateEpoch: inputs.sourceDateEpoch,
                signing: inputs.signing,
            }),
            ARTIFACT_DIR_MODE,
        ));
        return {
            ...inputs,
            path: path.join(inputs.outputDir, fileName),
            sha256: image.sha256,
            size: image.size,
            rootHash: image.rootHash,
            certificateFingerprint: image.certificateFingerprint ?? null,
            extensionRelease,
            droppedPaths: dropped,
            drift: [],
            lastBuild: log.report(),
        };
    });
}

/**
 * The tree the image is made from: a local folder as it is when a mirror of it would be the same tree
 * (tree-as-is.ts), else the source written out under `work` (a folder mirrored, an image extracted),
 * filtered to the allowed paths, its root 0755.
 */
async function sourceTree(inputs: CheckedInputs, work: string, log: BuildLog): Promise<{ tree: string; dropped: string[] }> {
    const allowed = allowedPaths(inputs);
    const dir = inputs.source.dir;
    const asIs = { rootMode: TREE_ROOT_MODE, allowedTop: allowed.map((p) => p.split("/")[0]), present: [extensionReleasePath(inputs.kind, inputs.name)] };
    // Never when the build's own folders (beside outputDir) would be inside the tree it reads.
    const ownFoldersInside = dir !== undefined && isInside(path.resolve(dir), path.dirname(path.resolve(inputs.outputDir)));
    if (dir && !ownFoldersInside && usableAsIs(dir, asIs)) return { tree: path.resolve(dir), dropped: [] };
    const tree = path.join(work, "tree");
    const { dropped, dockerfileBuild } = await materializeSource(inputs.source, inputs.sourceDigest, tree, {
        layers: inputs.layers,
        arch: inputs.arch,
        filter: { allow: allowed, onViolation: inputs.dropDisallowedPaths ? "drop" : "error" },
        workDir: work,
        sourceDateEpoch: inputs.sourceDateEpoch,
    }).catch((e) => {
        if (e instanceof FilterViolationError) {
            e.message = `source: ${e.message}\nA ${inputs.kind} holds only ${allowed.map((p) => `/${p}`).join(" and ")}: set dropDisallowedPaths: true to leave the rest out${inputs.withOpt ? "" : ", or withOpt: true to keep /opt"}`;
        }
        throw e;
    });
    fs.chmodSync(tree, TREE_ROOT_MODE); // the tree's mode becomes the image root's mode
    if (dockerfileBuild) {
        log.say(`BuildKit at ${buildkitHost(inputs.source.dockerfile!)}: ${dockerfileBuild.steps} steps, ${dockerfileBuild.cachedSteps} from its cache, ${dockerfileBuild.seconds.toFixed(1)} s`);
    }
    return { tree, dropped };
}

/** A new signing key only rewrites the verity-signature partition; the root hash stays. */
async function resign(olds: Outputs, news: CheckedInputs, log: BuildLog): Promise<Outputs> {
    return withScratch(news.outputDir, news.name, async (work) => {
        const image = await log.step("rewrite signature partition", () => stageThenMove(news.outputDir, (staging) =>
            resignSysextImage({ inFile: olds.path, outFile: path.join(staging, path.basename(olds.path)), workDir: work, signing: news.signing! }),
            ARTIFACT_DIR_MODE,
        ));
        return {
            ...olds, ...news, sha256: image.sha256, size: image.size, rootHash: image.rootHash,
            certificateFingerprint: image.certificateFingerprint ?? null, drift: [], lastBuild: log.report(),
        };
    });
}

function allowedPaths(inputs: CheckedInputs): string[] {
    if (inputs.kind === "confext") return ["etc"];
    return inputs.withOpt ? ["usr", "opt"] : ["usr"];
}

function crossFieldProblems(inputs: CheckedInputs): InputProblem[] {
    const problems: InputProblem[] = sourceProblems(inputs.source);
    if (inputs.source.dir && fs.existsSync(inputs.source.dir) && !fs.statSync(inputs.source.dir).isDirectory()) {
        problems.push({ property: "source.dir", reason: `${inputs.source.dir} is not a directory` });
    } else if (inputs.source.dir && fs.existsSync(inputs.source.dir)) {
        // An image source is only read at build time; a directory can be judged now, in preview.
        const others = foreignReleaseFiles(inputs.source.dir, inputs.name, inputs.kind);
        if (others.length > 0) problems.push({ property: "source.dir", reason: releaseNameMismatch(others, inputs.name, extensionReleasePath(inputs.kind, inputs.name)) });
    }
    if (inputs.kind === "confext" && inputs.withOpt) problems.push({ property: "withOpt", reason: "only a sysext can carry /opt; a confext holds /etc" });
    if (inputs.signing) problems.push(...signingPairProblems("signing", inputs.signing));
    return problems;
}

/** A signed systemd system extension (or confext) image; see schema.json for every input. */
export class SystemExtension extends pulumi.dynamic.Resource {
    constructor(name: string, args: SystemExtensionArgs, opts?: pulumi.CustomResourceOptions) {
        const { signingKeys, ...rest } = args;
        const signing = rest.signing ?? (signingKeys ? signingKeys.files.apply((f) => ({ key: f.db.key, certificate: f.db.pem })) : undefined);
        const outputs = registeredOutputs("SystemExtension");
        const restoreStackTraces = withoutPromiseStackTraces();
        try {
            super(packageProvider(SYSTEM_EXTENSION_TOKEN), name, { ...outputs, ...rest, signing, artifactStore: artifactStoreInput(rest.artifactStore) }, opts, "kairos", "SystemExtension");
        } finally {
            restoreStackTraces();
        }
    }
}

/** The outputs schema.json declares, as this class's fields (generated; see SystemExtensionOutputFields). */
export interface SystemExtension extends contract.SystemExtensionOutputFields {}

/** A new outputDir already holding the recorded image is a move (artifact-move.ts); a new name or kind is new content. */
export const systemExtensionMoves: MoveSpec = {
    label: systemExtensionLayout.label,
    placeFields: ["outputDir"],
    root: systemExtensionLayout.root,
    sameArtifact: sameInputHash,
    files: (olds, _news, at) => [{ from: olds.path, to: at(olds.path), sha256: olds.sha256 }],
    moved: (olds, _news, at) => ({ path: at(olds.path) }),
};

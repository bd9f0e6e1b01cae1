// Sources of an extension's files: a local directory, an OCI layout (dir or tar), a docker-save
// archive, a registry reference, or a Dockerfile BuildKit builds (dockerfile-build.ts). Two steps: a
// cheap digest that identifies the content (run in preview), and materialising the content as a tree
// under the allowed top-level paths.
import * as fs from "fs";
import * as path from "path";
import { openImage } from "./oci-image";
import { extractImage } from "./layer-extract";
import { FilterViolationError, LayerFilter } from "./tree-writer";
import { treeDigest } from "./tree-digest";
import { mirrorTree, newMirrorState } from "./tree-mirror";
import { pullToOciLayout, resolveManifestDigest } from "./registry";
import { buildDockerfile, dockerfileDigest, DockerfileBuildResult, DockerfileSpec } from "./dockerfile-build";

export interface ExtensionSourceSpec {
    dir?: string;
    ociLayout?: string;
    dockerArchive?: string;
    image?: string;
    insecureRegistry?: boolean;
    dockerfile?: DockerfileSpec;
}

export type SourceForm = "dir" | "ociLayout" | "dockerArchive" | "image" | "dockerfile";
export const SOURCE_FORMS: SourceForm[] = ["dir", "ociLayout", "dockerArchive", "image", "dockerfile"];

export interface MaterializeOptions {
    /** "last": only the image's last layer (auroraboot); "all": every layer, whiteouts applied. */
    layers: "last" | "all";
    /** Docker platform architecture: amd64 or arm64. */
    arch: string;
    /** Allowed top-level paths; none means the whole tree (an OS image). */
    filter?: LayerFilter;
    /**
     * Top-level folders of a directory source that are not copied at all (an OS tree's dev, proc, sys,
     * run, tmp: filled at boot, never part of an image; a debootstrap tree has device nodes in dev).
     */
    skipTop?: readonly string[];
    /** Scratch space (registry pulls, zstd layers, a Dockerfile's image). */
    workDir: string;
    /** Timestamps of a Dockerfile build (SOURCE_DATE_EPOCH). @default 0 */
    sourceDateEpoch?: number;
}

export function sourceForms(spec: ExtensionSourceSpec): SourceForm[] {
    return SOURCE_FORMS.filter((f) => spec[f] !== undefined);
}

/**
 * A digest naming the content the source would give: a tree digest for a directory, the image's
 * config digest for a local image, the manifest digest a registry tag points at right now.
 */
export async function sourceDigest(spec: ExtensionSourceSpec, o: { layers: "last" | "all"; arch: string }): Promise<string> {
    if (spec.dir) return `tree:${await treeDigest(spec.dir, { cache: true })}`;
    if (spec.image) return `manifest:${await resolveManifestDigest(spec.image, { insecure: spec.insecureRegistry })}`;
    if (spec.dockerfile) return `dockerfile:${await dockerfileDigest(spec.dockerfile, `linux/${o.arch}`)}`;
    const image = await openImage((spec.ociLayout ?? spec.dockerArchive)!, { arch: o.arch });
    // With `last`, only the top layer reaches the extension: a rebuilt base image changes nothing.
    return o.layers === "last" ? `layer:${image.layers[image.layers.length - 1]?.diffId ?? "none"}` : `image:${image.contentDigest}`;
}

export interface MaterializedSource {
    dropped: string[];
    /** What BuildKit did, for a Dockerfile source. */
    dockerfileBuild?: DockerfileBuildResult;
}

/** Writes the source's files into `tree` (missing or empty), keeping only the allowed top-level paths. */
export async function materializeSource(spec: ExtensionSourceSpec, digest: string, tree: string, o: MaterializeOptions): Promise<MaterializedSource> {
    if (spec.dir) return copyDirectory(spec.dir, tree, o.filter, o.skipTop);
    let imagePath = spec.ociLayout ?? spec.dockerArchive;
    let dockerfileBuild: DockerfileBuildResult | undefined;
    if (spec.dockerfile) {
        dockerfileBuild = await buildDockerfile(spec.dockerfile, { platform: `linux/${o.arch}`, sourceDateEpoch: o.sourceDateEpoch ?? 0, workDir: o.workDir });
        imagePath = dockerfileBuild.ociArchive;
    } else if (spec.image) {
        imagePath = path.join(o.workDir, "pulled");
        // Pull exactly the digest check() saw, so preview and build agree even if the tag moves meanwhile.
        await pullToOciLayout(spec.image, digest.replace(/^manifest:/, ""), imagePath, { insecure: spec.insecureRegistry, arch: o.arch });
    }
    const image = await openImage(imagePath!, { arch: o.arch });
    const summary = await extractImage(image, tree, { mode: o.layers, filter: o.filter, tmpDir: o.workDir });
    return { dropped: summary.dropped, dockerfileBuild };
}

export class SpecialFileError extends Error {
    readonly code = "SPECIAL_FILE";
}

const SHOWN_SPECIAL_FILES = 10;

/**
 * A local directory is the user's own tree: mirrored as it is (modes, symlinks; file data by hard link,
 * see tree-mirror.ts), filtered at the top. Device nodes, FIFOs and sockets cannot go into an image:
 * they are refused by name, all at once.
 */
function copyDirectory(dir: string, tree: string, filter?: LayerFilter, skipTop: readonly string[] = []): MaterializedSource {
    const allowed = new Set(filter ? filter.allow.map((p) => p.split("/")[0]) : fs.readdirSync(dir));
    const outside = fs.readdirSync(dir).filter((name) => !allowed.has(name)).sort();
    if (outside.length > 0 && filter?.onViolation === "error") throw new FilterViolationError(filter.allow, outside);
    fs.mkdirSync(tree, { recursive: true, mode: 0o755 });
    const state = newMirrorState();
    for (const name of fs.readdirSync(dir).filter((n) => allowed.has(n) && !skipTop.includes(n))) {
        mirrorTree(path.join(dir, name), path.join(tree, name), dir, state);
    }
    if (state.special.length > 0) throw specialFilesError(dir, state.special);
    return { dropped: outside };
}

/** The error for a local folder holding device nodes, FIFOs or sockets (`special`, by name). */
export function specialFilesError(dir: string, special: string[]): SpecialFileError {
    const shown = [...special].sort().slice(0, SHOWN_SPECIAL_FILES).join(", ");
    return new SpecialFileError(`${dir} holds ${special.length} device node(s), FIFO(s) or socket(s), which an image cannot carry: ${shown}${special.length > SHOWN_SPECIAL_FILES ? ", …" : ""}`);
}

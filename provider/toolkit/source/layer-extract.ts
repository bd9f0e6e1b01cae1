// Extracts image layers into a directory, treating every layer as hostile: no entry may write, link
// or delete outside the target. The target starts empty and only this code writes to it, so an
// in-memory index of what was extracted is the truth about the tree; it is what lets us refuse to
// write through a symlink planted by an earlier entry without trusting the disk.
import * as fs from "fs";
import * as path from "path";
import type { ImageLayer, OciImage } from "./oci-image";
import { BlobLocation, ImageFormatError } from "./image-store";
import { TarBlob, openLayerTar, openTarBlob } from "./layer-stream";
import { StreamSource, readTar } from "./tar-reader";
import { ExtractSummary, LayerFilter, TreeWriter } from "./tree-writer";

export interface ExtractOptions {
    /**
     * "last": only the last layer, as AuroraBoot builds a sysext (whiteouts in it are reported, not
     * applied, since there is nothing beneath them). "all": every layer in order with OCI whiteouts
     * applied, as a container runtime flattens an image.
     */
    mode: "last" | "all";
    filter?: LayerFilter;
    /** Scratch space for zstd layers. @default os.tmpdir() */
    tmpDir?: string;
}

/** A layer of an opened image, or the path of a tar file (plain, gzip or zstd; no digest to check). */
export type LayerInput = ImageLayer | string;

export function extractImage(image: OciImage, target: string, opts: ExtractOptions): Promise<ExtractSummary> {
    return extractLayers(image.layers, target, opts);
}

/** Extracts `layers` (base first) into `target`, which must be missing or empty. */
export async function extractLayers(layers: LayerInput[], target: string, opts: ExtractOptions): Promise<ExtractSummary> {
    await prepareTarget(target);
    const chosen = opts.mode === "last" ? layers.slice(-1) : layers;
    const writer = new TreeWriter(target, opts.mode === "all", opts.filter);
    for (const [i, layer] of chosen.entries()) {
        const name = typeof layer === "string" ? layer : layer.digest;
        const label = `layer ${i + 1}/${chosen.length} (${name})`;
        const tar = typeof layer === "string" ? await openTarBlob(await fileLocation(layer), {}, opts) : await openLayerTar(layer, opts);
        try {
            await applyTar(writer, tar, label);
        } finally {
            await tar.close();
        }
        writer.summary.layers.push(name);
    }
    return writer.finish();
}

async function applyTar(writer: TreeWriter, tar: TarBlob, label: string): Promise<void> {
    const src = new StreamSource(tar.stream);
    try {
        await writer.applyLayer(readTar(src), label);
        await src.drain();
        await tar.verify();
    } catch (e) {
        throw asCorruptLayer(e, label);
    }
}

/** zlib's errors (Z_DATA_ERROR, Z_BUF_ERROR, ...) surface through the tar stream; a corrupt layer is an image problem. */
function asCorruptLayer(e: unknown, label: string): unknown {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (typeof code !== "string" || !code.startsWith("Z_")) return e;
    return new ImageFormatError(`${label}: the layer's gzip stream is corrupt (${(e as Error).message})`);
}

async function fileLocation(file: string): Promise<BlobLocation> {
    return { path: file, offset: 0, size: (await fs.promises.stat(file)).size };
}

async function prepareTarget(target: string): Promise<void> {
    const stat = await fs.promises.lstat(target).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return undefined;
        throw e;
    });
    if (!stat) {
        await fs.promises.mkdir(target, { recursive: true, mode: 0o755 });
        return;
    }
    if (!stat.isDirectory()) throw new Error(`extraction target ${target} exists and is not a directory`);
    if ((await fs.promises.readdir(target)).length > 0) throw new Error(`extraction target ${target} must be empty`);
}

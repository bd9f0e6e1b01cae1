// The OS release container in AuroraBoot's `build-uki --output-type container` format (kairos-day2.md
// §4): a scratch image with ONE gzip layer holding the ESP files (EFI/BOOT/BOOTX64.EFI,
// EFI/kairos/norole.efi, loader/…), a Docker schema2 manifest, and a config that names only the
// platform. `kairos-agent upgrade --source ocifile:` takes the docker-save tarball; `oci:` takes the
// same image from a registry, pushed from the OCI layout written beside it.
//
// The config mirrors what go-containerregistry (AuroraBoot's library) writes for
// `mutate.AppendLayers(empty.Image, layer)` + `mutate.ConfigFile` setting architecture and os:
// v1.ConfigFile's JSON field order, `created` and the one history entry at Go's zero time
// ("0001-01-01T00:00:00Z": v1.Time is not omitted when zero), `rootfs.diff_ids` (the sha256 of the
// uncompressed tar, which the Docker config format requires) and an empty `config` object. The
// tarball names its members as gcr's tarball.Write does: config `sha256:<hex>`, layer `<hex>.tar.gz`,
// `manifest.json` last.
//
// Reproducible: sorted regular files with fixed headers (tar-writer.ts), gzip at a fixed level with
// mtime 0 and no file name (Node's zlib; the compressed bytes depend on the zlib Node bundles).
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Readable, Transform } from "stream";
import { pipeline } from "stream/promises";
import * as zlib from "zlib";
import { Descriptor, LAYOUT_TAG, LayoutManifest, blobPath, initLayout, writeBlob, writeManifest } from "./oci-layout";
import { TarEntry, normaliseEntries, tarStream } from "./tar-writer";
import { GoArch } from "./catalog";

export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
export const DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const GZIP_LEVEL = 9;
const GO_ZERO_TIME = "0001-01-01T00:00:00Z";

export interface OsContainerInput {
    files: TarEntry[];
    arch: GoArch;
    /** Where to write the docker-save tarball (replaced atomically). */
    tarball: string;
    /** Where to write the OCI layout (created; must be empty or absent). */
    layoutDir: string;
    /** RepoTags of the tarball's manifest.json (`docker load` tags the image with them); default none. */
    repoTags?: string[];
}

export interface OsContainer extends LayoutManifest {
    configDigest: string;
    layerDigest: string;
    /** sha256 of the uncompressed layer tar (the config's diff_id). */
    diffId: string;
    layerSize: number;
    /** sha256 of the docker-save tarball file. */
    tarballSha256: string;
}

export async function writeOsContainer(input: OsContainerInput): Promise<OsContainer> {
    const entries = normaliseEntries(input.files);
    if (fs.existsSync(input.layoutDir) && fs.readdirSync(input.layoutDir).length > 0) {
        throw new Error(`OCI layout folder ${input.layoutDir} is not empty; each OS container gets a folder of its own`);
    }
    initLayout(input.layoutDir);

    const layer = await writeGzipLayer(input.layoutDir, entries);
    const config = {
        architecture: input.arch,
        created: GO_ZERO_TIME,
        history: [{ created: GO_ZERO_TIME }],
        os: "linux",
        rootfs: { type: "layers", diff_ids: [layer.diffId] },
        config: {},
    };
    const configDescriptor = writeBlob(input.layoutDir, DOCKER_CONFIG, Buffer.from(JSON.stringify(config)));
    // Descriptor key order as gcr's v1.Descriptor: mediaType, size, digest.
    const manifest = {
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: gcrOrder(configDescriptor),
        layers: [gcrOrder(layer.descriptor)],
    };
    const written = writeManifest(input.layoutDir, manifest, DOCKER_MANIFEST, LAYOUT_TAG);

    const tarballSha256 = await writeDockerArchive(input.layoutDir, input.tarball, configDescriptor, layer.descriptor, input.repoTags ?? []);
    return {
        ...written,
        configDigest: configDescriptor.digest,
        layerDigest: layer.descriptor.digest,
        diffId: layer.diffId,
        layerSize: layer.descriptor.size,
        tarballSha256,
    };
}

/** Streams tar → gzip → blob file, hashing both sides on the way (no file is read twice). */
async function writeGzipLayer(layoutDir: string, entries: TarEntry[]): Promise<{ descriptor: Descriptor; diffId: string }> {
    const tarHash = createHash("sha256");
    const gzHash = createHash("sha256");
    let gzSize = 0;
    const partial = path.join(layoutDir, "blobs", "sha256", `.layer.${process.pid}.partial`);
    const tee = (hash: ReturnType<typeof createHash>, count?: (n: number) => void) =>
        new Transform({
            transform(chunk: Buffer, _enc, done) {
                hash.update(chunk);
                count?.(chunk.length);
                done(null, chunk);
            },
        });
    try {
        await pipeline(
            Readable.from(tarStream(entries)),
            tee(tarHash),
            // zlib writes mtime 0 and no name into the gzip header; the level is fixed so the bytes are.
            zlib.createGzip({ level: GZIP_LEVEL }),
            tee(gzHash, (n) => (gzSize += n)),
            fs.createWriteStream(partial),
        );
        const digest = `sha256:${gzHash.digest("hex")}`;
        fs.renameSync(partial, blobPath(layoutDir, digest));
        return { descriptor: { mediaType: DOCKER_LAYER_GZIP, digest, size: gzSize }, diffId: `sha256:${tarHash.digest("hex")}` };
    } finally {
        fs.rmSync(partial, { force: true });
    }
}

/** The docker-save archive (`docker load`, `kairos-agent upgrade --source ocifile:`), from the layout's blobs. */
async function writeDockerArchive(layoutDir: string, tarball: string, config: Descriptor, layer: Descriptor, repoTags: string[]): Promise<string> {
    const configName = config.digest; // "sha256:<hex>", as gcr names it
    const layerName = `${layer.digest.split(":")[1]}.tar.gz`;
    const manifestJson = path.join(layoutDir, ".manifest.json");
    fs.writeFileSync(manifestJson, JSON.stringify([{ Config: configName, RepoTags: repoTags, Layers: [layerName] }]));
    const partial = `${tarball}.${process.pid}.partial`;
    const hash = createHash("sha256");
    try {
        fs.mkdirSync(path.dirname(tarball), { recursive: true });
        await pipeline(
            Readable.from(
                tarStream([
                    { path: configName, source: blobPath(layoutDir, config.digest) },
                    { path: layerName, source: blobPath(layoutDir, layer.digest) },
                    { path: "manifest.json", source: manifestJson },
                ]),
            ),
            new Transform({
                transform(chunk: Buffer, _enc, done) {
                    hash.update(chunk);
                    done(null, chunk);
                },
            }),
            fs.createWriteStream(partial),
        );
        fs.renameSync(partial, tarball);
        return hash.digest("hex");
    } finally {
        fs.rmSync(partial, { force: true });
        fs.rmSync(manifestJson, { force: true });
    }
}

function gcrOrder(d: Descriptor): { mediaType: string; size: number; digest: string } {
    return { mediaType: d.mediaType, size: d.size, digest: d.digest };
}

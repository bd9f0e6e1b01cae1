// The OCI image layout on disk (image-spec `image-layout.md`): `oci-layout`, `index.json` and
// `blobs/sha256/<hex>`. The release artifacts are written here first and then pushed byte for byte
// (`oras cp --from-oci-layout`), so the digest a registry reports is the one computed here.
import * as fs from "fs";
import * as path from "path";
import { sha256File, sha256Hex } from "../files";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";
/** The OCI empty descriptor (image-spec `manifest.md`, "Guidance for an Empty Descriptor"): `{}`. */
export const EMPTY_JSON = Buffer.from("{}");
export const TITLE_ANNOTATION = "org.opencontainers.image.title";
const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
/** The tag each release layout carries in its index.json (`oras cp --from-oci-layout DIR:release`). */
export const LAYOUT_TAG = "release";

export interface Descriptor {
    mediaType: string;
    digest: string;
    size: number;
    annotations?: Record<string, string>;
    data?: string;
}

/** What a layout writer returns: the manifest, by digest and bytes, and where it sits. */
export interface LayoutManifest {
    manifestDigest: string;
    manifestBytes: Buffer;
    /** The tag inside the layout (`oras cp --from-oci-layout DIR:TAG`). */
    tag: string;
}

/** Creates an empty layout directory (the directory must not hold another layout). */
export function initLayout(dir: string): void {
    fs.mkdirSync(path.join(dir, "blobs", "sha256"), { recursive: true });
    fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
}

export function blobPath(dir: string, digest: string): string {
    const [algorithm, hex] = digest.split(":");
    return path.join(dir, "blobs", algorithm, hex);
}

/** Writes bytes as a blob; returns its descriptor (without annotations). */
export function writeBlob(dir: string, mediaType: string, bytes: Buffer): Descriptor {
    const digest = `sha256:${sha256Hex(bytes)}`;
    fs.writeFileSync(blobPath(dir, digest), bytes);
    return { mediaType, digest, size: bytes.length };
}

/**
 * Puts a file into the layout as a blob. The file is hashed once, streaming (a 100 MB extension is
 * never held in memory), then hard-linked, or copied when the layout is on another filesystem. A
 * hard link shares the inode: the caller's build outputs are replaced by rename, never rewritten in
 * place, so the blob cannot change under the layout.
 */
export async function linkBlob(dir: string, mediaType: string, file: string): Promise<Descriptor> {
    const digest = `sha256:${await sha256File(file)}`;
    const size = fs.statSync(file).size;
    const target = blobPath(dir, digest);
    fs.rmSync(target, { force: true });
    try {
        fs.linkSync(file, target);
    } catch {
        fs.copyFileSync(file, target);
    }
    return { mediaType, digest, size };
}

/** Serialises a manifest (the key order is the caller's object order), stores it, tags it in index.json. */
export function writeManifest(dir: string, manifest: object, mediaType: string, tag: string): LayoutManifest {
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const descriptor = writeBlob(dir, mediaType, manifestBytes);
    const index = {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{ ...descriptor, annotations: { [REF_NAME_ANNOTATION]: tag } }],
    };
    fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify(index));
    return { manifestDigest: descriptor.digest, manifestBytes, tag };
}

/** The empty config every artifact manifest points at; `data` inlines it, as `oras push` does. */
export function writeEmptyConfig(dir: string): Descriptor {
    return { ...writeBlob(dir, OCI_EMPTY, EMPTY_JSON), data: EMPTY_JSON.toString("base64") };
}

// Kairos' raw extension artifact (kairos PR #4486, `sdk/utils/image/rawextension.go`; reference
// kairos-day2.md §3) written as an OCI image layout: an image manifest with `artifactType`
// `application/vnd.kairos.{sysext,confext}.raw`, the empty config, and exactly one layer of that same
// media type whose `org.opencontainers.image.title` is the file name the node writes to disk.
//
// We write the layout ourselves rather than run `oras push` because oras stamps
// `org.opencontainers.image.created` on the manifest: the digest would change on every push. Here
// the manifest digest is a function of the file's bytes and name only, so a rebuilt, identical
// extension republishes as the same digest and catalogs do not churn.
import * as fs from "fs";
import * as path from "path";
import { Descriptor, LAYOUT_TAG, LayoutManifest, OCI_MANIFEST, TITLE_ANNOTATION, initLayout, linkBlob, writeBlob, writeEmptyConfig, writeManifest } from "./oci-layout";

export type ExtensionKind = "sysext" | "confext";

export const RAW_ARTIFACT_TYPES: Record<ExtensionKind, string> = {
    sysext: "application/vnd.kairos.sysext.raw",
    confext: "application/vnd.kairos.confext.raw",
};
export const CATALOG_ARTIFACT_TYPE = "application/vnd.pulumi-kairos.catalog.v1+json";
export const CATALOG_TITLE = "releases.json";

export { LAYOUT_TAG };

export interface ArtifactLayout extends LayoutManifest {
    layerDigest: string;
    /** Size of the layer (the file) in bytes. */
    size: number;
}

/**
 * Writes `layoutDir` (created; must be empty or absent) holding the raw artifact for `file`. The
 * layer title is `title` (default: the file's base name), which is what the node names the file.
 */
export async function writeRawExtensionLayout(layoutDir: string, file: string, kind: ExtensionKind, title = path.basename(file)): Promise<ArtifactLayout> {
    checkTitle(title);
    if (!title.endsWith(".raw")) {
        throw new Error(`raw extension title \`${title}\` must end in \`.raw\` (e.g. \`k3s-v1.31.${kind}.raw\`): systemd only merges images named *.raw`);
    }
    const artifactType = RAW_ARTIFACT_TYPES[kind];
    prepare(layoutDir);
    const layer = await linkBlob(layoutDir, artifactType, file);
    return writeSingleLayer(layoutDir, artifactType, layer, title);
}

/** The same shape for a JSON document (the release catalog): layer `application/json`, artifact type given. */
export function writeJsonArtifactLayout(layoutDir: string, json: Buffer, artifactType = CATALOG_ARTIFACT_TYPE, title = CATALOG_TITLE): ArtifactLayout {
    checkTitle(title);
    prepare(layoutDir);
    const layer = writeBlob(layoutDir, "application/json", json);
    return writeSingleLayer(layoutDir, artifactType, layer, title);
}

function writeSingleLayer(layoutDir: string, artifactType: string, layer: Descriptor, title: string): ArtifactLayout {
    // Key order as oras-go's ocispec.Manifest serialises it, so our manifests read like oras push's.
    const manifest = {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType,
        config: writeEmptyConfig(layoutDir),
        layers: [{ ...layer, annotations: { [TITLE_ANNOTATION]: title } }],
    };
    const written = writeManifest(layoutDir, manifest, OCI_MANIFEST, LAYOUT_TAG);
    return { ...written, layerDigest: layer.digest, size: layer.size };
}

function checkTitle(title: string): void {
    // The node joins the title to its extensions folder: a path here would write elsewhere.
    if (!title || title.includes("/") || title.includes("\\") || title === "." || title === ".." || title.startsWith(".")) {
        throw new Error(`artifact title \`${title}\` must be a plain file name (no slashes, not hidden)`);
    }
}

function prepare(layoutDir: string): void {
    if (fs.existsSync(layoutDir) && fs.readdirSync(layoutDir).length > 0) {
        throw new Error(`OCI layout folder ${layoutDir} is not empty; each release artifact gets a folder of its own`);
    }
    initLayout(layoutDir);
}

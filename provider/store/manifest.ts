// What the artifact store holds and is asked for: the artifactStore input, the manifests and their signed
// envelopes with their limits, the integrity error, and stored outputs relocated to another output root.
import * as path from "path";

/** The `artifactStore` input (schema.json, kairos:index:ArtifactStore). */
export interface ArtifactStoreSpec {
    bucket: string;
    /** Key prefix inside the bucket. @default "kairos/" */
    prefix?: string;
    /** An S3-compatible endpoint (SeaweedFS, MinIO, Ceph RGW …). @default AWS S3 */
    endpoint?: string;
    /** @default AWS_REGION, else "us-east-1" */
    region?: string;
    /** Bucket in the path rather than the host name. @default true when endpoint is set */
    forcePathStyle?: boolean;
    /** A damaged object: "fail" stops the update; "rebuild" builds instead and replaces it. @default "fail" */
    onCorrupt?: "fail" | "rebuild";
    /**
     * Who signs the manifests (required): a runner verifies every manifest with `certificate` before it
     * reads it; with `key` (a PEM file or a pkcs11: URI) it also publishes, without it it only fetches.
     */
    publisher?: { certificate: string; key?: string };
}

export const MANIFEST_FORMAT = "pulumi-kairos-artifacts/1";
export const ENVELOPE_FORMAT = "pulumi-kairos-signed-manifest/1";

/** A manifest lists files and small outputs: anything bigger is not one of ours. */
export const MAX_MANIFEST_BYTES = 1 << 20;

export const MAX_MANIFEST_ENTRIES = 10000;

/** The object a manifest key holds: the manifest's canonical JSON, signed by the publisher key. */
export interface SignedManifest {
    format: typeof ENVELOPE_FORMAT;
    /** base64 of the manifest's canonical JSON: the bytes the signature covers. */
    payload: string;
    /** base64 RSA PKCS#1 v1.5 / SHA-256 over the payload bytes. */
    signature: string;
    /** sha256 of the signing certificate's DER, to name a foreign signer in the refusal. */
    certificateSha256: string;
}

/** One file or folder of a stored artifact set, relative to the resource's output root. */
export interface ManifestEntry {
    path: string;
    /** Absent for a folder. */
    sha256?: string;
    /** Required for a file: checked against the object's Content-Length before and while downloading. */
    size?: number;
    mode: number;
}

export interface ArtifactManifest {
    format: typeof MANIFEST_FORMAT;
    resource: string;
    inputHash: string;
    entries: ManifestEntry[];
    /** The resource's outputs, with its output root written as OUTPUT_ROOT (see relocate). */
    outputs: Record<string, unknown>;
}

/** A stored object that is not the bytes its name or manifest promises. */
export class StoreIntegrityError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "StoreIntegrityError";
    }
}

/** The placeholder for a resource's output root in stored outputs: another runner's root differs. */
export const OUTPUT_ROOT = "${outputRoot}";

/**
 * `value` with every path under `from` rewritten under `to` (strings only; structure kept). A string
 * under `from` whose rest climbs out (`..`) or is absolute is refused: path.posix.join would resolve it
 * outside `to`.
 */
export function relocate<T>(value: T, from: string, to: string): T {
    const fromSlash = from.endsWith("/") ? from : `${from}/`;
    const move = (v: unknown): unknown => {
        if (typeof v === "string") {
            if (v === from) return to;
            if (v.startsWith(fromSlash)) {
                const rest = v.slice(fromSlash.length);
                if (rest.startsWith("/") || rest.split("/").includes("..")) throw new StoreIntegrityError(`${v} climbs out of ${from}`);
                return path.posix.join(to, rest);
            }
            return v;
        }
        if (Array.isArray(v)) return v.map(move);
        if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, move(x)]));
        return v;
    };
    return move(value) as T;
}

// A content-addressed artifact store in an S3-compatible bucket, so artifacts outlive the machine that
// built them: an ephemeral CI runner, another environment or another account takes what was built
// instead of building it again (as BuildKit's S3 cache and Bazel's remote cache do).
//
//   <prefix>sha256/<hex>                       one object per distinct file, named by its sha256
//   <prefix>manifests/<Resource>/<hash>.json   what a resource built for one input hash: its files
//                                              (relative paths and digests) and its outputs
//
// Every object is named by what it holds, so two runners that build the same inputs write the same
// bytes under the same name and end with one object. Every download is hashed while it streams and
// refused unless it is exactly the recorded bytes. Credentials come from the AWS SDK's usual chain
// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role): never from inputs or state.
import * as fs from "fs";
import * as path from "path";
import { createHash } from "crypto";
import { pipeline } from "stream/promises";
import { Transform } from "stream";
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

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
}

export const DEFAULT_PREFIX = "kairos/";
const MANIFEST_FORMAT = "pulumi-kairos-artifacts/1";

/** One file or folder of a stored artifact set, relative to the resource's output root. */
export interface ManifestEntry {
    path: string;
    /** Absent for a folder. */
    sha256?: string;
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

export class ArtifactStore {
    readonly spec: Required<Pick<ArtifactStoreSpec, "bucket" | "prefix" | "onCorrupt">> & ArtifactStoreSpec;
    private readonly client: S3Client;

    constructor(spec: ArtifactStoreSpec) {
        const prefix = spec.prefix === undefined ? DEFAULT_PREFIX : spec.prefix === "" || spec.prefix.endsWith("/") ? spec.prefix : `${spec.prefix}/`;
        this.spec = { ...spec, prefix, onCorrupt: spec.onCorrupt ?? "fail" };
        this.client = new S3Client({
            endpoint: spec.endpoint,
            region: spec.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
            forcePathStyle: spec.forcePathStyle ?? spec.endpoint !== undefined,
            // Integrity is the store's own sha256 over every byte; the SDK's default CRC headers are
            // not understood by every S3-compatible server.
            requestChecksumCalculation: "WHEN_REQUIRED",
            responseChecksumValidation: "WHEN_REQUIRED",
        });
    }

    /** Where the store lives, for messages and for telling two stores apart. */
    get location(): string {
        return `s3://${this.spec.bucket}/${this.spec.prefix}${this.spec.endpoint ? ` at ${this.spec.endpoint}` : ""}`;
    }

    blobKey(sha256: string): string {
        return `${this.spec.prefix}sha256/${sha256}`;
    }

    blobUri(sha256: string): string {
        return `s3://${this.spec.bucket}/${this.blobKey(sha256)}`;
    }

    manifestKey(resource: string, inputHash: string): string {
        return `${this.spec.prefix}manifests/${resource.split(":").pop()}/${inputHash}.json`;
    }

    manifestUri(resource: string, inputHash: string): string {
        return `s3://${this.spec.bucket}/${this.manifestKey(resource, inputHash)}`;
    }

    /** The stored size of a blob, or undefined when the store does not have it. */
    async blobSize(sha256: string): Promise<number | undefined> {
        try {
            const head = await this.call(`look up ${this.blobUri(sha256)}`, () => this.client.send(new HeadObjectCommand({ Bucket: this.spec.bucket, Key: this.blobKey(sha256) })));
            return head.ContentLength;
        } catch (e) {
            if (isNotFound(e)) return undefined;
            throw e;
        }
    }

    /**
     * Stores `file` under its digest unless an object of that size is there already (content
     * addressing makes an existing one the same bytes). An S3 upload appears whole or not at all, and
     * concurrent uploads of one digest carry the same bytes, so the store always ends with one object.
     */
    async putBlob(file: string, sha256: string, size: number): Promise<"uploaded" | "present"> {
        if ((await this.blobSize(sha256)) === size) return "present";
        await this.call(`upload ${file} to ${this.blobUri(sha256)}`, () =>
            new Upload({
                client: this.client,
                params: { Bucket: this.spec.bucket, Key: this.blobKey(sha256), Body: fs.createReadStream(file), ContentLength: size, Metadata: { sha256 } },
                partSize: 16 << 20,
                queueSize: 2,
            }).done(),
        );
        return "uploaded";
    }

    /**
     * Downloads a blob to `dest`, hashing while it streams; a damaged, truncated or swapped object is
     * a StoreIntegrityError and leaves no file at `dest`.
     */
    async getBlob(sha256: string, size: number | undefined, dest: string): Promise<void> {
        const uri = this.blobUri(sha256);
        const res = await this.call(`download ${uri}`, () => this.client.send(new GetObjectCommand({ Bucket: this.spec.bucket, Key: this.blobKey(sha256) })));
        const hash = createHash("sha256");
        let bytes = 0;
        const count = new Transform({
            transform(chunk: Buffer, _enc, done) {
                hash.update(chunk);
                bytes += chunk.length;
                done(null, chunk);
            },
        });
        try {
            await pipeline(res.Body as NodeJS.ReadableStream, count, fs.createWriteStream(dest, { mode: 0o644 }));
        } catch (e) {
            fs.rmSync(dest, { force: true });
            throw new Error(`download ${uri} failed: ${(e as Error).message}`);
        }
        const got = hash.digest("hex");
        if (got !== sha256 || (size !== undefined && bytes !== size)) {
            fs.rmSync(dest, { force: true });
            throw new StoreIntegrityError(
                `${uri} is damaged: it holds ${bytes} bytes with sha256 ${got}, but its name${size !== undefined ? ` and manifest promise ${size} bytes` : " promises"} with sha256 ${sha256}. ` +
                    `It was not used. Delete the object (or set artifactStore.onCorrupt: "rebuild" to build instead and replace it).`,
            );
        }
    }

    /** Replaces a damaged blob with the bytes of `file` (verified by the caller). */
    async replaceBlob(file: string, sha256: string, size: number): Promise<void> {
        await this.call(`upload ${file} to ${this.blobUri(sha256)}`, () =>
            new Upload({ client: this.client, params: { Bucket: this.spec.bucket, Key: this.blobKey(sha256), Body: fs.createReadStream(file), ContentLength: size, Metadata: { sha256 } }, partSize: 16 << 20, queueSize: 2 }).done(),
        );
    }

    /** Server-side copy of a blob from another store (another bucket on the same endpoint). */
    async copyBlobFrom(from: ArtifactStore, sha256: string, size: number): Promise<"copied" | "present"> {
        if ((await this.blobSize(sha256)) === size) return "present";
        await this.call(`copy ${from.blobUri(sha256)} to ${this.blobUri(sha256)}`, () =>
            this.client.send(new CopyObjectCommand({ Bucket: this.spec.bucket, Key: this.blobKey(sha256), CopySource: `${from.spec.bucket}/${from.blobKey(sha256)}`, MetadataDirective: "COPY" })),
        );
        const copied = await this.blobSize(sha256);
        if (copied !== size) throw new StoreIntegrityError(`the server-side copy of ${from.blobUri(sha256)} to ${this.blobUri(sha256)} has ${copied} bytes, not ${size}`);
        return "copied";
    }

    /** Whether a blob can be copied from `from` by the server: both stores on one endpoint. */
    sameServerAs(from: ArtifactStore): boolean {
        return (this.spec.endpoint ?? "aws") === (from.spec.endpoint ?? "aws");
    }

    async getManifest(resource: string, inputHash: string): Promise<ArtifactManifest | undefined> {
        const uri = this.manifestUri(resource, inputHash);
        let text: string;
        try {
            const res = await this.call(`read ${uri}`, () => this.client.send(new GetObjectCommand({ Bucket: this.spec.bucket, Key: this.manifestKey(resource, inputHash) })));
            text = await res.Body!.transformToString();
        } catch (e) {
            if (isNotFound(e)) return undefined;
            throw e;
        }
        let m: ArtifactManifest;
        try {
            m = JSON.parse(text);
        } catch {
            throw new StoreIntegrityError(`${uri} is not a manifest (not JSON); it was not used. Delete it (or set artifactStore.onCorrupt: "rebuild").`);
        }
        if (m.format !== MANIFEST_FORMAT || m.resource !== resource || m.inputHash !== inputHash || !Array.isArray(m.entries)) {
            throw new StoreIntegrityError(`${uri} does not describe ${resource} for input hash ${inputHash} (format ${m.format}, resource ${m.resource}, inputHash ${m.inputHash}); it was not used.`);
        }
        return m;
    }

    /**
     * Writes the manifest unless one exists: the first complete build of an input hash wins
     * (If-None-Match: *), and a later runner's identical build does not rewrite it.
     */
    async putManifest(m: Omit<ArtifactManifest, "format">, opts: { replace?: boolean } = {}): Promise<"written" | "present"> {
        const body = `${JSON.stringify({ format: MANIFEST_FORMAT, ...m }, null, 1)}\n`;
        try {
            await this.call(`write ${this.manifestUri(m.resource, m.inputHash)}`, () =>
                this.client.send(new PutObjectCommand({
                    Bucket: this.spec.bucket, Key: this.manifestKey(m.resource, m.inputHash), Body: body, ContentType: "application/json",
                    IfNoneMatch: opts.replace ? undefined : "*",
                })),
            );
            return "written";
        } catch (e) {
            if (isPreconditionFailed(e)) return "present";
            throw e;
        }
    }

    /** Runs one S3 call; a failure names the operation, the store and the server's answer. */
    private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
        try {
            return await fn();
        } catch (e) {
            if (isNotFound(e) || isPreconditionFailed(e)) throw e;
            const status = (e as S3ServiceException).$metadata?.httpStatusCode;
            const code = (e as S3ServiceException).name;
            const hint =
                status === 403 || code === "InvalidAccessKeyId" || code === "SignatureDoesNotMatch" ? ": check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) for this store"
                : code === "CredentialsProviderError" ? ": set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the provider processes"
                : code === "NoSuchBucket" ? ": create the bucket first"
                : "";
            throw new Error(`artifact store ${this.location}: cannot ${what}: ${code}${status ? ` (HTTP ${status})` : ""} ${(e as Error).message}${hint}`);
        }
    }
}

function isNotFound(e: unknown): boolean {
    const err = e as S3ServiceException;
    return err?.name === "NoSuchKey" || err?.name === "NotFound" || err?.$metadata?.httpStatusCode === 404 && err?.name !== "NoSuchBucket";
}

function isPreconditionFailed(e: unknown): boolean {
    const err = e as S3ServiceException;
    return err?.name === "PreconditionFailed" || err?.$metadata?.httpStatusCode === 412;
}

/** A store per distinct spec in this process (S3 clients keep connections). */
const stores = new Map<string, ArtifactStore>();

export function artifactStoreFor(spec: ArtifactStoreSpec | undefined): ArtifactStore | undefined {
    if (!spec || !spec.bucket) return undefined;
    const key = JSON.stringify([spec.bucket, spec.prefix, spec.endpoint, spec.region, spec.forcePathStyle, spec.onCorrupt]);
    let store = stores.get(key);
    if (!store) stores.set(key, (store = new ArtifactStore(spec)));
    return store;
}

/** The placeholder for a resource's output root in stored outputs: another runner's root differs. */
export const OUTPUT_ROOT = "${outputRoot}";

/** `value` with every path under `from` rewritten under `to` (strings only; structure kept). */
export function relocate<T>(value: T, from: string, to: string): T {
    const fromSlash = from.endsWith("/") ? from : `${from}/`;
    const move = (v: unknown): unknown => {
        if (typeof v === "string") {
            if (v === from) return to;
            if (v.startsWith(fromSlash)) return path.posix.join(to, v.slice(fromSlash.length));
            return v;
        }
        if (Array.isArray(v)) return v.map(move);
        if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, move(x)]));
        return v;
    };
    return move(value) as T;
}

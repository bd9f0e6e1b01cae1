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
// refused unless it is exactly the recorded bytes. Every manifest is a signed envelope: anyone who can
// write the bucket can delete or withhold, but only the publisher key's holder can make a manifest a
// runner will read (and each resource still verifies the artifacts a manifest names as it verifies a
// build's). Credentials come from the AWS SDK's usual chain
// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role): never from inputs or state.
import * as fs from "fs";
import { X509Certificate, createHash, verify as rsaVerify } from "crypto";
import { pipeline } from "stream/promises";
import { Transform } from "stream";
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { canonicalJson, sha256Hex } from "../toolkit/files";
import { openSigner } from "../toolkit/keys/signer";
import { ArtifactManifest, ArtifactStoreSpec, ENVELOPE_FORMAT, MANIFEST_FORMAT, MAX_MANIFEST_BYTES, MAX_MANIFEST_ENTRIES, SignedManifest, StoreIntegrityError } from "./manifest";

export const DEFAULT_PREFIX = "kairos/";

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
     * The size to download a blob by, when only its digest is recorded: the object's length (undefined
     * when the store lacks it), refused over `maxBytes`. A HEAD's length is the server's word, not a cap:
     * without one a bucket writer could fill the disk before the digest check refuses the bytes.
     */
    async blobSizeAtMost(sha256: string, maxBytes: number, what: string): Promise<number | undefined> {
        const size = await this.blobSize(sha256);
        if (size !== undefined && size > maxBytes) {
            throw new StoreIntegrityError(`${this.blobUri(sha256)} is ${size} bytes, over the ${maxBytes}-byte limit for ${what}; it was not used`);
        }
        return size;
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
     * Downloads a blob of `size` bytes to `dest`, hashing while it streams: an object whose length is
     * not `size` is refused before a byte is written, one that grows past it is cut off, and a damaged,
     * truncated or swapped object is a StoreIntegrityError; none leaves a file at `dest`.
     */
    async getBlob(sha256: string, size: number, dest: string): Promise<void> {
        const uri = this.blobUri(sha256);
        const res = await this.call(`download ${uri}`, () => this.client.send(new GetObjectCommand({ Bucket: this.spec.bucket, Key: this.blobKey(sha256) })));
        const damaged = (what: string) => new StoreIntegrityError(
            `${uri} is damaged: ${what}, but its name and manifest promise ${size} bytes with sha256 ${sha256}. ` +
                `It was not used. Delete the object (or set artifactStore.onCorrupt: "rebuild" to build instead and replace it).`,
        );
        if (res.ContentLength !== undefined && res.ContentLength !== size) {
            (res.Body as NodeJS.ReadableStream & { destroy?: () => void })?.destroy?.();
            throw damaged(`the server holds ${res.ContentLength} bytes`);
        }
        const hash = createHash("sha256");
        let bytes = 0;
        const count = new Transform({
            transform(chunk: Buffer, _enc, done) {
                bytes += chunk.length;
                if (bytes > size) return done(damaged(`it streams more than ${size} bytes`));
                hash.update(chunk);
                done(null, chunk);
            },
        });
        try {
            await pipeline(res.Body as NodeJS.ReadableStream, count, fs.createWriteStream(dest, { mode: 0o644 }));
        } catch (e) {
            fs.rmSync(dest, { force: true });
            if (e instanceof StoreIntegrityError) throw e;
            throw new Error(`download ${uri} failed: ${(e as Error).message}`);
        }
        const got = hash.digest("hex");
        if (got !== sha256 || bytes !== size) {
            fs.rmSync(dest, { force: true });
            throw damaged(`it holds ${bytes} bytes with sha256 ${got}`);
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

    /**
     * The manifest for `resource` at `inputHash`: the signed envelope is read (at most
     * MAX_MANIFEST_BYTES), its signature checked against the publisher certificate, and only then is
     * the payload parsed. Unsigned, foreign-signed, oversized or malformed: StoreIntegrityError.
     */
    async getManifest(resource: string, inputHash: string): Promise<ArtifactManifest | undefined> {
        const uri = this.manifestUri(resource, inputHash);
        const refuse = (why: string) => new StoreIntegrityError(`${uri} ${why}; it was not used. Delete it (or set artifactStore.onCorrupt: "rebuild" to build instead and overwrite it).`);
        let text: string;
        try {
            const res = await this.call(`read ${uri}`, () => this.client.send(new GetObjectCommand({ Bucket: this.spec.bucket, Key: this.manifestKey(resource, inputHash) })));
            if ((res.ContentLength ?? 0) > MAX_MANIFEST_BYTES) {
                (res.Body as NodeJS.ReadableStream & { destroy?: () => void })?.destroy?.();
                throw refuse(`is ${res.ContentLength} bytes, over the ${MAX_MANIFEST_BYTES}-byte manifest limit`);
            }
            text = await readCapped(res.Body as NodeJS.ReadableStream, MAX_MANIFEST_BYTES, () => refuse(`streams more than ${MAX_MANIFEST_BYTES} bytes, the manifest limit`));
        } catch (e) {
            if (isNotFound(e)) return undefined;
            throw e;
        }
        const payload = this.verifiedPayload(text, refuse);
        let m: ArtifactManifest;
        try {
            m = JSON.parse(payload.toString("utf8"));
        } catch {
            throw refuse("carries a signed payload that is not JSON");
        }
        if (!m || m.format !== MANIFEST_FORMAT || m.resource !== resource || m.inputHash !== inputHash || !Array.isArray(m.entries) || !m.outputs || typeof m.outputs !== "object") {
            throw refuse(`does not describe ${resource} for input hash ${inputHash} (format ${m?.format}, resource ${m?.resource}, inputHash ${m?.inputHash})`);
        }
        if (m.entries.length > MAX_MANIFEST_ENTRIES) throw refuse(`lists ${m.entries.length} entries, over the limit of ${MAX_MANIFEST_ENTRIES}`);
        return m;
    }

    /** The payload bytes of a signed envelope, once its signature verifies against the publisher certificate. */
    private verifiedPayload(text: string, refuse: (why: string) => StoreIntegrityError): Buffer {
        const publisher = this.publisherCertificate();
        let env: Partial<SignedManifest>;
        try {
            env = JSON.parse(text);
        } catch {
            throw refuse("is not a signed manifest (not JSON)");
        }
        if (!env || env.format !== ENVELOPE_FORMAT || typeof env.payload !== "string" || typeof env.signature !== "string") {
            throw refuse(`is not a signed manifest (no ${ENVELOPE_FORMAT} envelope with payload and signature): unsigned manifests are never read`);
        }
        const payload = Buffer.from(env.payload, "base64");
        let ok = false;
        try {
            ok = rsaVerify("sha256", payload, publisher.cert.publicKey, Buffer.from(env.signature, "base64"));
        } catch {
            ok = false;
        }
        if (!ok) {
            const who = env.certificateSha256 && env.certificateSha256 !== publisher.sha256 ? `is signed by another certificate (sha256 ${env.certificateSha256})` : "has a signature that does not verify";
            throw refuse(`${who}, not by the publisher certificate ${this.spec.publisher!.certificate} (sha256 ${publisher.sha256})`);
        }
        return payload;
    }

    private publisherCertificate(): { cert: X509Certificate; sha256: string } {
        const file = this.spec.publisher?.certificate;
        if (!file) throw new Error(`artifact store ${this.location}: artifactStore.publisher is not set; give the certificate whose key signs the manifests (the project's db certificate, say)`);
        const cert = new X509Certificate(fs.readFileSync(file));
        return { cert, sha256: sha256Hex(cert.raw) };
    }

    /** Whether this runner may publish: it holds the publisher's key. */
    get canPublish(): boolean {
        return !!this.spec.publisher?.key;
    }

    /**
     * Signs and writes the manifest unless a valid one exists: the first complete build of an input hash
     * wins (If-None-Match: *), and a later runner's identical build does not rewrite it. An object already
     * at the key that does not verify (junk planted by anyone who can write the bucket, a damaged or
     * foreign-signed manifest) is overwritten: otherwise a bucket writer could block the key for good.
     * `replace` overwrites unconditionally (a manifest found damaged while fetching).
     */
    async putManifest(m: Omit<ArtifactManifest, "format">, opts: { replace?: boolean } = {}): Promise<"written" | "present" | "replaced"> {
        const key = this.spec.publisher?.key;
        if (!key) throw new Error(`artifact store ${this.location}: artifactStore.publisher has no key; this runner only fetches`);
        const payload = Buffer.from(canonicalJson({ format: MANIFEST_FORMAT, ...m }), "utf8");
        const envelope: SignedManifest = {
            format: ENVELOPE_FORMAT,
            payload: payload.toString("base64"),
            signature: (await openSigner(key).sign("sha256", payload)).toString("base64"),
            certificateSha256: this.publisherCertificate().sha256,
        };
        const body = `${JSON.stringify(envelope, null, 1)}\n`;
        if (body.length > MAX_MANIFEST_BYTES) throw new Error(`the manifest for ${m.resource} ${m.inputHash} would be ${body.length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
        const write = (ifNoneMatch: "*" | undefined) => this.call(`write ${this.manifestUri(m.resource, m.inputHash)}`, () =>
            this.client.send(new PutObjectCommand({
                Bucket: this.spec.bucket, Key: this.manifestKey(m.resource, m.inputHash), Body: body, ContentType: "application/json",
                IfNoneMatch: ifNoneMatch,
            })),
        );
        try {
            await write(opts.replace ? undefined : "*");
            return "written";
        } catch (e) {
            if (!isPreconditionFailed(e)) throw e;
        }
        // Something is there: it counts only if it is a manifest this runner would read.
        try {
            if (await this.getManifest(m.resource, m.inputHash)) return "present";
        } catch (e) {
            if (!(e instanceof StoreIntegrityError)) throw e;
        }
        await write(undefined);
        return "replaced";
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

/** The stream's text, refused (by `tooBig`) once it passes `cap` bytes: never read whole into memory first. */
async function readCapped(body: NodeJS.ReadableStream, cap: number, tooBig: () => Error): Promise<string> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > cap) {
            (body as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
            throw tooBig();
        }
        chunks.push(Buffer.from(chunk));
    }
    return Buffer.concat(chunks).toString("utf8");
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
    const key = JSON.stringify([spec.bucket, spec.prefix, spec.endpoint, spec.region, spec.forcePathStyle, spec.onCorrupt, spec.publisher?.certificate ?? null, spec.publisher?.key ?? null]);
    let store = stores.get(key);
    if (!store) stores.set(key, (store = new ArtifactStore(spec)));
    return store;
}

// S3Release: publishes a release's artifacts (boot media, extensions) to S3 under
// `releases/<version>/`, with a manifest.json beside them that records each artifact's sha256 and
// input hash and the Secure Boot certificate fingerprints, so a consumer can check what it fetched
// and a later stack can promote exactly these bytes.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { SigningKeys } from "../provider/signing-keys";
import type { SystemExtension } from "../provider/system-extension";
import { canonicalJson } from "../provider/toolkit/files";
import { InputProblem, SHA256_HEX_PATTERN, isKnown, throwIfProblems } from "./construct-kit";

export const MANIFEST_FILE = "manifest.json";
export const MANIFEST_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Pure parts (unit-tested).

const CONTENT_TYPES: Array<[RegExp, string]> = [
    [/\.iso$/, "application/x-iso9660-image"],
    [/\.efi$/, "application/efi"],
    [/\.json$/, "application/json"],
    [/\.(pem|crt)$/, "application/x-pem-file"],
    [/\.tar$/, "application/x-tar"],
    [/\.(tar\.gz|tgz)$/, "application/gzip"],
    [/\.(txt|conf)$/, "text/plain; charset=utf-8"],
];

/** The Content-Type an artifact is served with, from its name; raw images and key material are octet streams. */
export function contentTypeFor(fileName: string): string {
    return CONTENT_TYPES.find(([re]) => re.test(fileName))?.[1] ?? "application/octet-stream";
}

export interface ManifestArtifact {
    name: string;
    key: string;
    sha256: string;
    contentType: string;
    /** @default not recorded */
    size?: number;
    /** @default not recorded */
    inputHash?: string;
}

export interface ReleaseManifestInput {
    version: string;
    artifacts: ManifestArtifact[];
    /** Role (e.g. PK, KEK, db) → SHA-256 of the DER certificate, lowercase hex. @default {} */
    certificateFingerprints?: Record<string, string>;
    /** Anything else the release was built from: name → hash. @default {} */
    inputHashes?: Record<string, string>;
}

/**
 * The manifest's exact bytes: canonical JSON (keys sorted at every level, no whitespace),
 * artifacts sorted by name, absent optional fields left out. Throws on a malformed digest.
 */
export function releaseManifest(m: ReleaseManifestInput): string {
    const bad = m.artifacts.filter((a) => !SHA256_HEX_PATTERN.test(a.sha256)).map((a) => `${a.name} (${JSON.stringify(a.sha256)})`);
    const badFingerprints = Object.entries(m.certificateFingerprints ?? {}).filter(([, f]) => !SHA256_HEX_PATTERN.test(f)).map(([r, f]) => `${r} (${JSON.stringify(f)})`);
    if (bad.length > 0 || badFingerprints.length > 0) {
        throw new Error(
            `release ${m.version}: sha256 values must be 64 lowercase hex digits; bad: ${[...bad, ...badFingerprints.map((f) => `certificate ${f}`)].join(", ")}`,
        );
    }
    const artifacts = [...m.artifacts]
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .map((a) => Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)));
    return canonicalJson({
        manifestVersion: MANIFEST_VERSION,
        version: m.version,
        artifacts,
        certificateFingerprints: m.certificateFingerprints ?? {},
        inputHashes: m.inputHashes ?? {},
    });
}

// ---------------------------------------------------------------------------------------------
// The component.

export interface ReleaseArtifact {
    /** File name in the release; the object key is `<keyPrefix><name>`. */
    name: string;
    /** Local file to upload. */
    path: pulumi.Input<string>;
    /** SHA-256 of the file, lowercase hex (e.g. SystemExtension.sha256). */
    sha256: pulumi.Input<string>;
    /** Size in bytes, recorded in the manifest. @default not recorded */
    size?: pulumi.Input<number>;
    /** @default from the name's suffix: .iso application/x-iso9660-image, .raw application/octet-stream, … */
    contentType?: string;
    /** Input hash of the resource that built it (e.g. SystemExtension.inputHash). @default not recorded */
    inputHash?: pulumi.Input<string>;
}

/** A SystemExtension as a release artifact, published as `name` (e.g. "k3s.sysext.raw"). */
export function extensionArtifact(name: string, extension: SystemExtension): ReleaseArtifact {
    return { name, path: extension.path, sha256: extension.sha256, size: extension.size, inputHash: extension.inputHash };
}

export interface S3ReleaseArgs {
    /** Release version; part of every key. Letters, digits, '.', '_', '+', '-'. */
    version: string;
    /** Files to publish. */
    artifacts: ReleaseArtifact[];
    /** Name of an existing bucket. @default a new bucket, `<name>-bucket` */
    bucket?: pulumi.Input<string>;
    /** Let `pulumi destroy` delete a created bucket that still holds objects. @default false */
    forceDestroy?: boolean;
    /** Prefix of every key; ends with '/'. @default `releases/<version>/` */
    keyPrefix?: string;
    /** Record this key set's PK, KEK and db certificate fingerprints. @default none */
    signingKeys?: SigningKeys;
    /** More certificate fingerprints: role → SHA-256 hex. @default {} */
    certificateFingerprints?: Record<string, pulumi.Input<string>>;
    /** More input hashes to record: name → hash. @default {} */
    inputHashes?: Record<string, pulumi.Input<string>>;
}

const TYPE = "kairos:index:S3Release";
const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$/;

/** Release artifacts and their manifest in S3. */
export class S3Release extends pulumi.ComponentResource {
    readonly bucketName: pulumi.Output<string>;
    readonly keyPrefix: string;
    readonly manifestKey: string;
    /** The manifest's exact content. */
    readonly manifest: pulumi.Output<string>;
    /** Artifact name → object key. */
    readonly objectKeys: Record<string, string>;
    readonly createdBucket?: aws.s3.Bucket;
    readonly objects: Record<string, aws.s3.BucketObjectv2>;
    readonly manifestObject: aws.s3.BucketObjectv2;

    constructor(name: string, args: S3ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
        // Checked before the component registers, so bad arguments leave nothing half-made.
        throwIfProblems("S3Release", name, validate(args));
        super(TYPE, name, {}, opts);

        this.keyPrefix = args.keyPrefix ?? `releases/${args.version}/`;
        this.manifestKey = `${this.keyPrefix}${MANIFEST_FILE}`;
        if (args.bucket === undefined) {
            this.createdBucket = new aws.s3.Bucket(`${name}-bucket`, { forceDestroy: args.forceDestroy ?? false }, { parent: this });
        }
        this.bucketName = this.createdBucket ? this.createdBucket.bucket : pulumi.output(args.bucket!);

        this.objects = {};
        this.objectKeys = {};
        for (const a of args.artifacts) {
            const key = `${this.keyPrefix}${a.name}`;
            this.objectKeys[a.name] = key;
            this.objects[a.name] = new aws.s3.BucketObjectv2(`${name}-artifact-${a.name}`, {
                bucket: this.bucketName,
                key,
                source: pulumi.output(a.path).apply((p) => new pulumi.asset.FileAsset(p)),
                contentType: a.contentType ?? contentTypeFor(a.name),
                // The content digest decides when to upload again, and travels with the object.
                sourceHash: a.sha256,
                metadata: { sha256: a.sha256 },
            }, { parent: this });
        }

        const fingerprints: Record<string, pulumi.Input<string>> = { ...args.certificateFingerprints };
        const fromKeys = args.signingKeys
            ? args.signingKeys.certificates.apply((c) => ({ PK: c.PK.sha256Fingerprint, KEK: c.KEK.sha256Fingerprint, db: c.db.sha256Fingerprint }))
            : pulumi.output({} as Record<string, string>);
        const resolvedArtifacts = pulumi.all(
            args.artifacts.map((a) => pulumi.all([a.sha256, a.size, a.inputHash]).apply(([sha256, size, inputHash]) => ({ sha256, size, inputHash }))),
        );
        this.manifest = pulumi
            .all([resolvedArtifacts, fromKeys, pulumi.all(fingerprints), pulumi.all(args.inputHashes ?? {})])
            .apply(([artifacts, keyFingerprints, moreFingerprints, inputHashes]) =>
                releaseManifest({
                    version: args.version,
                    artifacts: args.artifacts.map((a, i) => ({
                        name: a.name,
                        key: this.objectKeys[a.name],
                        sha256: artifacts[i].sha256,
                        contentType: a.contentType ?? contentTypeFor(a.name),
                        size: artifacts[i].size,
                        inputHash: artifacts[i].inputHash,
                    })),
                    certificateFingerprints: { ...keyFingerprints, ...moreFingerprints },
                    inputHashes,
                }),
            );
        this.manifestObject = new aws.s3.BucketObjectv2(`${name}-manifest`, {
            bucket: this.bucketName,
            key: this.manifestKey,
            content: this.manifest,
            contentType: "application/json",
        }, { parent: this, dependsOn: Object.values(this.objects) });

        this.registerOutputs({ bucketName: this.bucketName, keyPrefix: this.keyPrefix, manifestKey: this.manifestKey, manifest: this.manifest, objectKeys: this.objectKeys });
    }
}

function validate(args: S3ReleaseArgs): InputProblem[] {
    const problems: InputProblem[] = [];
    const add = (property: string, reason: string) => problems.push({ property, reason });
    if (typeof args.version !== "string" || !VERSION_PATTERN.test(args.version)) {
        add("version", `${JSON.stringify(args.version)} must be letters, digits, '.', '_', '+' or '-', starting with a letter or digit (it becomes part of every key)`);
    }
    if (!Array.isArray(args.artifacts) || args.artifacts.length === 0) add("artifacts", "must list at least one file to publish");
    const seen = new Map<string, number>();
    (Array.isArray(args.artifacts) ? args.artifacts : []).forEach((a, i) => {
        const at = `artifacts[${i}]`;
        if (typeof a.name !== "string" || !FILE_NAME_PATTERN.test(a.name)) add(`${at}.name`, `${JSON.stringify(a.name)} must be a file name: letters, digits, '.', '_', '+' or '-'`);
        else if (a.name === MANIFEST_FILE) add(`${at}.name`, `"${MANIFEST_FILE}" is the release manifest's own name; rename the artifact`);
        else if (seen.has(a.name)) add(`${at}.name`, `"${a.name}" is already the name of artifacts[${seen.get(a.name)}]`);
        else seen.set(a.name, i);
        if (a.path === undefined || (isKnown(a.path) && a.path.trim() === "")) add(`${at}.path`, "must name the file to upload");
        if (a.sha256 === undefined) add(`${at}.sha256`, "is required: the file's SHA-256, e.g. SystemExtension.sha256");
        else if (isKnown(a.sha256) && !SHA256_HEX_PATTERN.test(a.sha256)) add(`${at}.sha256`, `${JSON.stringify(a.sha256)} is not 64 lowercase hex digits`);
    });
    if (args.keyPrefix !== undefined && !/^[^/].*\/$/.test(args.keyPrefix)) add("keyPrefix", `${JSON.stringify(args.keyPrefix)} must not start with '/' and must end with '/'`);
    if (args.bucket !== undefined && args.forceDestroy !== undefined) add("forceDestroy", "only applies to a bucket this component creates; bucket names an existing one");
    for (const [role, f] of Object.entries(args.certificateFingerprints ?? {})) {
        if (isKnown(f) && !SHA256_HEX_PATTERN.test(f)) add(`certificateFingerprints.${role}`, `${JSON.stringify(f)} is not 64 lowercase hex digits`);
        if (args.signingKeys && ["PK", "KEK", "db"].includes(role)) add(`certificateFingerprints.${role}`, "is also given by signingKeys; drop one");
    }
    return problems;
}

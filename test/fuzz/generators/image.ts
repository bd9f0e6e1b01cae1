// Image archives (OCI layout tars and docker saves) whose JSON is well-formed but hostile: descriptors with
// wrong types, sizes that are negative, fractional or past 2^53, digests that are right, wrong or not
// strings, platforms and names of every type, deep nesting, and members that are links (to nowhere, to
// outside, in loops). Digests are computed bottom-up so that bad values get past the digest checks.
import { createHash } from "crypto";
import * as fc from "fast-check";
import { bytes } from "./bytes";
import { TarSpec, buildTar } from "../../helpers/oci-fixtures";

const DEEP = "@@deep@@";
const PROTO = "@@proto@@";

/** A JSON value a well-meaning writer would never produce. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
    fc.constantFrom("", "amd64", "linux", "sha256:", "sha256:zz", "constructor", "__proto__", "toString", DEEP, PROTO),
    fc.constantFrom(0, -1, 1.5, 2 ** 53, 1e308, true, null),
    fc.constant({}),
    fc.constant([]),
    fc.constant([DEEP]),
);

const sometimes = <T>(right: T, weight = 10): fc.Arbitrary<unknown> => fc.oneof({ weight, arbitrary: fc.constant(right) }, { weight: 1, arbitrary: hostileValue });

const LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar";
const MEDIA = fc.constantFrom(
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.config.v1+json",
    LAYER_MEDIA,
    `${LAYER_MEDIA}+zstd`,
    "application/vnd.in-toto+json",
);

/** Mostly the right value: every descriptor has several fields, and an image needs all of them right to open. */
const mostlyRight = (...wrong: string[]) => fc.oneof({ weight: 3 * wrong.length, arbitrary: fc.constant("right") }, { weight: 1, arbitrary: fc.constantFrom(...wrong) });

const descriptorShape = fc.record({
    digest: mostlyRight("other-blob", "absent-blob", "malformed", "not-a-string"),
    size: mostlyRight("wrong", "negative", "fraction", "huge", "string"),
    mediaType: fc.oneof({ weight: 12, arbitrary: fc.constant("right") }, { weight: 2, arbitrary: MEDIA }, { weight: 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: hostileValue }),
});

type DescriptorShape = { digest: string; size: string; mediaType: unknown };

const platform = fc.oneof(
    { weight: 3, arbitrary: fc.record({ architecture: sometimes("amd64"), os: sometimes("linux") }) },
    { weight: 1, arbitrary: fc.record({ architecture: fc.constantFrom("arm", "arm64", "aarch64", "x86_64"), os: fc.constant("linux"), variant: fc.constantFrom("v7", "v8") }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: hostileValue },
);

const names = fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.constantFrom("repo/app:1.0", "app:latest", "latest") }, { weight: 1, arbitrary: hostileValue });

export const imageModel = fc.record({
    layers: fc.array(fc.record({ tar: fc.boolean(), junk: bytes(64) }), { maxLength: 2 }),
    config: fc.record({
        architecture: sometimes("amd64", 8),
        os: sometimes("linux", 8),
        variant: fc.option(sometimes("v8"), { nil: undefined }),
        rootfs: fc.oneof({ weight: 8, arbitrary: fc.constant("right") }, { weight: 1, arbitrary: fc.constant("extra") }, { weight: 1, arbitrary: fc.constant("missing") }, { weight: 1, arbitrary: hostileValue }),
        diffId: fc.oneof({ weight: 8, arbitrary: fc.constant("right") }, { weight: 1, arbitrary: hostileValue }),
    }),
    configDescriptor: descriptorShape,
    layerDescriptors: fc.array(descriptorShape, { minLength: 2, maxLength: 2 }),
    manifestExtra: fc.option(fc.record({ mediaType: MEDIA }), { nil: undefined }),
    manifestLayers: fc.oneof({ weight: 8, arbitrary: fc.constant("right") }, { weight: 1, arbitrary: hostileValue }),
    entries: fc.array(fc.record({ descriptor: descriptorShape, platform, name: names, nested: fc.boolean() }), { minLength: 1, maxLength: 3 }),
    manifests: fc.oneof({ weight: 8, arbitrary: fc.constant("right") }, { weight: 1, arbitrary: hostileValue }),
    format: fc.constantFrom("oci", "oci", "docker", "both"),
    docker: fc.record({
        entries: fc.integer({ min: 1, max: 3 }),
        config: fc.oneof(fc.constantFrom("right", "hex-json"), mostlyRight("missing", "wrong-type", "dotdot")),
        repoTags: fc.oneof(fc.constant<unknown>(["app:latest"]), fc.constant(null), hostileValue),
        layers: mostlyRight("missing", "wrong-type", "absolute"),
    }),
    links: fc.array(fc.record({ from: fc.constantFrom("index.json", "manifest.json", "blobs/sha256/x", "l"), to: fc.constantFrom("../outside", "/etc/passwd", "l", "index.json", "blobs/sha256/x", "") }), { maxLength: 2 }),
});

export type ImageModel = typeof imageModel extends fc.Arbitrary<infer T> ? T : never;

export const imageArchive: fc.Arbitrary<Buffer> = imageModel.map(buildImageArchive);
export const dockerArchive: fc.Arbitrary<Buffer> = imageModel.map((m) => buildImageArchive({ ...m, format: "docker" }));

export function buildImageArchive(m: ImageModel): Buffer {
    const blobs = new Map<string, Buffer>();
    const put = (bytes: Buffer) => {
        const digest = sha256(bytes);
        blobs.set(`blobs/sha256/${digest.slice(7)}`, bytes);
        return digest;
    };
    const layers = m.layers.map((l) => (l.tar ? buildTar([{ name: "usr/", type: "dir" }, { name: "usr/f", content: Buffer.from(l.junk) }]) : Buffer.from(l.junk)));
    const layerDigests = layers.map(put);
    const rootfs =
        m.config.rootfs === "right" ? { type: "layers", diff_ids: layerDigests.map((d) => (m.config.diffId === "right" ? d : m.config.diffId)) }
        : m.config.rootfs === "extra" ? { type: "layers", diff_ids: [...layerDigests, sha256(Buffer.from("x"))] }
        : m.config.rootfs === "missing" ? undefined
        : m.config.rootfs;
    const config = json({ architecture: m.config.architecture, os: m.config.os, variant: m.config.variant, rootfs });
    const configDigest = put(config);
    const manifest = json({
        schemaVersion: 2,
        ...(m.manifestExtra ?? {}),
        config: descriptor(m.configDescriptor, config, "application/vnd.oci.image.config.v1+json"),
        layers: m.manifestLayers === "right" ? layers.map((l, i) => descriptor(m.layerDescriptors[i % 2], l, LAYER_MEDIA)) : m.manifestLayers,
    });
    put(manifest);
    const entries = m.entries.map((e) => {
        const desc = descriptor(e.descriptor, manifest, "application/vnd.oci.image.manifest.v1+json") as Record<string, unknown>;
        const withMeta = { ...desc, platform: e.platform, annotations: e.name === undefined ? undefined : { "io.containerd.image.name": e.name, "org.opencontainers.image.ref.name": e.name } };
        if (!e.nested) return withMeta;
        const nested = json({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [withMeta] });
        put(nested);
        return descriptor({ digest: "right", size: "right", mediaType: "application/vnd.oci.image.index.v1+json" }, nested, "");
    });
    for (const b of descriptorBlobs) put(b);
    descriptorBlobs.length = 0;

    const members: TarSpec[] = [];
    if (m.format !== "docker") {
        members.push({ name: "oci-layout", content: '{"imageLayoutVersion":"1.0.0"}' });
        members.push({ name: "index.json", content: json({ schemaVersion: 2, manifests: m.manifests === "right" ? entries : m.manifests }) });
    }
    if (m.format !== "oci") {
        const list = Array.from({ length: m.docker.entries }, () => ({
            Config: dockerConfigName(m.docker.config, configDigest),
            RepoTags: m.docker.repoTags,
            Layers: dockerLayers(m.docker.layers, layerDigests),
        }));
        members.push({ name: "manifest.json", content: json(list) });
    }
    for (const [name, bytes] of [...blobs].sort(([a], [b]) => (a < b ? -1 : 1))) members.push({ name, content: bytes });
    for (const l of m.links) members.push({ name: l.from, type: "symlink", linkname: l.to });
    return buildTar(members);
}

/** Bytes that descriptors pointing at "other-blob" refer to, so the blob exists but is the wrong one. */
const descriptorBlobs: Buffer[] = [];

function descriptor(shape: DescriptorShape, bytes: Buffer, mediaType: string): unknown {
    const other = Buffer.from(`other ${bytes.length}`);
    const digest =
        shape.digest === "right" ? sha256(bytes)
        : shape.digest === "other-blob" ? (descriptorBlobs.push(other), sha256(other))
        : shape.digest === "absent-blob" ? sha256(Buffer.from("absent"))
        : shape.digest === "malformed" ? `sha256:${"A".repeat(64)}`
        : 42;
    const size =
        shape.size === "right" ? bytes.length
        : shape.size === "wrong" ? bytes.length + 1
        : shape.size === "negative" ? -1
        : shape.size === "fraction" ? bytes.length + 0.5
        : shape.size === "huge" ? 2 ** 60
        : String(bytes.length);
    return { mediaType: shape.mediaType === "right" ? mediaType : shape.mediaType, digest, size };
}

function dockerConfigName(kind: string, digest: string): unknown {
    const hex = digest.slice(7);
    if (kind === "right") return `blobs/sha256/${hex}`;
    if (kind === "hex-json") return `${hex}.json`;
    if (kind === "missing") return "nope.json";
    if (kind === "dotdot") return `../blobs/sha256/${hex}`;
    return 7;
}

function dockerLayers(kind: string, digests: string[]): unknown {
    if (kind === "right") return digests.map((d) => `blobs/sha256/${d.slice(7)}`);
    if (kind === "missing") return ["absent/layer.tar"];
    if (kind === "absolute") return digests.map((d) => `/blobs/sha256/${d.slice(7)}`);
    return [3];
}

/** JSON text, with the markers for values JSON.stringify cannot make (deep nesting, a "__proto__" key) spliced in. */
function json(value: unknown): Buffer {
    const text = JSON.stringify(value)
        .split(JSON.stringify(DEEP)).join(`${"[".repeat(20000)}${"]".repeat(20000)}`)
        .split(JSON.stringify(PROTO)).join('{"__proto__":{"architecture":"amd64","os":"linux"},"length":3}');
    return Buffer.from(text);
}

function sha256(data: Buffer): string {
    return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export const IMAGE_DICTIONARY = ['"mediaType"', '"digest"', '"size"', '"manifests"', '"layers"', '"config"', '"rootfs"', '"diff_ids"', '"platform"', '"RepoTags"', '"Layers"', '"Config"', "sha256:", "application/vnd.oci.image.index.v1+json", "[[[[", "null", "-1", "1e309"].map((s) => Buffer.from(s));

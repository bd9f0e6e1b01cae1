// Opens a container image stored locally: an OCI image layout (directory or tar), or a `docker save`
// archive (the legacy manifest.json form, or the OCI layout newer Docker writes). Registry images
// arrive here as OCI layouts (skopeo copy ... oci:DIR:TAG), so the OCI path is the main one.
import {
    BlobLocation,
    ImageFormatError,
    ImageStore,
    blobName,
    openImageStore,
    readJsonMember,
    splitDigest,
} from "./image-store";

export { ImageFormatError } from "./image-store";

export interface ImageLayer {
    /**
     * Digest of the blob as stored (usually compressed). Legacy docker-save archives name layers by
     * path, not digest; there it is the diff ID.
     */
    digest: string;
    /** sha256 of the uncompressed tar, from the config's rootfs.diff_ids. */
    diffId: string;
    mediaType: string;
    /** The blob is bytes [offset, offset + size) of `path`; offset is 0 unless it is inside an archive. */
    path: string;
    offset: number;
    size: number;
}

export interface ImageConfig {
    architecture: string;
    os: string;
    variant?: string;
    config?: { Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; Labels?: Record<string, string>; WorkingDir?: string };
    rootfs: { type: string; diff_ids: string[] };
    [key: string]: unknown;
}

export interface OciImage {
    source: string;
    format: "oci-layout" | "docker-archive";
    /** Undefined for legacy docker-save archives, which carry no manifest. */
    manifestDigest?: string;
    configDigest: string;
    /**
     * Identifies the image content. It is the config digest (the image ID): the config pins every
     * layer's uncompressed bytes through rootfs.diff_ids, so it is the same whether the image comes
     * as an OCI layout, an OCI tar or a docker save, and whatever the layer compression. The
     * manifest digest changes with compression and is absent from legacy docker saves.
     */
    contentDigest: string;
    architecture: string;
    os: string;
    variant?: string;
    /** Names the image carries (OCI ref.name annotations, containerd image names, docker RepoTags). */
    names: string[];
    config: ImageConfig;
    /** Base layer first. */
    layers: ImageLayer[];
}

export interface OpenImageOptions {
    /** GOARCH-style architecture to pick from a multi-platform index. @default "amd64" */
    arch?: string;
    /** @default "linux" */
    os?: string;
    /** Only needed when an index holds several variants of the architecture (arm/v6, arm/v7). */
    variant?: string;
    /** Picks one image when the source holds several: a tag ("1.0"), or a full name ("repo/app:1.0"). */
    tag?: string;
}

interface Platform {
    architecture: string;
    os: string;
    variant?: string;
}

interface Descriptor {
    mediaType?: string;
    digest: string;
    size: number;
    platform?: Platform;
    annotations?: Record<string, string>;
}

/** One image the source offers, before its manifest and config are read. */
interface Candidate {
    names: string[];
    platform?: Platform;
    /** Distinguishes candidates; two names for the same manifest are one image. */
    key: string;
    load(): Promise<LoadedImage>;
}

type LoadedImage = Omit<OciImage, "source" | "names" | "architecture" | "os" | "variant" | "contentDigest">;

const MEDIA = {
    ociIndex: "application/vnd.oci.image.index.v1+json",
    ociManifest: "application/vnd.oci.image.manifest.v1+json",
    dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
    dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
    dockerLegacyLayer: "application/vnd.docker.image.rootfs.diff.tar",
};
const INDEX_TYPES = new Set([MEDIA.ociIndex, MEDIA.dockerList]);
const MANIFEST_TYPES = new Set([MEDIA.ociManifest, MEDIA.dockerManifest]);
const LAYER_TYPE =
    /^application\/vnd\.(oci\.image\.layer(\.nondistributable)?\.v1\.tar|docker\.image\.rootfs\.(foreign\.)?diff\.tar)(\.gzip|\+gzip|\+zstd)?$/;
const MAX_INDEX_DEPTH = 4;

/** Opens `source` (a directory or an uncompressed tar) and picks one image for the platform. */
export async function openImage(source: string, opts: OpenImageOptions = {}): Promise<OciImage> {
    const want: Platform = { architecture: normalizeArch(opts.arch ?? "amd64"), os: opts.os ?? "linux", variant: opts.variant };
    const store = await openImageStore(source);
    const candidates = await listCandidates(store);
    const chosen = await choose(store, candidates, want, opts.tag);
    const loaded = await chosen.load();
    checkPlatform(store, loaded.config, want);
    return {
        source,
        ...loaded,
        contentDigest: loaded.configDigest,
        names: chosen.names,
        architecture: normalizeArch(loaded.config.architecture),
        os: loaded.config.os,
        variant: loaded.config.variant,
    };
}

/** Maps uname-style names to the GOARCH names images use. */
export function normalizeArch(arch: string): string {
    const aliases: Record<string, string> = { x86_64: "amd64", "x86-64": "amd64", aarch64: "arm64" };
    // Own keys only: "constructor" or "__proto__" from an image would otherwise name Object's members.
    return Object.hasOwn(aliases, arch) ? aliases[arch] : arch;
}

async function listCandidates(store: ImageStore): Promise<Candidate[]> {
    // Newer docker saves hold both files; index.json carries the real manifests, so it wins.
    if (await store.locate("index.json")) {
        const index = await readJsonMember(store, "index.json");
        return ociCandidates(store, asIndex(store, "index.json", index.value), [], 0);
    }
    if (await store.locate("manifest.json")) return dockerCandidates(store);
    throw new ImageFormatError(`${store.source} is not an OCI image layout or a docker save archive: it has neither index.json nor manifest.json`);
}

async function ociCandidates(store: ImageStore, index: Descriptor[], inherited: string[], depth: number): Promise<Candidate[]> {
    const out: Candidate[] = [];
    for (const d of index) {
        const names = [...inherited, ...refNames(d.annotations)];
        const mediaType = d.mediaType ?? (await mediaTypeFromContent(store, d));
        if (INDEX_TYPES.has(mediaType)) {
            if (depth >= MAX_INDEX_DEPTH) throw new ImageFormatError(`${store.source}: image indexes are nested more than ${MAX_INDEX_DEPTH} deep`);
            const nested = await readJsonMember(store, blobName(d.digest), d.digest);
            out.push(...(await ociCandidates(store, asIndex(store, d.digest, nested.value), names, depth + 1)));
        } else if (MANIFEST_TYPES.has(mediaType)) {
            out.push({ names, platform: d.platform, key: d.digest, load: once(() => loadOciManifest(store, d)) });
        }
        // Anything else (signatures, SBOMs, other artifacts) is not an image and is passed over.
    }
    return out;
}

async function mediaTypeFromContent(store: ImageStore, d: Descriptor): Promise<string> {
    const { value } = await readJsonMember(store, blobName(d.digest), d.digest);
    const obj = value as Record<string, unknown>;
    if (typeof obj?.mediaType === "string") return obj.mediaType;
    if (Array.isArray(obj?.manifests)) return MEDIA.ociIndex;
    if (Array.isArray(obj?.layers)) return MEDIA.ociManifest;
    return "unknown";
}

function refNames(annotations: Record<string, string> | undefined): string[] {
    const keys = ["io.containerd.image.name", "org.opencontainers.image.ref.name"];
    return keys.map((k) => annotations?.[k]).filter((v): v is string => typeof v === "string" && v !== "");
}

async function loadOciManifest(store: ImageStore, d: Descriptor): Promise<LoadedImage> {
    const where = `manifest ${d.digest}`;
    const { value } = await readJsonMember(store, blobName(d.digest), d.digest);
    const manifest = value as Record<string, unknown>;
    if (INDEX_TYPES.has(manifest?.mediaType as string)) throw new ImageFormatError(`${store.source}: ${where} is an index, not an image manifest`);
    const configDesc = asDescriptor(store, `${where} config`, manifest?.config);
    const layerDescs = asArray(store, `${where} layers`, manifest?.layers).map((l, i) => asDescriptor(store, `${where} layer ${i}`, l));
    const config = await readConfig(store, blobName(configDesc.digest), configDesc.digest);
    checkLayerCount(store, config.value, layerDescs.length);
    const layers = await Promise.all(
        layerDescs.map((l, i) => locateOciLayer(store, l, config.value.rootfs.diff_ids[i], `${where} layer ${i}`)),
    );
    return { format: "oci-layout", manifestDigest: d.digest, configDigest: configDesc.digest, config: config.value, layers };
}

async function locateOciLayer(store: ImageStore, d: Descriptor, diffId: string, where: string): Promise<ImageLayer> {
    const mediaType = d.mediaType ?? "";
    if (!LAYER_TYPE.test(mediaType)) {
        throw new ImageFormatError(`${store.source}: ${where} has media type ${JSON.stringify(mediaType)}, which is not a tar layer (encrypted and artifact layers are not supported)`);
    }
    const loc = await locateBlob(store, d.digest, where);
    if (loc.size !== d.size) throw new ImageFormatError(`${store.source}: ${where} blob is ${loc.size} bytes, but its descriptor says ${d.size}`);
    return { digest: d.digest, diffId, mediaType, ...loc };
}

async function locateBlob(store: ImageStore, digest: string, where: string): Promise<BlobLocation> {
    const loc = await store.locate(blobName(digest));
    if (!loc) throw new ImageFormatError(`${store.source}: ${where} blob ${digest} is missing from the image`);
    return loc;
}

interface DockerManifestEntry {
    Config: string;
    RepoTags?: string[] | null;
    Layers: string[];
}

async function dockerCandidates(store: ImageStore): Promise<Candidate[]> {
    const { value } = await readJsonMember(store, "manifest.json");
    return asArray(store, "manifest.json", value).map((raw, i) => {
        const entry = asDockerEntry(store, raw, i);
        return { names: entry.RepoTags ?? [], key: entry.Config, load: once(() => loadDockerEntry(store, entry)) };
    });
}

async function loadDockerEntry(store: ImageStore, entry: DockerManifestEntry): Promise<LoadedImage> {
    const config = await readConfig(store, entry.Config, digestFromName(entry.Config));
    checkLayerCount(store, config.value, entry.Layers.length);
    const layers = await Promise.all(
        entry.Layers.map(async (name, i): Promise<ImageLayer> => {
            const loc = await store.locate(name);
            if (!loc) throw new ImageFormatError(`${store.source}: layer ${name} listed in manifest.json is missing`);
            const diffId = config.value.rootfs.diff_ids[i];
            return { digest: diffId, diffId, mediaType: MEDIA.dockerLegacyLayer, ...loc };
        }),
    );
    return { format: "docker-archive", configDigest: config.digest, config: config.value, layers };
}

/** docker save names configs "<hex>.json" or "blobs/sha256/<hex>"; when it does, the bytes must match. */
function digestFromName(name: string): string | undefined {
    const m = /(?:^|\/)([0-9a-f]{64})(?:\.json)?$/.exec(name);
    return m ? `sha256:${m[1]}` : undefined;
}

async function readConfig(store: ImageStore, name: string, digest: string | undefined): Promise<{ value: ImageConfig; digest: string }> {
    const { value, digest: actual } = await readJsonMember(store, name, digest);
    const config = value as ImageConfig;
    const where = `${store.source}: image config ${actual}`;
    if (typeof config?.architecture !== "string" || typeof config?.os !== "string") {
        throw new ImageFormatError(`${where} has no architecture or os`);
    }
    if (config.variant !== undefined && typeof config.variant !== "string") throw new ImageFormatError(`${where} has a variant that is not a string`);
    const diffIds = config.rootfs?.diff_ids;
    if (!Array.isArray(diffIds)) throw new ImageFormatError(`${where} has no rootfs.diff_ids`);
    for (const id of diffIds) splitDigest(id);
    return { value: config, digest: actual };
}

function checkLayerCount(store: ImageStore, config: ImageConfig, layers: number): void {
    if (config.rootfs.diff_ids.length !== layers) {
        throw new ImageFormatError(`${store.source}: the manifest lists ${layers} layers but the config has ${config.rootfs.diff_ids.length} diff IDs`);
    }
}

async function choose(store: ImageStore, all: Candidate[], want: Platform, tag: string | undefined): Promise<Candidate> {
    const tagged = tag === undefined ? all : all.filter((c) => c.names.some((n) => nameMatches(n, tag)));
    if (tagged.length === 0) {
        const names = [...new Set(all.flatMap((c) => c.names))];
        throw new ImageFormatError(`${store.source} has no image named ${JSON.stringify(tag)}; it has: ${names.join(", ") || "(no names)"}`);
    }
    const seen: string[] = [];
    const matching: Candidate[] = [];
    for (const c of tagged) {
        const platform = c.platform ?? (await c.load()).config;
        seen.push(platformString(platform));
        if (platformMatches(platform, want)) matching.push(c);
    }
    const distinct = [...new Map(matching.map((c) => [c.key, c])).values()];
    if (distinct.length === 0) {
        throw new ImageFormatError(`${store.source} has no ${platformString(want)} image; it has: ${[...new Set(seen)].join(", ")}`);
    }
    if (distinct.length > 1) {
        const names = distinct.map((c) => c.names.join(" ") || c.key);
        throw new ImageFormatError(`${store.source} holds ${distinct.length} ${platformString(want)} images (${names.join("; ")}); choose one with the tag option`);
    }
    return distinct[0];
}

function nameMatches(name: string, tag: string): boolean {
    return name === tag || (!tag.includes(":") && !tag.includes("/") && name.endsWith(`:${tag}`));
}

function platformMatches(p: Platform, want: Platform): boolean {
    return normalizeArch(p.architecture) === want.architecture && p.os === want.os && (!want.variant || p.variant === want.variant);
}

function platformString(p: Platform): string {
    return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

// An index entry's platform is a claim; the config is what the image says about itself.
function checkPlatform(store: ImageStore, config: ImageConfig, want: Platform): void {
    if (!platformMatches(config, want)) {
        throw new ImageFormatError(`${store.source}: the selected image is ${platformString(config)}, but ${platformString(want)} was requested`);
    }
}

function asIndex(store: ImageStore, where: string, value: unknown): Descriptor[] {
    const manifests = asArray(store, `${where} manifests`, (value as Record<string, unknown>)?.manifests);
    return manifests.map((m, i) => asDescriptor(store, `${where} manifests[${i}]`, m));
}

function asDescriptor(store: ImageStore, where: string, value: unknown): Descriptor {
    const d = value as Descriptor;
    if (typeof d?.digest !== "string" || !Number.isSafeInteger(d.size) || d.size < 0) {
        throw new ImageFormatError(`${store.source}: ${where} is not a valid descriptor (needs digest and size)`);
    }
    splitDigest(d.digest);
    // Fields later matched and printed as text must be text: converting a nested array recurses without bound.
    if (d.mediaType !== undefined && typeof d.mediaType !== "string") throw new ImageFormatError(`${store.source}: ${where} has a mediaType that is not a string`);
    if (d.platform !== undefined && d.platform !== null && !isPlatform(d.platform)) {
        throw new ImageFormatError(`${store.source}: ${where} has a platform without string architecture and os`);
    }
    return d;
}

function isPlatform(p: unknown): p is Platform {
    const q = p as Platform;
    return typeof q === "object" && typeof q.architecture === "string" && typeof q.os === "string" && (q.variant === undefined || typeof q.variant === "string");
}

function asArray(store: ImageStore, where: string, value: unknown): unknown[] {
    if (!Array.isArray(value)) throw new ImageFormatError(`${store.source}: ${where} is not a list`);
    return value;
}

function asDockerEntry(store: ImageStore, raw: unknown, i: number): DockerManifestEntry {
    const e = raw as DockerManifestEntry;
    const layersOk = Array.isArray(e?.Layers) && e.Layers.every((l) => typeof l === "string");
    if (typeof e?.Config !== "string" || !layersOk) {
        throw new ImageFormatError(`${store.source}: manifest.json entry ${i} needs Config and Layers`);
    }
    // docker writes null for an untagged image; anything but a list of strings would reach name matching.
    const tags = e.RepoTags;
    if (tags !== undefined && tags !== null && !(Array.isArray(tags) && tags.every((t) => typeof t === "string"))) {
        throw new ImageFormatError(`${store.source}: manifest.json entry ${i} has RepoTags that are not a list of names`);
    }
    return e;
}

/** A candidate may be loaded to learn its platform and again when chosen; read it once. */
function once<T>(fn: () => Promise<T>): () => Promise<T> {
    let result: Promise<T> | undefined;
    return () => (result ??= fn());
}

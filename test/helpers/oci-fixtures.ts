// Builds container images for tests, byte by byte: a tiny tar writer (it can write what GNU tar
// refuses to, such as "../evil", absolute names, devices and escaping links), layers, configs and
// manifests, assembled as an OCI layout directory, an OCI layout tar, or a docker save archive.
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { gzipSync } from "zlib";
import { run } from "../../provider/toolkit/run";

export type TarType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

export interface TarSpec {
    name: string;
    type?: TarType;
    content?: string | Buffer;
    mode?: number;
    linkname?: string;
    /** Extra pax records written before this entry (e.g. a "path" that overrides the name). */
    pax?: Record<string, string>;
    /** A raw type flag, for entry types the reader must refuse. */
    typeflag?: string;
}

export interface TarOptions {
    /** How names over 100 bytes are stored. @default "pax" */
    longNames?: "pax" | "gnu";
}

const TYPEFLAGS: Record<TarType, string> = { file: "0", hardlink: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" };

export function buildTar(entries: TarSpec[], opts: TarOptions = {}): Buffer {
    const blocks: Buffer[] = [];
    for (const e of entries) blocks.push(...tarEntry(e, opts.longNames ?? "pax"));
    blocks.push(Buffer.alloc(1024));
    return Buffer.concat(blocks);
}

function tarEntry(e: TarSpec, longNames: "pax" | "gnu"): Buffer[] {
    const type = e.type ?? "file";
    const data = type === "file" ? Buffer.from(e.content ?? "") : Buffer.alloc(0);
    const linkname = e.linkname ?? "";
    const out: Buffer[] = [];
    const pax: Record<string, string> = { ...e.pax };
    let name = e.name;
    let link = linkname;
    if (Buffer.byteLength(name) > 100) {
        if (longNames === "pax") pax.path = name;
        else out.push(...gnuLong("L", name));
        name = name.slice(0, 99);
    }
    if (Buffer.byteLength(link) > 100) {
        if (longNames === "pax") pax.linkpath = link;
        else out.push(...gnuLong("K", link));
        link = link.slice(0, 99);
    }
    if (Object.keys(pax).length > 0) {
        const body = paxBody(pax);
        out.push(header({ name: "PaxHeaders/x", typeflag: "x", size: body.length, mode: 0o644 }), pad(body));
    }
    const defaultMode = type === "dir" ? 0o755 : type === "symlink" ? 0o777 : 0o644;
    const typeflag = e.typeflag ?? TYPEFLAGS[type];
    out.push(header({ name, typeflag, size: data.length, mode: e.mode ?? defaultMode, linkname: link, gnu: longNames === "gnu" }), pad(data));
    return out;
}

function gnuLong(typeflag: string, value: string): Buffer[] {
    const data = Buffer.concat([Buffer.from(value), Buffer.alloc(1)]);
    return [header({ name: "././@LongLink", typeflag, size: data.length, mode: 0o644, gnu: true }), pad(data)];
}

function paxBody(records: Record<string, string>): Buffer {
    const lines = Object.entries(records).map(([k, v]) => {
        const rest = ` ${k}=${v}\n`;
        let len = Buffer.byteLength(rest) + 1;
        while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
        return `${len}${rest}`;
    });
    return Buffer.from(lines.join(""));
}

interface HeaderFields {
    name: string;
    typeflag: string;
    size: number;
    mode: number;
    linkname?: string;
    gnu?: boolean;
}

function header(h: HeaderFields): Buffer {
    const b = Buffer.alloc(512);
    b.write(h.name, 0, 100, "utf8");
    octal(b, 100, 8, h.mode);
    octal(b, 108, 8, 0);
    octal(b, 116, 8, 0);
    octal(b, 124, 12, h.size);
    octal(b, 136, 12, 0);
    b.write(h.typeflag, 156, 1, "latin1");
    b.write(h.linkname ?? "", 157, 100, "utf8");
    b.write(h.gnu ? "ustar  \0" : "ustar\u000000", 257, 8, "latin1");
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of b) sum += byte;
    b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
    return b;
}

function octal(b: Buffer, offset: number, length: number, value: number): void {
    b.write(`${value.toString(8).padStart(length - 1, "0")}\0`, offset, length, "latin1");
}

function pad(data: Buffer): Buffer {
    const rem = data.length % 512;
    return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rem)]);
}

export function sha256(data: Buffer): string {
    return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export interface BuiltLayer {
    /** The uncompressed tar. */
    tar: Buffer;
    blob: Buffer;
    digest: string;
    diffId: string;
    mediaType: string;
}

export type Compression = "none" | "gzip" | "zstd";

export async function makeLayer(entries: TarSpec[], compression: Compression = "gzip", opts: TarOptions = {}): Promise<BuiltLayer> {
    const tar = buildTar(entries, opts);
    const blob = compression === "gzip" ? gzipSync(tar) : compression === "zstd" ? await zstd(tar) : tar;
    const suffix = compression === "none" ? "" : `+${compression}`;
    return { tar, blob, digest: sha256(blob), diffId: sha256(tar), mediaType: `application/vnd.oci.image.layer.v1.tar${suffix}` };
}

async function zstd(data: Buffer): Promise<Buffer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-zstd-"));
    try {
        fs.writeFileSync(path.join(dir, "in"), data);
        await run(["zstd", "-q", "-o", path.join(dir, "out"), path.join(dir, "in")]);
        return fs.readFileSync(path.join(dir, "out"));
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

export interface ImageSpec {
    layers: BuiltLayer[];
    arch?: string;
    os?: string;
    variant?: string;
}

export interface BuiltImage {
    spec: ImageSpec;
    config: Buffer;
    configDigest: string;
    manifest: Buffer;
    manifestDigest: string;
    layers: BuiltLayer[];
}

export function buildImage(spec: ImageSpec): BuiltImage {
    const config = Buffer.from(JSON.stringify({
        architecture: spec.arch ?? "amd64",
        os: spec.os ?? "linux",
        ...(spec.variant ? { variant: spec.variant } : {}),
        config: { Env: ["PATH=/usr/bin"] },
        rootfs: { type: "layers", diff_ids: spec.layers.map((l) => l.diffId) },
    }));
    const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
        layers: spec.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length })),
    }));
    return { spec, config, configDigest: sha256(config), manifest, manifestDigest: sha256(manifest), layers: spec.layers };
}

export type LayoutEntry =
    | { image: BuiltImage; name?: string }
    /** A multi-platform index; `attestation` adds an unknown/unknown manifest whose blobs are absent. */
    | { platforms: BuiltImage[]; name?: string; attestation?: boolean };

/** Writes an OCI image layout; with `dockerManifest`, also the manifest.json newer docker saves carry. */
export function writeOciLayout(dir: string, entries: LayoutEntry[], opts: { dockerManifest?: boolean } = {}): void {
    fs.mkdirSync(path.join(dir, "blobs", "sha256"), { recursive: true });
    fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    const manifests = entries.map((e) => ("image" in e ? imageDescriptor(dir, e.image, e.name) : indexDescriptor(dir, e)));
    fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }));
    if (opts.dockerManifest) {
        const images = entries.flatMap((e) => ("image" in e ? [{ image: e.image, name: e.name }] : []));
        const list = images.map(({ image, name }) => ({
            Config: `blobs/sha256/${hex(image.configDigest)}`,
            RepoTags: name ? [name] : null,
            Layers: image.layers.map((l) => `blobs/sha256/${hex(l.digest)}`),
        }));
        fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(list));
    }
}

function imageDescriptor(dir: string, image: BuiltImage, name?: string, withPlatform = false) {
    writeBlob(dir, image.config);
    writeBlob(dir, image.manifest);
    for (const l of image.layers) writeBlob(dir, l.blob);
    return {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: image.manifestDigest,
        size: image.manifest.length,
        ...(withPlatform ? { platform: platformOf(image) } : {}),
        ...(name ? { annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.split(":").pop() } } : {}),
    };
}

function indexDescriptor(dir: string, e: { platforms: BuiltImage[]; name?: string; attestation?: boolean }) {
    const manifests: object[] = e.platforms.map((img) => imageDescriptor(dir, img, undefined, true));
    if (e.attestation) {
        manifests.push({
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            digest: sha256(Buffer.from("absent attestation")),
            size: 100,
            platform: { architecture: "unknown", os: "unknown" },
            annotations: { "vnd.docker.reference.type": "attestation-manifest" },
        });
    }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }));
    writeBlob(dir, index);
    return {
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: sha256(index),
        size: index.length,
        ...(e.name ? { annotations: { "org.opencontainers.image.ref.name": e.name } } : {}),
    };
}

function platformOf(image: BuiltImage) {
    const { arch = "amd64", os: osName = "linux", variant } = image.spec;
    return { architecture: arch, os: osName, ...(variant ? { variant } : {}) };
}

function writeBlob(dir: string, data: Buffer): void {
    fs.writeFileSync(path.join(dir, "blobs", "sha256", hex(sha256(data))), data);
}

function hex(digest: string): string {
    return digest.slice("sha256:".length);
}

/**
 * Writes a legacy `docker save` archive: manifest.json, <config>.json and <id>/layer.tar
 * (uncompressed). With `linkLayers`, each layer.tar is a symlink to a shared copy, as docker save
 * does for layers it has already written.
 */
export function writeDockerSave(file: string, images: Array<{ image: BuiltImage; repoTags: string[] }>, opts: { linkLayers?: boolean } = {}): void {
    const entries: TarSpec[] = [];
    const manifest = images.map(({ image, repoTags }) => {
        const layers = image.layers.map((l) => {
            const id = hex(l.diffId);
            entries.push({ name: `${id}/`, type: "dir" }, { name: `${id}/VERSION`, content: "1.0" });
            if (opts.linkLayers) {
                entries.push({ name: `shared/${id}.tar`, content: l.tar }, { name: `${id}/layer.tar`, type: "symlink", linkname: `../shared/${id}.tar` });
            } else {
                entries.push({ name: `${id}/layer.tar`, content: l.tar });
            }
            return `${id}/layer.tar`;
        });
        entries.push({ name: `${hex(image.configDigest)}.json`, content: image.config });
        return { Config: `${hex(image.configDigest)}.json`, RepoTags: repoTags, Layers: layers };
    });
    entries.push({ name: "manifest.json", content: JSON.stringify(manifest) });
    fs.writeFileSync(file, buildTar(entries));
}

/** Tars a directory (files, directories and symlinks), names sorted, as an OCI layout tar. */
export function tarDirectory(dir: string, file: string): void {
    const entries: TarSpec[] = [];
    const walk = (rel: string) => {
        for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
            const childRel = rel ? `${rel}/${name}` : name;
            const full = path.join(dir, childRel);
            const st = fs.lstatSync(full);
            if (st.isDirectory()) {
                entries.push({ name: `${childRel}/`, type: "dir" });
                walk(childRel);
            } else if (st.isSymbolicLink()) {
                entries.push({ name: childRel, type: "symlink", linkname: fs.readlinkSync(full) });
            } else {
                entries.push({ name: childRel, content: fs.readFileSync(full) });
            }
        }
    };
    walk("");
    fs.writeFileSync(file, buildTar(entries));
}

/** A fresh temp directory; remove it with `fs.rmSync(dir, { recursive: true })`. */
export function tempDir(prefix = "kairos-oci-"): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

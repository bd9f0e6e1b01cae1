// Where the files of an image source live: a directory (OCI layout, or an unpacked docker save) or
// an uncompressed tar archive of one. Archives are indexed, not unpacked: a member is a byte range
// of the archive file, so a multi-gigabyte docker save costs one pass over its headers.
import * as fs from "fs";
import * as path from "path";
import { sha256Hex } from "../files";
import { FileSource, readTar } from "./tar-reader";
import { UnsafePathError, joinParts, resolveLinkTarget, splitRelative } from "../tree-path";

/** Bytes [offset, offset + size) of the file at `path`. */
export interface BlobLocation {
    path: string;
    offset: number;
    size: number;
}

export class ImageFormatError extends Error {
    readonly code = "IMAGE_FORMAT";
}

export interface ImageStore {
    /** The source as given, for messages. */
    readonly source: string;
    readonly kind: "directory" | "archive";
    /** Finds a member by its relative name; undefined when there is none. */
    locate(name: string): Promise<BlobLocation | undefined>;
}

const MAX_LINK_HOPS = 16;
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Opens a directory or an archive file as an image store. */
export async function openImageStore(source: string): Promise<ImageStore> {
    const stat = await fs.promises.stat(source).catch((e: NodeJS.ErrnoException) => {
        throw new ImageFormatError(e.code === "ENOENT" ? `image source ${source} does not exist` : `cannot read image source ${source}: ${e.message}`);
    });
    if (stat.isDirectory()) return new DirectoryStore(source, await fs.promises.realpath(source));
    if (!stat.isFile()) throw new ImageFormatError(`image source ${source} is neither a directory nor a file`);
    await refuseCompressedArchive(source);
    return ArchiveStore.index(source);
}

export function blobName(digest: string): string {
    const [algorithm, hex] = splitDigest(digest);
    return `blobs/${algorithm}/${hex}`;
}

/** Checks the digest syntax, which also keeps it from naming a path outside blobs/. */
export function splitDigest(digest: string): [string, string] {
    // Digests come from image JSON: a non-string (a deeply nested array, even) is refused before any
    // conversion to text, which could recurse until the stack runs out.
    const m = typeof digest === "string" ? /^(sha256):([0-9a-f]{64})$/.exec(digest) : null;
    if (!m) {
        const shown = typeof digest === "string" ? JSON.stringify(digest) : `of type ${Array.isArray(digest) ? "array" : typeof digest}`;
        throw new ImageFormatError(`unsupported or malformed digest ${shown} (only sha256:<64 hex> is supported)`);
    }
    return [m[1], m[2]];
}

export async function readLocation(loc: BlobLocation): Promise<Buffer> {
    const handle = await fs.promises.open(loc.path, "r");
    try {
        const buf = Buffer.alloc(loc.size);
        const { bytesRead } = await handle.read(buf, 0, loc.size, loc.offset);
        if (bytesRead !== loc.size) throw new ImageFormatError(`${loc.path} is shorter than expected (truncated?)`);
        return buf;
    } finally {
        await handle.close();
    }
}

const MAX_JSON_SIZE = 8 << 20;

/** Reads a small JSON member; with `digest`, its bytes must hash to it. */
export async function readJsonMember(store: ImageStore, name: string, digest?: string): Promise<{ value: unknown; digest: string }> {
    const loc = await store.locate(name);
    if (!loc) throw new ImageFormatError(`${store.source}: ${name} is missing`);
    if (loc.size > MAX_JSON_SIZE) throw new ImageFormatError(`${store.source}: ${name} is ${loc.size} bytes, too large for image metadata`);
    const bytes = await readLocation(loc);
    const actual = `sha256:${sha256Hex(bytes)}`;
    if (digest && actual !== digest) {
        throw new ImageFormatError(`${store.source}: ${name} has digest ${actual}, but ${digest} was expected (the image is corrupt or was altered)`);
    }
    try {
        return { value: JSON.parse(bytes.toString("utf8")), digest: actual };
    } catch (e) {
        throw new ImageFormatError(`${store.source}: ${name} is not valid JSON: ${(e as Error).message}`);
    }
}

export async function sniffCompression(loc: BlobLocation): Promise<"gzip" | "zstd" | "none"> {
    const head = await readLocation({ ...loc, size: Math.min(4, loc.size) });
    if (head.subarray(0, 2).equals(GZIP_MAGIC)) return "gzip";
    if (head.equals(ZSTD_MAGIC)) return "zstd";
    return "none";
}

async function refuseCompressedArchive(file: string): Promise<void> {
    const { size } = await fs.promises.stat(file);
    const compression = await sniffCompression({ path: file, offset: 0, size });
    if (compression !== "none") {
        throw new ImageFormatError(`${file} is a ${compression}-compressed archive; decompress it first (an image archive must be a plain tar to be read in place)`);
    }
}

function memberParts(name: string, source: string): string[] {
    try {
        return splitRelative(name);
    } catch (e) {
        if (e instanceof UnsafePathError) throw new ImageFormatError(`${source}: member name ${JSON.stringify(name)} is refused: ${e.reason}`);
        throw e;
    }
}

class DirectoryStore implements ImageStore {
    readonly kind = "directory";

    constructor(readonly source: string, private readonly realRoot: string) {}

    async locate(name: string): Promise<BlobLocation | undefined> {
        const parts = memberParts(name, this.source);
        let real: string;
        try {
            real = await fs.promises.realpath(path.join(this.realRoot, ...parts));
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
            throw e;
        }
        // docker save links duplicate layers to each other; a link out of the layout is refused.
        if (real !== this.realRoot && !real.startsWith(this.realRoot + path.sep)) {
            throw new ImageFormatError(`${this.source}: ${name} is a link that points outside the image directory`);
        }
        const stat = await fs.promises.stat(real);
        if (!stat.isFile()) return undefined;
        return { path: real, offset: 0, size: stat.size };
    }
}

type ArchiveMember =
    | { kind: "file"; offset: number; size: number }
    | { kind: "symlink"; target: string }
    | { kind: "hardlink"; target: string };

class ArchiveStore implements ImageStore {
    readonly kind = "archive";

    private constructor(readonly source: string, private readonly members: Map<string, ArchiveMember>) {}

    static async index(file: string): Promise<ArchiveStore> {
        const members = new Map<string, ArchiveMember>();
        const src = await FileSource.open(file);
        try {
            for await (const entry of readTar(src)) {
                const member = toMember(entry.type, entry.dataOffset, entry.size, entry.linkname);
                // Later members replace earlier ones with the same name, as tar extraction would.
                if (member) members.set(joinParts(memberParts(entry.name, file)), member);
            }
        } finally {
            await src.close();
        }
        return new ArchiveStore(file, members);
    }

    async locate(name: string): Promise<BlobLocation | undefined> {
        let parts = memberParts(name, this.source);
        for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
            const member = this.members.get(joinParts(parts));
            if (!member) return undefined;
            if (member.kind === "file") return { path: this.source, offset: member.offset, size: member.size };
            const next = member.kind === "symlink" ? resolveLinkTarget(parts, member.target, "refuse") : safeParts(member.target);
            if (!next) throw new ImageFormatError(`${this.source}: member ${name} links outside the archive`);
            parts = next;
        }
        throw new ImageFormatError(`${this.source}: member ${name} is a chain of more than ${MAX_LINK_HOPS} links`);
    }
}

function toMember(type: string, offset: number, size: number, linkname: string): ArchiveMember | undefined {
    if (type === "file") return { kind: "file", offset, size };
    if (type === "symlink") return { kind: "symlink", target: linkname };
    if (type === "hardlink") return { kind: "hardlink", target: linkname };
    return undefined;
}

function safeParts(name: string): string[] | undefined {
    try {
        return splitRelative(name);
    } catch {
        return undefined;
    }
}

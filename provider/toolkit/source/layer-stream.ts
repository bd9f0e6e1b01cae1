// Turns a layer blob into an uncompressed tar stream and checks it against the image's digests.
// Compression is recognised by magic bytes, not media type, because docker saves label their
// uncompressed layers loosely. gzip uses node's zlib; zstd goes through the zstd CLI (node 20's
// zlib has no zstd), which needs the blob as a file of its own.
import { createHash, Hash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Readable, Transform } from "stream";
import { pipeline } from "stream/promises";
import { createGunzip } from "zlib";
import { BlobLocation, ImageFormatError, sniffCompression } from "./image-store";
import type { ImageLayer } from "./oci-image";
import { run } from "../run";

export class DigestMismatchError extends Error {
    readonly code = "DIGEST_MISMATCH";
}

export interface TarBlob {
    /** The uncompressed tar. Read it to the end, then call verify(). */
    readonly stream: Readable;
    /** Compares what was read with the expected digests. */
    verify(): Promise<void>;
    /** Stops reading and removes temporary files; safe to call more than once. */
    close(): Promise<void>;
}

export interface TarBlobExpectations {
    /** sha256 of the stored (possibly compressed) bytes. */
    blobDigest?: string;
    /** sha256 of the uncompressed tar. */
    tarDigest?: string;
    /** What to call the blob in messages. */
    label?: string;
}

export interface TarBlobOptions {
    /** Where zstd blobs are decompressed. @default os.tmpdir() */
    tmpDir?: string;
}

/** Opens an image layer, checking its blob digest and its diff ID once it has been read. */
export function openLayerTar(layer: ImageLayer, opts: TarBlobOptions = {}): Promise<TarBlob> {
    // Legacy docker saves give no blob digest (it equals the diff ID); the diff ID check covers them.
    const blobDigest = layer.digest !== layer.diffId ? layer.digest : undefined;
    return openTarBlob(layer, { blobDigest, tarDigest: layer.diffId, label: `layer ${layer.digest}` }, opts);
}

/** Opens a tar that may be gzip- or zstd-compressed, optionally checking digests. */
export async function openTarBlob(loc: BlobLocation, expect: TarBlobExpectations = {}, opts: TarBlobOptions = {}): Promise<TarBlob> {
    const label = expect.label ?? loc.path;
    if (loc.size === 0) throw new ImageFormatError(`${label} is empty, not a tar archive`);
    // Hashing costs about as much as parsing, so only what will be checked is hashed.
    const blobHash = expect.blobDigest ? createHash("sha256") : undefined;
    const tarHash = expect.tarDigest ? createHash("sha256") : undefined;
    const compression = await sniffCompression(loc);
    let tmp: string | undefined;
    let stages: NodeJS.ReadWriteStream[];
    let source: Readable;
    if (compression === "zstd") {
        tmp = await fs.promises.mkdtemp(path.join(opts.tmpDir ?? os.tmpdir(), "kairos-layer-"));
        source = fs.createReadStream(await decompressZstd(loc, tmp, blobHash));
        stages = [hashTap(tarHash)];
    } else {
        source = rangeStream(loc);
        stages = [hashTap(blobHash), ...(compression === "gzip" ? [createGunzip()] : []), hashTap(tarHash)];
    }
    const last = stages[stages.length - 1] as Transform;
    const done = pipeline([source, ...stages]);
    done.catch(() => undefined); // close() destroys the streams on purpose; verify() reports real failures
    let closed = false;
    return {
        stream: last,
        async verify() {
            await done;
            checkDigest(label, "stored bytes", blobHash, expect.blobDigest);
            checkDigest(label, "uncompressed tar", tarHash, expect.tarDigest);
        },
        async close() {
            if (closed) return;
            closed = true;
            source.destroy();
            if (tmp) await fs.promises.rm(tmp, { recursive: true, force: true });
        },
    };
}

function rangeStream(loc: BlobLocation): Readable {
    return fs.createReadStream(loc.path, { start: loc.offset, end: loc.offset + loc.size - 1 });
}

/** A pass-through that feeds a hash; without one it just passes data on. */
function hashTap(hash: Hash | undefined): Transform {
    return new Transform({
        transform(chunk: Buffer, _encoding, callback) {
            hash?.update(chunk);
            callback(null, chunk);
        },
    });
}

/** Copies the blob out (hashing it on the way) and decompresses it; returns the tar's path. */
async function decompressZstd(loc: BlobLocation, tmp: string, blobHash: Hash | undefined): Promise<string> {
    const blobFile = path.join(tmp, "layer.zst");
    const tarFile = path.join(tmp, "layer.tar");
    await pipeline(rangeStream(loc), hashTap(blobHash), fs.createWriteStream(blobFile));
    await run(["zstd", "-d", "-q", "-f", "-o", tarFile, "--", blobFile]);
    await fs.promises.rm(blobFile);
    return tarFile;
}

function checkDigest(label: string, what: string, hash: Hash | undefined, expected: string | undefined): void {
    if (!hash || !expected) return;
    const actual = `sha256:${hash.digest("hex")}`;
    if (actual !== expected) {
        throw new DigestMismatchError(`${label}: the ${what} hash to ${actual}, not ${expected}; the image is corrupt or was altered`);
    }
}

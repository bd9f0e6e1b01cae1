// openImage over an image archive (an OCI layout tar or a docker save): index.json, nested indexes,
// manifests, configs and docker's manifest.json, all read from one tar indexed in place.
import * as fs from "fs";
import { ImageFormatError, OciImage, openImage } from "../../../provider/toolkit/source/oci-image";
import { TarFormatError } from "../../../provider/toolkit/source/tar-reader";
import { IMAGE_DICTIONARY, dockerArchive, imageArchive } from "../generators/image";
import { FuzzTarget, Scratch, invariant } from "../engine/target";
import type * as fc from "fast-check";

// Options come from the input's length, so an input always replays with the options it crashed with, and
// byte flips keep them; most lengths get the defaults, under which the seeds open.
const OPTIONS: Array<{ arch?: string; tag?: string }> = [
    {}, {}, {}, {}, {}, {}, {}, {},
    { arch: "arm64" }, { arch: "x86_64" }, { arch: "constructor" }, { arch: "__proto__" },
    { tag: "latest" }, { tag: "app:latest" }, { tag: "repo/app:1.0" }, { tag: "toString", arch: "arm64" },
];

function imageTarget(name: string, generator: fc.Arbitrary<Buffer>, describe: string): FuzzTarget {
    return {
        name,
        describe,
        expected: [ImageFormatError, TarFormatError],
        generator,
        dictionary: IMAGE_DICTIONARY,
        maxLength: 256 * 1024,
        async run(input: Buffer, scratch: Scratch) {
            const file = scratch.fresh("image.tar");
            fs.writeFileSync(file, input);
            try {
                const image = await openImage(file, OPTIONS[(input.length >> 9) % OPTIONS.length]);
                checkImage(image, input.length);
            } finally {
                fs.rmSync(file, { force: true });
            }
        },
    };
}

/** What callers of openImage rely on: types as declared, and layer bytes inside the archive. */
function checkImage(image: OciImage, archiveSize: number): void {
    invariant(typeof image.architecture === "string" && typeof image.os === "string", `platform ${String(image.architecture)}/${String(image.os)} is not made of strings`);
    invariant(Array.isArray(image.names) && image.names.every((n) => typeof n === "string"), `names ${JSON.stringify(image.names)} are not strings`);
    invariant(/^sha256:[0-9a-f]{64}$/.test(image.configDigest), `config digest ${image.configDigest}`);
    invariant(image.layers.length === image.config.rootfs.diff_ids.length, "layer count differs from diff_ids");
    for (const l of image.layers) {
        invariant(typeof l.digest === "string" && typeof l.diffId === "string" && /^sha256:[0-9a-f]{64}$/.test(l.diffId), `layer ids ${String(l.digest)} ${String(l.diffId)}`);
        invariant(Number.isSafeInteger(l.offset) && Number.isSafeInteger(l.size) && l.offset >= 0 && l.size >= 0, `layer range ${l.offset}+${l.size}`);
        invariant(l.offset + l.size <= archiveSize, `layer ${l.digest} (${l.offset}+${l.size}) lies past the end of a ${archiveSize}-byte archive`);
    }
}

export const ociArchiveTarget = imageTarget("oci-archive", imageArchive, "openImage over OCI layout tars (index.json, nested indexes, manifests, configs)");
export const dockerSaveTarget = imageTarget("docker-save", dockerArchive, "openImage over docker save archives (manifest.json, <hex>.json configs, layer links)");

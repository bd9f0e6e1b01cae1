// Every crash the fuzzer found, kept as a regression: the inputs in test/fuzz/regressions/<target>/ are
// replayed through their target (they must give a result or the parser's own error), and the crashes
// whose inputs are clearer built than stored are named cases below.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { outcomeOf, describeError } from "./engine/campaign";
import { TARGETS, targetByName } from "./targets";
import { samplePeImage } from "./generators/pe";
import { PeError, authenticodeRegions, parsePeHeaders, readPeSections, readSectionData } from "../../provider/toolkit/boot/pe";
import { AuthenticodeError, imageDigestOfSignature } from "../../provider/toolkit/boot/authenticode";
import { ExistingKeySetError, authPayload } from "../../provider/toolkit/keys/key-set-reader";
import { ImageFormatError, normalizeArch, openImage } from "../../provider/toolkit/source/oci-image";
import { SignatureListFormatError, parseSignatureLists } from "../../provider/toolkit/keys/efi-signature-list";
import { buildImage, buildTar, makeLayer, sha256 } from "../helpers/oci-fixtures";
import { tempDir } from "../helpers/temp";
import { extractLayers } from "../../provider/toolkit/source/layer-extract";
import { gzipSync } from "zlib";

const REGRESSIONS = path.join(__dirname, "regressions");

// Offsets in samplePeImage's layout (PE header at 0x80, PE32+ optional header at 0x98, sections at 0x188).
const SIZE_OF_HEADERS = 0x98 + 60;
const FIRST_SECTION_VIRTUAL_SIZE = 0x188 + 8;

function peFile(dir: string, patch: (image: Buffer) => void): string {
    const image = samplePeImage([{ name: ".sdmagic", data: Buffer.from("#### LoaderInfo: systemd-stub 252 ####") }]);
    patch(image);
    const file = path.join(dir, `image-${Math.random().toString(36).slice(2)}.efi`);
    fs.writeFileSync(file, image);
    return file;
}

describe("fuzzing regressions", () => {
    describe("stored inputs", () => {
        const dirs = fs.existsSync(REGRESSIONS) ? fs.readdirSync(REGRESSIONS).sort() : [];
        for (const name of dirs) {
            const target = TARGETS.find((t) => t.name === name);
            it(`${name}: every stored input is refused or accepted, never a crash`, async () => {
                assert.ok(target, `test/fuzz/regressions/${name} names no fuzz target`);
                const dir = tempDir(`fuzz-regression-${name}`);
                let n = 0;
                for (const file of fs.readdirSync(path.join(REGRESSIONS, name)).sort()) {
                    const input = fs.readFileSync(path.join(REGRESSIONS, name, file));
                    const outcome = await outcomeOf(targetByName(name), input, { dir, fresh: (base) => path.join(dir, `${base}-${n++}`) });
                    assert.notStrictEqual(outcome.kind, "crash", `${name}/${file}: ${outcome.kind === "crash" ? describeError(outcome.error) : ""}`);
                }
            });
        }
    });

    describe("authenticode DER", () => {
        it("a ContentInfo without content is refused, not a TypeError", () => {
            assert.throws(() => imageDigestOfSignature(Buffer.from("3003020101", "hex")), AuthenticodeError);
        });

        it("BER indefinite lengths and length fields past the end are refused", () => {
            assert.throws(() => imageDigestOfSignature(Buffer.from("30800000", "hex")), /indefinite|length form/);
            assert.throws(() => imageDigestOfSignature(Buffer.from("3084ff", "hex")), /past the end/);
        });
    });

    describe("EFI signature lists", () => {
        it("a SignatureHeaderSize that runs past the end of its list is refused, not read as an empty list", () => {
            const list = Buffer.alloc(28);
            list.writeUInt32LE(28, 16); // the list is only its header...
            list.writeUInt32LE(16, 20); // ...yet claims 16 bytes of signature header after it
            list.writeUInt32LE(16, 24);
            assert.throws(() => parseSignatureLists(list), SignatureListFormatError);
        });
    });

    describe("EFI variable authentication header", () => {
        it("a file shorter than the header is refused, not a RangeError", () => {
            assert.throws(() => authPayload(Buffer.alloc(4)), ExistingKeySetError);
        });

        it("a WIN_CERTIFICATE length past the end of the file is refused rather than read as an empty payload", () => {
            const auth = Buffer.alloc(28);
            auth.writeUInt32LE(0xffffffff, 16);
            assert.throws(() => authPayload(auth), /past the end/);
        });
    });

    describe("PE reader", () => {
        it("a SizeOfHeaders past the end of the file is refused before the digest pads gigabytes of zeros", () => {
            const file = peFile(tempDir("fuzz-pe"), (b) => b.writeUInt32LE(0x7ffffe00, SIZE_OF_HEADERS));
            assert.throws(() => authenticodeRegions(readPeSections(file)), PeError);
        });

        it("a SizeOfHeaders that ends inside the headers is refused instead of hashing a negative region", () => {
            const file = peFile(tempDir("fuzz-pe"), (b) => b.writeUInt32LE(0x10, SIZE_OF_HEADERS));
            assert.throws(() => authenticodeRegions(readPeSections(file)), /SizeOfHeaders/);
        });

        it("a section VirtualSize of 2 GiB is refused instead of allocated", () => {
            const file = peFile(tempDir("fuzz-pe"), (b) => b.writeUInt32LE(0x7fffffff, FIRST_SECTION_VIRTUAL_SIZE));
            assert.throws(() => readSectionData(file, readPeSections(file), ".sdmagic"), /VirtualSize/);
        });

        it("an optional header cut off by the end of the headers is refused, not read past the buffer", () => {
            const head = Buffer.alloc(0x40 + 24);
            head.write("MZ", 0, "latin1");
            head.writeUInt32LE(0x40, 0x3c);
            head.write("PE\0\0", 0x40, "latin1");
            assert.throws(() => parsePeHeaders(head, head.length), /no magic/);
            const plus = Buffer.concat([head, Buffer.from([0x0b, 0x02])]);
            plus.writeUInt16LE(2, 0x44 + 16);
            assert.throws(() => parsePeHeaders(plus, plus.length), /no security directory entry/);
        });
    });

    describe("gzip layers", () => {
        it("a corrupt gzip layer is refused as a corrupt image, not with zlib's bare Error", async () => {
            const dir = tempDir("fuzz-gzip");
            const gz = gzipSync(buildTar([{ name: "usr/f", content: "f".repeat(2000) }]));
            gz[12] ^= 0x55;
            const layer = path.join(dir, "layer.tar.gz");
            fs.writeFileSync(layer, gz);
            await assert.rejects(extractLayers([layer], path.join(dir, "target"), { mode: "last" }), (e: unknown) => e instanceof ImageFormatError && /gzip stream is corrupt/.test((e as Error).message));
        });

        it("a gzip layer cut short is refused the same way", async () => {
            const dir = tempDir("fuzz-gzip");
            const layer = path.join(dir, "layer.tar.gz");
            fs.writeFileSync(layer, gzipSync(buildTar([{ name: "f", content: "x" }])).subarray(0, 20));
            await assert.rejects(extractLayers([layer], path.join(dir, "target"), { mode: "last" }), ImageFormatError);
        });
    });

    describe("platform names", () => {
        it("an architecture named like an Object member stays a string (was Object's constructor in messages and results)", () => {
            for (const arch of ["constructor", "__proto__", "toString", "hasOwnProperty"]) assert.strictEqual(normalizeArch(arch), arch);
            assert.strictEqual(normalizeArch("aarch64"), "arm64");
        });
    });

    describe("image JSON nested without bound", () => {
        // 20000 nested arrays: JSON.parse copes, but turning the value into text (a join, a template, a
        // regular expression test) recurses once per level and runs out of stack.
        const DEEP = `${"[".repeat(20000)}${"]".repeat(20000)}`;
        const blob = (text: string) => ({ bytes: Buffer.from(text), digest: sha256(Buffer.from(text)) });

        /** An OCI layout tar with one image whose JSON texts the case edits; the digests always match. */
        async function ociTar(edit: { config?: (c: string) => string; layerMediaType?: string; platform?: string }): Promise<string> {
            const layer = await makeLayer([{ name: "f", content: "f" }], "none");
            const configText = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.diffId] } });
            const config = blob(edit.config ? edit.config(configText) : configText);
            const mediaType = edit.layerMediaType ?? JSON.stringify(layer.mediaType);
            const manifest = blob(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${config.digest}","size":${config.bytes.length}},"layers":[{"mediaType":${mediaType},"digest":"${layer.digest}","size":${layer.blob.length}}]}`);
            const platform = edit.platform ? `,"platform":${edit.platform}` : "";
            const index = `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${manifest.digest}","size":${manifest.bytes.length}${platform}}]}`;
            const file = path.join(tempDir("fuzz-deep"), "image.tar");
            fs.writeFileSync(file, buildTar([
                { name: "index.json", content: index },
                ...[config, manifest, { bytes: layer.blob, digest: layer.digest }].map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, content: b.bytes })),
            ]));
            return file;
        }

        it("the case builder makes an image that opens", async () => {
            assert.strictEqual((await openImage(await ociTar({}))).architecture, "amd64");
        });

        it("a config variant nested 20000 deep is refused, not a stack overflow", async () => {
            await assert.rejects(openImage(await ociTar({ config: (c) => c.replace('"os":"linux"', `"os":"linux","variant":${DEEP}`) })), ImageFormatError);
        });

        it("a diff ID nested 20000 deep is refused, not a stack overflow", async () => {
            await assert.rejects(openImage(await ociTar({ config: (c) => c.replace('"diff_ids":[', `"diff_ids":[${DEEP},`) })), ImageFormatError);
        });

        it("a layer mediaType nested 20000 deep is refused, not a stack overflow", async () => {
            await assert.rejects(openImage(await ociTar({ layerMediaType: DEEP })), ImageFormatError);
        });

        it("an index platform whose architecture is nested 20000 deep is refused, not a stack overflow", async () => {
            await assert.rejects(openImage(await ociTar({ platform: `{"architecture":${DEEP},"os":"linux"}` })), ImageFormatError);
        });
    });

    describe("docker save manifest.json", () => {
        async function saveWithRepoTags(repoTags: unknown): Promise<string> {
            const image = buildImage({ layers: [await makeLayer([{ name: "f", content: "f" }], "none")] });
            const hex = image.configDigest.slice(7);
            const entry = { Config: `${hex}.json`, RepoTags: repoTags, Layers: ["l/layer.tar"] };
            const file = path.join(tempDir("fuzz-docker"), "save.tar");
            fs.writeFileSync(file, buildTar([
                { name: `${hex}.json`, content: image.config },
                { name: "l/layer.tar", content: image.layers[0].tar },
                // Two entries of one platform: choosing between them reads the names of both.
                { name: "manifest.json", content: JSON.stringify([entry, { ...entry }]) },
            ]));
            return file;
        }

        it("RepoTags that are not a list are refused, not a TypeError while matching a tag", async () => {
            const file = await saveWithRepoTags(5);
            await assert.rejects(openImage(file, { tag: "latest" }), ImageFormatError);
        });

        it("RepoTags given as one string are refused rather than returned as the image's names", async () => {
            const file = await saveWithRepoTags("app:latest");
            await assert.rejects(openImage(file), /RepoTags/);
        });
    });
});

// Issue 12 ("stream, don't slurp"): the functions that read artifacts a chunk at a time give exactly what
// reading the whole file gives (what the replaced code did). Each reference below reads the whole file;
// the streamed side runs with chunk sizes that are odd and small, so chunk boundaries fall inside
// sections, regions, partitions and markers. Files are a few MB with odd sizes.
import * as assert from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { READ_CHUNK, SCAN_CHUNK, firstMatchInFile, rangesEqual, sha256File, sha256FileIfExists } from "../../provider/toolkit/files";
import { authenticodeDigest, authenticodeRegions, peChecksum, readPeSections } from "../../provider/toolkit/boot/pe";
import { imageDigestOfSignature } from "../../provider/toolkit/boot/authenticode";
import { assembleUki, readLoaderInfo, signEfi } from "../../provider/toolkit/boot/uki";
import { changedRegions } from "../../provider/promoted-artifact";
import { fileWriter, tempDir } from "../helpers/temp";
import { forGeneratedUnsignedImages } from "../helpers/pe-images";
import { makeCertificate } from "../helpers/pki";
import { fakeBzImage } from "../helpers/uki-fixtures";
import { noiseBytes } from "../fuzz/generators/bytes";

const STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const SDBOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/** Deterministic bytes (xorshift32), so a failure can be reproduced. */
const noise = noiseBytes;

/** The Authenticode digest as the old code meant it: the regions of the whole file, zero-extended. */
function wholeBufferAuthenticode(file: string): Buffer {
    const whole = fs.readFileSync(file);
    const { regions, dataSize } = authenticodeRegions(readPeSections(file));
    const padded = Buffer.concat([whole, Buffer.alloc(Math.max(0, dataSize - whole.length))]);
    const hash = createHash("sha256");
    for (const r of regions) hash.update(padded.subarray(r.offset, r.offset + r.size));
    return hash.digest();
}

/** The PE checksum over the whole buffer: 16-bit little-endian words, the field itself skipped. */
function wholeBufferChecksum(file: string, checksumOffset: number): number {
    const b = fs.readFileSync(file);
    let sum = 0;
    for (let i = 0; i < b.length; i += 2) {
        if (i >= checksumOffset && i < checksumOffset + 4) continue;
        sum += i + 1 < b.length ? b.readUInt16LE(i) : b[i];
        sum = (sum & 0xffff) + (sum >>> 16);
    }
    return ((sum & 0xffff) + b.length) >>> 0;
}

describe("streaming reads give the whole-buffer results (issue 12)", function () {
    this.timeout(120000);
    let tmp: string;
    let uki: string;
    const f = fileWriter(() => tmp);

    before(async () => {
        tmp = tempDir("streaming-reads");
        // A UKI of about 3.3 MB: section sizes are odd, so sections end at odd offsets within chunks.
        uki = path.join(tmp, "uki.efi");
        await assembleUki({
            stub: STUB,
            sections: [
                { name: ".osrel", file: f("osrel", 'ID=kairos\nPRETTY_NAME="streamed"\n') },
                { name: ".initrd", file: f("initrd", noise(2_500_003, 7)) },
                { name: ".linux", file: f("vmlinuz", Buffer.concat([fakeBzImage("6.1.0-test", 0x2000), noise(800_001, 8)])) },
            ],
            out: uki,
        });
    });

    describe("pe: authenticodeDigest", () => {
        it("equals the whole-buffer digest for chunk sizes that cut sections and header fields", async () => {
            const ref = wholeBufferAuthenticode(uki);
            for (const chunkBytes of [4093, 65_537, 1_000_003, undefined]) {
                const { digest } = await authenticodeDigest(uki, { chunkBytes });
                assert.ok(digest.equals(ref), `chunkBytes ${chunkBytes}: ${digest.toString("hex")} != ${ref.toString("hex")}`);
            }
        });

        it("equals the whole-buffer digest for images that need zero padding (trailing bytes, an odd size)", async () => {
            const tail = f("uki-tail.efi", Buffer.concat([fs.readFileSync(uki), noise(5, 9)]));
            for (const file of [tail, SDBOOT, STUB]) {
                assert.notStrictEqual(fs.statSync(file).size % 8, 0, `${file} needs padding`);
                const ref = wholeBufferAuthenticode(file);
                // 7-byte reads only on the small binaries: on the 3 MB one they would take seconds
                for (const chunkBytes of file === tail ? [4093, undefined] : [7, 4093, undefined]) {
                    assert.ok((await authenticodeDigest(file, { chunkBytes })).digest.equals(ref), `${file}, chunkBytes ${chunkBytes}`);
                }
            }
        });

        it("equals the whole-buffer digest and checksum for odd layouts (overlapping sections, data past the end)", async () => {
            const file = path.join(tmp, "generated.efi");
            await forGeneratedUnsignedImages(file, { numRuns: 300, seed: 12 }, async (info, chunk) => {
                assert.ok((await authenticodeDigest(file, { chunkBytes: chunk })).digest.equals(wholeBufferAuthenticode(file)));
                const at = info.offsets.checksum;
                assert.strictEqual(await peChecksum(file, at, { chunkBytes: 2 * chunk }), wholeBufferChecksum(file, at));
            });
        });

        it("equals what sbsign signs, with small chunks", async () => {
            const db = await makeCertificate(tmp, "db");
            const signed = path.join(tmp, "sbsigned.efi");
            await signEfi(uki, signed, db.key, db.certificate, { signer: "sbsign" });
            const p7 = path.join(tmp, "sbsigned.p7");
            await run(["sbattach", "--detach", p7, signed]);
            assert.ok(imageDigestOfSignature(fs.readFileSync(p7)).equals((await authenticodeDigest(uki, { chunkBytes: 4093 })).digest));
        });

        it("refuses a file that is shorter than its headers said when it is read", async () => {
            const cut = f("cut.efi", fs.readFileSync(uki));
            // truncated between the header parse and the hashing, as a concurrent writer would; the code reads
            // fs.promises.open from the module object at call time, so patch that object
            const nodeFs: typeof fs = require("fs");
            const open = nodeFs.promises.open;
            nodeFs.promises.open = (async (...args: Parameters<typeof open>) => {
                fs.truncateSync(cut, 2_000_001);
                return open(...args);
            }) as typeof open;
            try {
                await assert.rejects(authenticodeDigest(cut), /cut\.efi ended at byte 2000001 while it was hashed/);
            } finally {
                nodeFs.promises.open = open;
            }
        });
    });

    describe("pe: peChecksum", () => {
        it("equals the whole-buffer checksum for even chunk sizes on odd-sized files", async () => {
            const odd = f("odd.efi", Buffer.concat([fs.readFileSync(uki), noise(fs.statSync(uki).size % 2 === 0 ? 3 : 2, 10)]));
            for (const file of [odd, SDBOOT, STUB]) {
                assert.strictEqual(fs.statSync(file).size % 2, 1, `${file} has an odd size`);
                const at = readPeSections(file).offsets.checksum;
                const ref = wholeBufferChecksum(file, at);
                for (const chunkBytes of [2, 4094, 65_538, undefined]) {
                    if (chunkBytes === 2 && file !== SDBOOT) continue; // 2-byte reads: slow on bigger files, and 4094 cuts the same way
                    assert.strictEqual(await peChecksum(file, at, { chunkBytes }), ref, `${file}, chunkBytes ${chunkBytes}`);
                }
            }
        });

        it("equals the whole-buffer checksum for an odd field offset, a zero file and a file of 0xff bytes", async () => {
            const cases = { odd: [noise(100_001, 12), 217], zeros: [Buffer.alloc(70_000), 64], ones: [Buffer.alloc(70_001, 0xff), 66], tiny: [Buffer.from([1, 2, 3]), 0] } as const;
            for (const [name, [bytes, at]] of Object.entries(cases)) {
                const file = f(`checksum-${name}.bin`, bytes);
                for (const chunkBytes of [2, 4094, undefined]) assert.strictEqual(await peChecksum(file, at, { chunkBytes }), wholeBufferChecksum(file, at), `${name}, chunkBytes ${chunkBytes}`);
            }
        });

        it("refuses an odd chunk size (a 16-bit word would straddle two chunks)", async () => {
            await assert.rejects(peChecksum(SDBOOT, 0, { chunkBytes: 4093 }), /must be even/);
        });
    });

    describe("files: sha256File", () => {
        it("equals the whole-buffer sha256 for empty, small, chunk-sized and odd multi-chunk files", async () => {
            const sizes = [0, 1, 4095, READ_CHUNK - 1, READ_CHUNK, READ_CHUNK + 1, 3_000_017];
            for (const size of sizes) {
                const file = f(`hash-${size}`, noise(size, size + 3));
                const ref = createHash("sha256").update(fs.readFileSync(file)).digest("hex");
                assert.strictEqual(await sha256File(file), ref, `${size} bytes`);
            }
            assert.strictEqual(await sha256File(uki), createHash("sha256").update(fs.readFileSync(uki)).digest("hex"));
        });

        it("reports a missing file as sha256FileIfExists expects, and refuses a directory", async () => {
            assert.strictEqual(await sha256FileIfExists(path.join(tmp, "no-such-file")), undefined);
            await assert.rejects(sha256File(path.join(tmp, "no-such-file")), { code: "ENOENT" });
            await assert.rejects(sha256File(tmp), { code: "EISDIR" });
        });
    });

    describe("files: rangesEqual (PromotedArtifact's partition comparison)", () => {
        let a: string;
        let b: string;
        const whole = (x: string, y: string, r: { offset: number; size: number }) =>
            fs.readFileSync(x).subarray(r.offset, r.offset + r.size).equals(fs.readFileSync(y).subarray(r.offset, r.offset + r.size));

        before(() => {
            const base = noise(3_000_017, 11);
            a = f("a.raw", base);
            const changed = Buffer.from(base);
            for (const at of [READ_CHUNK - 1, READ_CHUNK, 2 * READ_CHUNK + 12_345]) changed[at] ^= 0x40; // on and next to a chunk edge
            b = f("b.raw", changed);
        });

        it("agrees with comparing whole buffers, for ranges inside, across and past the changes and the file end", async () => {
            const ranges = [
                { offset: 0, size: READ_CHUNK - 1 }, // ends just before the first change
                { offset: 0, size: READ_CHUNK }, // holds it as its last byte
                { offset: READ_CHUNK + 1, size: 1_000_000 }, // between changes
                { offset: READ_CHUNK + 1, size: READ_CHUNK + 12_344 }, // up to the third change, not including it
                { offset: READ_CHUNK + 1, size: READ_CHUNK + 12_345 }, // including it
                { offset: 2 * READ_CHUNK + 12_346, size: 5_000_000 }, // past the end of both files
                { offset: 3_500_000, size: 10 }, // wholly past the end
                { offset: 17, size: 0 },
            ];
            for (const r of ranges) {
                const ref = whole(a, b, r);
                for (const chunkBytes of [1021, 65_536, undefined]) {
                    assert.strictEqual(await rangesEqual(a, b, r, { chunkBytes }), ref, `${JSON.stringify(r)}, chunkBytes ${chunkBytes}`);
                }
            }
        });

        it("finds a difference in length inside the range, as Buffer.subarray().equals does", async () => {
            const shorter = f("short.raw", fs.readFileSync(a).subarray(0, 2_999_999));
            for (const r of [{ offset: 2_000_000, size: 2_000_000 }, { offset: 0, size: 2_999_999 }, { offset: 2_999_999, size: 1 }]) {
                const ref = whole(a, shorter, r);
                for (const chunkBytes of [999, undefined]) assert.strictEqual(await rangesEqual(a, shorter, r, { chunkBytes }), ref, JSON.stringify(r));
            }
        });

        it("names the changed partitions as the whole-buffer comparison did", async () => {
            const table = {
                partitions: {
                    root: { name: "root-x86-64", type: "", uuid: "", offset: 0, size: READ_CHUNK },
                    verity: { name: "root-x86-64-verity", type: "", uuid: "", offset: READ_CHUNK + 1, size: 1_000_000 },
                    signature: { name: "root-x86-64-verity-sig", type: "", uuid: "", offset: 2 * READ_CHUNK, size: 16_384 },
                },
            };
            const ref = Object.entries(table.partitions).filter(([, p]) => !whole(a, b, p)).map(([role, p]) => `${role} partition (${p.name})`);
            assert.deepStrictEqual(ref, ["root partition (root-x86-64)", "signature partition (root-x86-64-verity-sig)"]);
            assert.deepStrictEqual(await changedRegions(a, b, table), ref);
            assert.deepStrictEqual(await changedRegions(a, a, table), []);
        });
    });

    describe("files: firstMatchInFile", () => {
        const wholeExec = (file: string, re: RegExp) => re.exec(fs.readFileSync(file).toString("latin1"));
        const same = (got: RegExpExecArray | null, ref: RegExpExecArray | null, what: string) => {
            assert.deepStrictEqual(got && { index: got.index, groups: [...got] }, ref && { index: ref.index, groups: [...ref] }, what);
        };

        it("finds what a whole-buffer exec finds, for markers cut by every kind of chunk edge", () => {
            const marker = "#### LoaderInfo: systemd-stub 257.9-1~deb13u1 ####";
            const re = /#### LoaderInfo: (systemd-[a-z]+) ([^ ]+) ####/;
            for (const at of [0, 1000, SCAN_CHUNK + 4095 - 30, READ_CHUNK - 20, 2_222_222]) {
                const data = noise(2_600_001, at + 1);
                data.write(marker, at, "latin1");
                const file = f(`marker-${at}`, data);
                const ref = wholeExec(file, re);
                assert.strictEqual(ref!.index, at);
                for (const chunkBytes of [1, 13, 4093, 65_537, undefined]) {
                    if (chunkBytes === 1 && at > 1000) continue; // a regex run per byte: slow, and 13 cuts the marker too
                    same(firstMatchInFile(file, re, { maxMatchBytes: 4096, chunkBytes }), ref, `at ${at}, chunkBytes ${chunkBytes}`);
                }
            }
            const none = f("no-marker", noise(1_500_000, 99));
            assert.strictEqual(firstMatchInFile(none, re, { maxMatchBytes: 4096, chunkBytes: 4093 }), null);
        });

        it("takes the longer alternative and the earlier match that a chunk edge cuts, as exec on the whole does", () => {
            // "ab(cd)?" prefers abcd: a window ending after "ab" must not settle for "ab".
            // "a.{3}b|c": a window ending after "a.c" holds the later c whole and only part of the earlier a.c.b.
            const cases: [string, RegExp][] = [["....abcd....", /ab(cd)?/], [`${".".repeat(20)}a.c.b..`, /a.{3}b|c/], ["zzzzqzzz", /q/]];
            for (const [text, re] of cases) {
                const file = f("alt", text);
                for (let chunkBytes = 1; chunkBytes <= text.length + 1; chunkBytes++) {
                    same(firstMatchInFile(file, re, { maxMatchBytes: 5, chunkBytes }), wholeExec(file, re), `${re} in ${text}, chunkBytes ${chunkBytes}`);
                }
            }
        });

        it("agrees with exec on random files, regexes of bounded length and chunk sizes", () => {
            const regexes = [/ab?c/, /(a|bb)c{1,2}/, /c[ab]{2}a/, /b(ab)?/, /aaa|ca/];
            let seed = 1;
            for (let n = 0; n < 400; n++) {
                const bytes = noise(1 + (n % 97), seed++);
                const text = Buffer.from([...bytes].map((x) => "abc".charCodeAt(x % 3)));
                const file = f("random", text);
                const re = regexes[n % regexes.length];
                const chunkBytes = 1 + (bytes[0] % 9);
                same(firstMatchInFile(file, re, { maxMatchBytes: 5, chunkBytes }), wholeExec(file, re), `${re} in ${text.toString()} with chunkBytes ${chunkBytes}`);
            }
        });
    });

    describe("uki: readLoaderInfo on a binary without .sdmagic", () => {
        it("finds the marker where the whole-file search found it, across a window's edge, in a 3 MB image", async () => {
            const stripped = path.join(tmp, "stub-no-sdmagic.efi");
            await run(["objcopy", "--remove-section", ".sdmagic", STUB, stripped]);
            assert.ok(!readPeSections(stripped).sections.some((s) => s.name === ".sdmagic"));
            assert.strictEqual(readLoaderInfo(stripped), undefined, "the stripped stub carries no marker elsewhere");
            const image = path.join(tmp, "uki-no-sdmagic.efi");
            await assembleUki({ stub: stripped, sections: [{ name: ".initrd", file: path.join(tmp, "initrd") }], out: image });
            // Window k of the scan ends at byte SCAN_CHUNK * (k + 1) + 4095: put the marker across the end of
            // window 20, inside .initrd, so that neither window 20 nor any before it holds it whole.
            const at = SCAN_CHUNK * 21 + 4095 - 25;
            const marker = "#### LoaderInfo: systemd-stub 999.1-test ####";
            const fd = fs.openSync(image, "r+");
            fs.writeSync(fd, Buffer.from(marker, "latin1"), 0, marker.length, at);
            fs.closeSync(fd);
            const initrd = readPeSections(image).sections.find((s) => s.name === ".initrd")!;
            assert.ok(at > initrd.pointerToRawData && at + marker.length < initrd.pointerToRawData + initrd.sizeOfRawData);
            const ref = /#### LoaderInfo: (systemd-[a-z]+) ([^ ]+) ####/.exec(fs.readFileSync(image).toString("latin1"));
            assert.deepStrictEqual(readLoaderInfo(image), { component: ref![1], version: ref![2], major: parseInt(ref![2], 10) });
            assert.deepStrictEqual(readLoaderInfo(image), { component: "systemd-stub", version: "999.1-test", major: 999 });
        });
    });
});

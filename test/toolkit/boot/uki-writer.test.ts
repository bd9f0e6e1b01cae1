// The streamed UKI writer (uki-writer.ts) and its one-pass sums (pe-sums.ts) against what they replace:
// objcopy given every section whole followed by normalizePeTimestamp, sbattach writing the signature,
// and the separate file readers authenticodeDigest and peChecksum. Byte for byte, for the host's systemd
// 252 stub (it carries a COFF symbol table after its sections) and the test OS's 257 stub (objcopy
// rewrites its DOS header and moves its sections), with section sizes that are odd and a streamed section
// between small ones.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { authenticodeDigest, authenticodeRegions, normalizePeTimestamp, peChecksum, readPeSections, signedImageDigests } from "../../../provider/toolkit/boot/pe";
import { sha256File } from "../../../provider/toolkit/files";
import { ImageSums, OnesComplementSum } from "../../../provider/toolkit/boot/pe-sums";
import { STREAMED_SECTION_BYTES, attachSignature, writeUkiImage } from "../../../provider/toolkit/boot/uki-writer";
import { authenticodeSignature } from "../../../provider/toolkit/boot/authenticode";
import { planSectionLayout } from "../../../provider/toolkit/boot/uki";
import { systemdTestOsBase } from "../../../scripts/lib/systemd-test-os";
import { fileWriter, tempDir } from "../../helpers/temp";
import { forGeneratedUnsignedImages } from "../../helpers/pe-images";
import { makeCertificate } from "../../helpers/pki";
import { fakeBzImage } from "../../helpers/uki-fixtures";
import { noiseBytes } from "../../fuzz/generators/bytes";

const HOST_STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const SDBOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/** What assembleUki did before the writer: objcopy with every section's real file, then the stub's time stamp and a fresh checksum. */
async function objcopyWhole(stub: string, sections: { name: string; file: string; size: number; virtualAddress: number }[], out: string): Promise<void> {
    const info = readPeSections(stub);
    const argv = ["objcopy"];
    for (const s of sections) {
        argv.push("--add-section", `${s.name}=${s.file}`, "--change-section-vma", `${s.name}=0x${(info.imageBase + BigInt(s.virtualAddress)).toString(16)}`, "--set-section-flags", `${s.name}=data,readonly`);
    }
    await run([...argv, stub, out]);
    await normalizePeTimestamp(out, info.timeDateStamp);
}

/** ImageSums fed `file` in chunks of `chunk` bytes. */
function sumsOf(file: string, chunk: number): ReturnType<ImageSums["finish"]> {
    const info = readPeSections(file);
    const { regions, dataSize } = authenticodeRegions(info);
    const sums = new ImageSums(regions, dataSize);
    const b = fs.readFileSync(file);
    b.fill(0, info.offsets.checksum, info.offsets.checksum + 4); // the writer feeds a zero checksum
    for (let i = 0; i < b.length; i += chunk) sums.update(b.subarray(i, Math.min(b.length, i + chunk)));
    return sums.finish();
}

describe("uki-writer: streamed sections, one pass of sums", function () {
    this.timeout(300000);
    let tmp: string;
    let stubs: { label: string; file: string }[];
    let db: { key: string; certificate: string };
    const f = fileWriter(() => tmp);

    before(async () => {
        tmp = tempDir("uki-writer");
        db = await makeCertificate(tmp, "db");
        stubs = [
            { label: "systemd 252 (host)", file: HOST_STUB },
            { label: "systemd 257 (test OS)", file: path.join(await systemdTestOsBase(), "usr/lib/systemd/boot/efi/linuxx64.efi.stub") },
        ];
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    describe("pe-sums", () => {
        it("OnesComplementSum gives peChecksum's value whatever the parts' offsets, alignment and order", async () => {
            const file = f("noise.bin", noiseBytes(1_000_003, 3));
            const whole = fs.readFileSync(file);
            const at = 0x98; // a checksum offset; its 4 bytes are zeroed for the sum, as the writer feeds them
            const zeroed = Buffer.from(whole);
            zeroed.fill(0, at, at + 4);
            const want = await peChecksum(file, at);
            for (const cut of [1, 2, 3, 4093, 65_536, 999_999]) {
                // the parts added out of order, the second from an odd offset inside a larger buffer
                const copy = Buffer.concat([Buffer.alloc(1), zeroed]).subarray(1);
                const sum = new OnesComplementSum().add(copy.subarray(cut), cut).plus(new OnesComplementSum().add(copy.subarray(0, cut), 0));
                assert.strictEqual(sum.checksum(whole.length), want, `cut at ${cut}`);
            }
            assert.strictEqual(new OnesComplementSum().add(Buffer.alloc(10), 0).checksum(10), 10, "all zeros fold to 0");
            assert.strictEqual(new OnesComplementSum().add(Buffer.from([0xff, 0xff]), 0).folded(), 0xffff, "a nonzero sum never folds to 0");
        });

        it("ImageSums gives authenticodeDigest's digest and peChecksum's sum for the systemd binaries and odd generated images", async () => {
            for (const file of [HOST_STUB, SDBOOT, stubs[1].file]) {
                const info = readPeSections(file);
                for (const chunk of [7, 4096, 1 << 20]) {
                    const got = sumsOf(file, chunk);
                    assert.ok(got.authenticode.equals((await authenticodeDigest(file)).digest), `${file}, chunk ${chunk}`);
                    assert.strictEqual(got.words.checksum(info.fileSize), await peChecksum(file, info.offsets.checksum), `${file}, chunk ${chunk}`);
                }
            }
            const file = path.join(tmp, "generated.efi");
            // ImageSums throws for overlapping regions: the writer never makes those.
            await forGeneratedUnsignedImages(file, { numRuns: 200, seed: 26, accept: ({ regions, dataSize }) => new ImageSums(regions, dataSize) }, async (info, chunk) => {
                const got = sumsOf(file, chunk);
                assert.ok(got.authenticode.equals((await authenticodeDigest(file)).digest));
                assert.strictEqual(got.words.checksum(info.fileSize), await peChecksum(file, info.offsets.checksum));
            });
        });
    });

    describe("writeUkiImage and attachSignature", () => {
        let sections: { name: string; file: string }[];
        before(() => {
            const big = STREAMED_SECTION_BYTES;
            sections = [
                { name: ".osrel", file: f("osrel", 'ID=kairos\nPRETTY_NAME="writer test"\n') },
                { name: ".cmdline", file: f("cmdline", "console=ttyS0 rd.immucore.uki") },
                { name: ".splash", file: f("splash.bmp", Buffer.concat([Buffer.from("BM"), noiseBytes(big + 1001, 4)])) }, // streamed, between small ones
                { name: ".pcrpkey", file: f("pcrpkey", "-----BEGIN PUBLIC KEY-----\nnot parsed here\n-----END PUBLIC KEY-----\n") },
                { name: ".initrd", file: f("initrd", noiseBytes(3 * big + 7, 5)) },
                { name: ".linux", file: f("vmlinuz", Buffer.concat([fakeBzImage("6.12.0-test", 0x2000), noiseBytes(2 * big + 3, 6)])) },
            ];
        });

        for (const which of [0, 1]) {
            it(`writes objcopy's bytes and sbattach's signature, stub ${which === 0 ? "252" : "257"}`, async () => {
                const stub = stubs[which];
                const info = readPeSections(stub.file);
                const sized = sections.map((s) => ({ ...s, size: fs.statSync(s.file).size }));
                const layout = planSectionLayout(info, sized);
                const placed = sized.map((s, i) => ({ ...s, virtualAddress: layout[i].virtualAddress }));
                const ref = path.join(tmp, `ref-${which}.efi`);
                const ours = path.join(tmp, `ours-${which}.efi`);
                await objcopyWhole(stub.file, placed, ref);
                const image = await writeUkiImage(stub.file, info, placed, ours);
                assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(ref)), `${stub.label}: the unsigned image differs from objcopy's`);
                assert.ok(image.authenticode.equals((await authenticodeDigest(ref)).digest), "the digest of what was written");
                assert.deepStrictEqual(image.info, readPeSections(ref));

                const p7 = await authenticodeSignature(image.authenticode, db);
                const p7File = f(`sig-${which}.p7`, p7);
                const attached = path.join(tmp, `sbattach-${which}.efi`);
                fs.copyFileSync(ref, attached);
                await run(["sbattach", "--attach", p7File, attached]);
                await attachSignature(ours, image, p7);
                assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(attached)), `${stub.label}: the signed image differs from sbattach's`);
                await run(["sbverify", "--cert", db.certificate, ours]);

                // The read-back: the file's sha256 and the digest sbverify recomputes, in one pass (odd chunks on purpose).
                const back = await signedImageDigests(ours, { chunkBytes: 65537 });
                assert.strictEqual(back.sha256, await sha256File(ours));
                assert.ok(back.authenticode.equals(image.authenticode), "the read-back digest of the signed file is the signed one");
                const flipped = path.join(tmp, `flipped-${which}.efi`);
                const bytes = fs.readFileSync(ours);
                const initrd = image.info.sections.find((sec) => sec.name === ".initrd")!;
                bytes[initrd.pointerToRawData + 12345] ^= 1;
                fs.writeFileSync(flipped, bytes);
                assert.ok(!(await signedImageDigests(flipped)).authenticode.equals(image.authenticode), "one flipped section byte changes the read-back digest");
                const sbverify = await run(["sbverify", "--cert", db.certificate, flipped], { okCodes: [0, 1] });
                assert.notStrictEqual(sbverify.code, 0, "sbverify refuses the flipped file too");
            });
        }

        it("refuses a stub whose layout objcopy does not keep after the appended sections", async () => {
            const info = readPeSections(HOST_STUB);
            const file = sections[4];
            const size = fs.statSync(file.file).size;
            // An address inside the stub: objcopy sorts the section in among the stub's own, not after them.
            await assert.rejects(writeUkiImage(HOST_STUB, info, [{ ...file, size, virtualAddress: 0x1000 }], path.join(tmp, "bad.efi")), /objcopy laid the UKI out unexpectedly/);
        });
    });
});

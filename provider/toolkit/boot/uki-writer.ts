// Writes a UKI's bytes: objcopy lays the image out, but never sees the large sections. It is given a
// one-byte placeholder for each of them (objcopy copies every byte through BFD: about 5 s for a 300 MB
// initrd, most of a rebuild), and the large sections' bytes are streamed in here, each read once, while
// the image is hashed for its Authenticode digest and PE checksum (pe-sums.ts). The signature is then
// written in place as sbattach writes it (sbsigntool's image_write), so nothing is read back.
//
// What a section's size changes in objcopy's output, and so what is patched here: that section's
// VirtualSize, SizeOfRawData and PointerToRawData, the PointerToRawData of the sections after it,
// SizeOfInitializedData (objcopy sums the file-aligned sizes of data sections), SizeOfImage (the end of
// the last section, section-aligned) and PointerToSymbolTable (a COFF symbol table, as systemd 252's
// stub carries, goes after the sections). Everything else is objcopy's. The tests check the result
// against objcopy given the real sections, byte for byte, for the stubs of systemd 252 and 257.
import * as fs from "fs";
import { run } from "../run";
import { PeError, type PeInfo, align, authenticodeRegions, parsePeHeaders, readPeSections } from "./pe";
import { ImageSums, OnesComplementSum } from "./pe-sums";

/** Sections at least this large go through objcopy as a placeholder and are streamed in here. */
export const STREAMED_SECTION_BYTES = 64 * 1024;
const CHUNK = 1 << 20;
const SECTION_HEADER_SIZE = 40;
/** WIN_CERTIFICATE: dwLength, wRevision 0x0200, wCertificateType PKCS_SIGNED_DATA (2). */
const WIN_CERT_HEADER = 8;
const WIN_CERT_REVISION_2 = 0x0200;
const WIN_CERT_TYPE_PKCS = 0x0002;

export interface SectionToWrite {
    name: string;
    file: string;
    size: number;
    /** RVA, as planned. */
    virtualAddress: number;
}

export interface WrittenImage {
    info: PeInfo;
    /** Authenticode SHA-256 digest of the image as written (what signing signs). */
    authenticode: Buffer;
    /** The checksum word sum of the image as written, with a zero checksum and security directory entry. */
    words: OnesComplementSum;
    fileSize: number;
    /** fileSize rounded up to 8: where the certificate table goes. */
    dataSize: number;
}

/**
 * Writes the unsigned image of `stubFile` (unsigned, parsed as `stub`) with `sections` appended in order
 * at their planned addresses into `out`, with the stub's TimeDateStamp and a correct checksum: the bytes
 * objcopy and normalizePeTimestamp would give.
 */
export async function writeUkiImage(stubFile: string, stub: PeInfo, sections: SectionToWrite[], out: string): Promise<WrittenImage> {
    const layoutFile = `${out}.layout-${process.pid}`;
    const placeholder = `${out}.placeholder-${process.pid}`;
    try {
        fs.writeFileSync(placeholder, "\0");
        const streamed = new Set(sections.filter((s) => s.size >= STREAMED_SECTION_BYTES).map((s) => s.name));
        const argv = ["objcopy"];
        for (const s of sections) {
            const vma = stub.imageBase + BigInt(s.virtualAddress);
            argv.push(
                "--add-section", `${s.name}=${streamed.has(s.name) ? placeholder : s.file}`,
                "--change-section-vma", `${s.name}=0x${vma.toString(16)}`,
                "--set-section-flags", `${s.name}=data,readonly`,
            );
        }
        argv.push(stubFile, layoutFile);
        await run(argv);
        const laid = fs.readFileSync(layoutFile); // the stub and the small sections: a few hundred KB
        const plan = patchLayout(laid, readPeSections(layoutFile), stub, sections, streamed);
        return await writeImage(out, laid, plan, sections, streamed);
    } finally {
        fs.rmSync(layoutFile, { force: true });
        fs.rmSync(placeholder, { force: true });
    }
}

interface Plan {
    /** The final headers, up to the first streamed section's data. */
    head: Buffer;
    info: PeInfo;
    /** Per appended section: where its data lies in objcopy's output and in the final image. */
    placed: { name: string; laidOffset: number; laidRaw: number; offset: number; raw: number }[];
    /** objcopy's bytes after the appended sections (the symbol table, if any): [from, to) of its output. */
    tail: { from: number; to: number };
}

/** The final headers from objcopy's (see the header comment for which fields change), checked as it goes. */
function patchLayout(laid: Buffer, laidInfo: PeInfo, stub: PeInfo, sections: SectionToWrite[], streamed: Set<string>): Plan {
    const fail = (why: string): never => {
        throw new PeError(`objcopy laid the UKI out unexpectedly (${why}); the large sections cannot be streamed into it`);
    };
    const appended = laidInfo.sections.slice(laidInfo.sections.length - sections.length);
    if (laidInfo.sections.length !== stub.sections.length + sections.length) fail("section count");
    const fa = laidInfo.fileAlignment;
    const sa = laidInfo.sectionAlignment;
    const head = Buffer.from(laid.subarray(0, laidInfo.sizeOfHeaders));
    const peOff = head.readUInt32LE(0x3c);
    const coff = peOff + 4;
    const opt = coff + 20;
    const table = opt + head.readUInt16LE(coff + 16);
    const placed: Plan["placed"] = [];
    let shift = 0;
    let expectNext = appended[0].pointerToRawData;
    for (const [i, s] of sections.entries()) {
        const got = appended[i];
        if (got.name !== s.name || got.virtualAddress !== s.virtualAddress) fail(`${s.name} at 0x${got.virtualAddress.toString(16)} named ${got.name}`);
        if (got.pointerToRawData !== expectNext) fail(`${s.name}'s data does not follow the previous section's`);
        expectNext = got.pointerToRawData + got.sizeOfRawData;
        const raw = align(s.size, fa);
        const want = streamed.has(s.name) ? 1 : s.size;
        if (got.virtualSize !== want || got.sizeOfRawData !== align(want, fa)) fail(`${s.name} is ${got.virtualSize} bytes`);
        const h = table + (stub.sections.length + i) * SECTION_HEADER_SIZE;
        head.writeUInt32LE(s.size, h + 8);
        head.writeUInt32LE(raw, h + 16);
        head.writeUInt32LE(got.pointerToRawData + shift, h + 20);
        placed.push({ name: s.name, laidOffset: got.pointerToRawData, laidRaw: got.sizeOfRawData, offset: got.pointerToRawData + shift, raw });
        shift += raw - got.sizeOfRawData;
    }
    const laidEnd = expectNext;
    for (const s of laidInfo.sections.slice(0, stub.sections.length)) {
        if (s.pointerToRawData + s.sizeOfRawData > appended[0].pointerToRawData) fail(`the stub's ${s.name} lies after the appended sections`);
    }
    // Fields that follow from the sizes.
    head.writeUInt32LE((head.readUInt32LE(opt + 8) + shift) >>> 0, opt + 8); // SizeOfInitializedData
    let end = 0;
    for (const s of sections) end = Math.max(end, align(s.virtualAddress + s.size, sa));
    head.writeUInt32LE(Math.max(laidInfo.sizeOfImage, end), opt + 56); // SizeOfImage
    const symbols = head.readUInt32LE(coff + 8); // PointerToSymbolTable
    if (symbols !== 0) {
        if (symbols < laidEnd) fail("the symbol table lies before the appended sections");
        head.writeUInt32LE(symbols + shift, coff + 8);
    }
    // As normalizePeTimestamp leaves it: the stub's time stamp; the checksum is filled in after writing.
    head.writeUInt32LE(stub.timeDateStamp >>> 0, laidInfo.offsets.timeDateStamp);
    head.writeUInt32LE(0, laidInfo.offsets.checksum);
    if (head.readUInt32LE(laidInfo.offsets.certificateTableEntry) !== 0 || head.readUInt32LE(laidInfo.offsets.certificateTableEntry + 4) !== 0) fail("it has a security directory");
    const fileSize = laid.length + shift;
    return { head, info: parsePeHeaders(head, fileSize, "UKI"), placed, tail: { from: laidEnd, to: laid.length } };
}

async function writeImage(out: string, laid: Buffer, plan: Plan, sections: SectionToWrite[], streamed: Set<string>): Promise<WrittenImage> {
    const { regions, dataSize } = authenticodeRegions(plan.info);
    const sums = new ImageSums(regions, dataSize);
    const fh = await fs.promises.open(out, "w");
    try {
        const put = async (b: Buffer) => {
            sums.update(b);
            let done = 0;
            while (done < b.length) done += (await fh.write(b, done, b.length - done, null)).bytesWritten;
        };
        await put(plan.head);
        await put(laid.subarray(plan.info.sizeOfHeaders, plan.placed[0].laidOffset));
        const buf = Buffer.allocUnsafe(CHUNK);
        for (const [i, p] of plan.placed.entries()) {
            if (sums.position !== p.offset) throw new PeError(`${p.name} would be written at ${sums.position}, planned at ${p.offset}`);
            if (!streamed.has(p.name)) {
                await put(laid.subarray(p.laidOffset, p.laidOffset + p.laidRaw));
                continue;
            }
            const src = await fs.promises.open(sections[i].file, "r");
            try {
                let done = 0;
                while (done < sections[i].size) {
                    const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, sections[i].size - done), done);
                    if (bytesRead === 0) throw new PeError(`${sections[i].file} ended at byte ${done} of ${sections[i].size} (changed meanwhile?)`);
                    await put(buf.subarray(0, bytesRead));
                    done += bytesRead;
                }
            } finally {
                await src.close();
            }
            if (p.raw > sections[i].size) await put(Buffer.alloc(p.raw - sections[i].size));
        }
        await put(laid.subarray(plan.tail.from, plan.tail.to));
        const fileSize = sums.position;
        if (fileSize !== plan.info.fileSize) throw new PeError(`the UKI came out at ${fileSize} bytes, planned ${plan.info.fileSize}`);
        const done = sums.finish();
        const checksum = done.words.checksum(fileSize);
        const cs = Buffer.alloc(4);
        cs.writeUInt32LE(checksum, 0);
        await fh.write(cs, 0, 4, plan.info.offsets.checksum);
        return { info: { ...plan.info, checksum }, authenticode: done.authenticode, words: done.words, fileSize, dataSize: done.dataSize };
    } finally {
        await fh.close();
    }
}

/**
 * Writes an Authenticode signature (DER PKCS#7) into the unsigned image `file` as sbattach does: zero
 * padding to `dataSize`, then the certificate table (WIN_CERTIFICATE, padded to 8), the security directory
 * entry pointing at it and the checksum over the whole, signature included. `image` is what writeUkiImage
 * returned for this file.
 */
export async function attachSignature(file: string, image: WrittenImage, p7: Buffer): Promise<void> {
    const certLength = WIN_CERT_HEADER + p7.length;
    const table = Buffer.alloc(align(certLength, 8));
    table.writeUInt32LE(certLength, 0);
    table.writeUInt16LE(WIN_CERT_REVISION_2, 4);
    table.writeUInt16LE(WIN_CERT_TYPE_PKCS, 6);
    p7.copy(table, WIN_CERT_HEADER);
    const entry = Buffer.alloc(8);
    entry.writeUInt32LE(image.dataSize, 0);
    entry.writeUInt32LE(table.length, 4);
    const words = image.words
        .plus(new OnesComplementSum().add(entry, image.info.offsets.certificateTableEntry))
        .plus(new OnesComplementSum().add(table, image.dataSize));
    const cs = Buffer.alloc(4);
    cs.writeUInt32LE(words.checksum(image.dataSize + table.length), 0);
    const fh = await fs.promises.open(file, "r+");
    try {
        if ((await fh.stat()).size !== image.fileSize) throw new PeError(`${file} changed size since it was written`);
        const tail = Buffer.concat([Buffer.alloc(image.dataSize - image.fileSize), table]);
        await fh.write(tail, 0, tail.length, image.fileSize);
        await fh.write(entry, 0, 8, image.info.offsets.certificateTableEntry);
        await fh.write(cs, 0, 4, image.info.offsets.checksum);
    } finally {
        await fh.close();
    }
}

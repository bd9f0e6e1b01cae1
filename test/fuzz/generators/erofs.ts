// erofs images: a seed image from mkfs.erofs (from the corpus) with fields overwritten where the reader
// takes its offsets and counts: the superblock (block size, block count, metadata start, root inode,
// feature bits), inode slots (format, mode, size, xattr count, first block) and directory blocks.
import * as fc from "fast-check";
import * as fs from "fs";
import * as path from "path";

const CORPUS = path.join(__dirname, "..", "corpus", "erofs");

/** Superblock fields by offset within the image, with their widths. */
const SUPERBLOCK_FIELDS: Array<[number, 1 | 2 | 4]> = [
    [1024 + 8, 4], [1024 + 12, 1], [1024 + 14, 2], [1024 + 36, 4], [1024 + 40, 4], [1024 + 80, 4], [1024 + 86, 2], [1024 + 90, 1],
];

const INTERESTING = [0, 1, 2, 7, 8, 9, 12, 16, 17, 0x20, 0x41ed, 0x7f, 0x80, 0xff, 0xfff, 0x1000, 0xffff, 0x7fffffff, 0xffffffff];

const patch = fc.record({
    where: fc.oneof(
        { weight: 2, arbitrary: fc.constantFrom(...SUPERBLOCK_FIELDS) },
        { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 0, max: 16 * 1024 }), fc.constantFrom<1 | 2 | 4>(1, 2, 4)) },
    ),
    value: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 0xffffffff })),
});

let seeds: Buffer[] | undefined;
function seedImages(): Buffer[] {
    seeds ??= fs.existsSync(CORPUS) ? fs.readdirSync(CORPUS).sort().map((f) => fs.readFileSync(path.join(CORPUS, f))) : [];
    return seeds.length > 0 ? seeds : [Buffer.alloc(4096)];
}

export const erofsImage: fc.Arbitrary<Buffer> = fc
    .tuple(fc.nat(), fc.array(patch, { minLength: 1, maxLength: 4 }))
    .map(([which, patches]) => {
        const all = seedImages();
        const image = Buffer.from(all[which % all.length]);
        for (const { where: [offset, width], value } of patches) {
            if (offset + width > image.length) continue;
            if (width === 1) image.writeUInt8(value & 0xff, offset);
            else if (width === 2) image.writeUInt16LE(value & 0xffff, offset);
            else image.writeUInt32LE(value >>> 0, offset);
        }
        return image;
    });

export const EROFS_DICTIONARY = [Buffer.from([0xe2, 0xe1, 0xf5, 0xe0]), Buffer.from("extension-release."), Buffer.from([0xed, 0x41]), Buffer.from([0x0c])];

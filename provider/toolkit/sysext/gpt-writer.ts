// The image's partition table as bytes: protective MBR, primary GPT header and entries, and the backup
// entries and header at the end of the disk, exactly as sfdisk (util-linux 2.38) writes them for
// sfdiskScript's input. Writing them in-process saves an sfdisk run per build; the bytes must equal
// sfdisk's (test/toolkit/sysext/gpt-writer.test.ts compares the whole image), so images do not change.
import { crc32 } from "zlib";
import { DdiError, FIRST_LBA, GptEntry, SECTOR_SIZE } from "./ddi-layout";

const ENTRY_COUNT = 128;
const ENTRY_SIZE = 128;
const HEADER_SIZE = 92;
/** The 128 entries take 32 sectors. */
const ENTRY_SECTORS = (ENTRY_COUNT * ENTRY_SIZE) / SECTOR_SIZE;
/** Bit 60 (read-only) of the entry attributes; sfdiskScript's attrs="GUID:60". */
const READ_ONLY_ATTR = 1n << 60n;
const NAME_BYTES = 72;

export interface GptBytes {
    /** Written at offset 0: protective MBR, primary header, entries (34 sectors). */
    head: Buffer;
    /** Written at `tailOffset`: backup entries, then the backup header in the disk's last sector (33 sectors). */
    tail: Buffer;
    tailOffset: number;
}

/** The GPT of a disk of `diskSize` bytes with `entries` in order, as sfdisk writes it. */
export function gptBytes(diskGuid: string, entries: GptEntry[], diskSize: number): GptBytes {
    if (diskSize % SECTOR_SIZE !== 0) throw new DdiError(`disk size ${diskSize} is not a whole number of sectors`);
    if (entries.length > ENTRY_COUNT) throw new DdiError(`a GPT holds at most ${ENTRY_COUNT} partitions`);
    const sectors = diskSize / SECTOR_SIZE;
    const lastLba = sectors - 1;
    const lastUsable = lastLba - ENTRY_SECTORS - 1;
    const entryArray = Buffer.alloc(ENTRY_COUNT * ENTRY_SIZE);
    entries.forEach((e, i) => {
        const end = e.slot.startSector + e.slot.sectors - 1;
        if (e.slot.startSector < FIRST_LBA || end > lastUsable) throw new DdiError(`partition ${e.name} (sectors ${e.slot.startSector}-${end}) lies outside ${FIRST_LBA}-${lastUsable}`);
        const at = i * ENTRY_SIZE;
        guidBytes(e.type).copy(entryArray, at);
        guidBytes(e.uuid).copy(entryArray, at + 16);
        entryArray.writeBigUInt64LE(BigInt(e.slot.startSector), at + 32);
        entryArray.writeBigUInt64LE(BigInt(end), at + 40);
        entryArray.writeBigUInt64LE(READ_ONLY_ATTR, at + 48);
        const name = Buffer.from(e.name, "utf16le");
        if (name.length > NAME_BYTES) throw new DdiError(`partition name '${e.name}' is longer than 36 UTF-16 units`);
        name.copy(entryArray, at + 56);
    });
    const entriesCrc = crc32(entryArray);
    const header = (current: number, backup: number, entriesLba: number): Buffer => {
        const h = Buffer.alloc(SECTOR_SIZE);
        h.write("EFI PART", 0, "latin1");
        h.writeUInt32LE(0x00010000, 8); // revision 1.0
        h.writeUInt32LE(HEADER_SIZE, 12);
        h.writeBigUInt64LE(BigInt(current), 24);
        h.writeBigUInt64LE(BigInt(backup), 32);
        h.writeBigUInt64LE(BigInt(FIRST_LBA), 40);
        h.writeBigUInt64LE(BigInt(lastUsable), 48);
        guidBytes(diskGuid).copy(h, 56);
        h.writeBigUInt64LE(BigInt(entriesLba), 72);
        h.writeUInt32LE(ENTRY_COUNT, 80);
        h.writeUInt32LE(ENTRY_SIZE, 84);
        h.writeUInt32LE(entriesCrc, 88);
        h.writeUInt32LE(crc32(h.subarray(0, HEADER_SIZE)), 16); // over the header with its own CRC field zero
        return h;
    };
    const head = Buffer.concat([protectiveMbr(sectors), header(1, lastLba, 2), entryArray]);
    const tail = Buffer.concat([entryArray, header(lastLba, 1, lastLba - ENTRY_SECTORS)]);
    return { head, tail, tailOffset: diskSize - tail.length };
}

/** One 0xEE partition over the whole disk (capped at 2^32-1 sectors), CHS 0/0/2 to the 0xFFFFFF "too big" marker. */
function protectiveMbr(sectors: number): Buffer {
    const mbr = Buffer.alloc(SECTOR_SIZE);
    const p = 446;
    mbr.writeUInt8(0x00, p); // not bootable
    mbr.writeUInt8(0x00, p + 1); // start head
    mbr.writeUInt8(0x02, p + 2); // start sector
    mbr.writeUInt8(0x00, p + 3); // start cylinder
    mbr.writeUInt8(0xee, p + 4); // GPT protective
    mbr.writeUInt8(0xff, p + 5);
    mbr.writeUInt8(0xff, p + 6);
    mbr.writeUInt8(0xff, p + 7);
    mbr.writeUInt32LE(1, p + 8);
    mbr.writeUInt32LE(Math.min(sectors - 1, 0xffffffff), p + 12);
    mbr.writeUInt16LE(0xaa55, 510);
    return mbr;
}

/** A GUID's on-disk form: the first three fields little-endian, the rest as written. */
export function guidBytes(uuid: string): Buffer {
    const hex = uuid.replace(/-/g, "");
    if (!/^[0-9a-fA-F]{32}$/.test(hex) || !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(uuid)) {
        throw new DdiError(`'${uuid}' is not a GUID`);
    }
    const b = Buffer.from(hex, "hex");
    b.subarray(0, 4).reverse();
    b.subarray(4, 6).reverse();
    b.subarray(6, 8).reverse();
    return b;
}

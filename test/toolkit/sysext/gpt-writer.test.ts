// The in-process GPT against sfdisk given sfdiskScript's input: the same bytes in every sector.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { readAt, writeAt } from "../../../provider/toolkit/files";
import { DdiArchitecture, GptEntry, gptLayout, PARTITION_TYPES, partitionNames, seededUuid, SECTOR_SIZE, sfdiskScript } from "../../../provider/toolkit/sysext/ddi-layout";
import { gptBytes, guidBytes } from "../../../provider/toolkit/sysext/gpt-writer";
import { tempDir } from "../../helpers/temp";

function entriesFor(arch: DdiArchitecture, sizes: number[], seed: string): { entries: GptEntry[]; diskSize: number } {
    const { slots, diskSize } = gptLayout(sizes);
    const types = PARTITION_TYPES[arch];
    const names = partitionNames(arch);
    const kinds = ["root", "verity", "signature"] as const;
    return { entries: slots.map((slot, i) => ({ slot, type: types[kinds[i]], uuid: seededUuid(seed, kinds[i]), name: names[kinds[i]] })), diskSize };
}

async function sfdiskImage(file: string, diskGuid: string, entries: GptEntry[], diskSize: number): Promise<void> {
    fs.rmSync(file, { force: true });
    fs.writeFileSync(file, "");
    fs.truncateSync(file, diskSize);
    await run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never", "--wipe-partitions", "never", file], { input: sfdiskScript(diskGuid, entries) });
}

describe("toolkit/sysext/gpt-writer: the partition table sfdisk writes", function () {
    let dir: string;
    before(() => (dir = tempDir("gpt-writer")));

    const cases: [string, DdiArchitecture, number[]][] = [
        ["a signed x86-64 image of one data block", "x86-64", [4096, 8192, 16384]],
        ["a signed 70 MB image", "x86-64", [73404416, 585728, 16384]],
        ["an unsigned arm64 image", "arm64", [1 << 20, 12288]],
        ["an image whose end needs rounding to 4 KiB", "x86-64", [4096 * 77, 4096 * 3, 16384]],
    ];
    for (const [label, arch, sizes] of cases) {
        it(`matches sfdisk byte for byte: ${label}`, async function () {
            const seed = `gpt-test:${label}`;
            const { entries, diskSize } = entriesFor(arch, sizes, seed);
            const theirs = path.join(dir, "sfdisk.img");
            await sfdiskImage(theirs, seededUuid(seed, "disk"), entries, diskSize);
            const ours = path.join(dir, "ours.img");
            fs.rmSync(ours, { force: true });
            fs.writeFileSync(ours, "");
            fs.truncateSync(ours, diskSize);
            const gpt = gptBytes(seededUuid(seed, "disk"), entries, diskSize);
            writeAt(ours, 0, gpt.head);
            writeAt(ours, gpt.tailOffset, gpt.tail);
            assert.equal(fs.statSync(ours).size, fs.statSync(theirs).size);
            assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(theirs)), "the images differ");
        });
    }

    it("caps the protective MBR at 2^32-1 sectors on a disk past 2 TiB, as sfdisk does", async function () {
        const seed = "gpt-test:huge";
        const { entries, diskSize } = entriesFor("x86-64", [2 ** 42, 8192, 16384], seed); // 4 TiB, sparse
        const theirs = path.join(dir, "huge-sfdisk.img");
        await sfdiskImage(theirs, seededUuid(seed, "disk"), entries, diskSize);
        const gpt = gptBytes(seededUuid(seed, "disk"), entries, diskSize);
        try {
            assert.ok(readAt(theirs, 0, gpt.head.length).equals(gpt.head), "the heads differ");
            assert.ok(readAt(theirs, gpt.tailOffset, gpt.tail.length).equals(gpt.tail), "the tails differ");
            assert.equal(gpt.head.readUInt32LE(446 + 12), 0xffffffff);
        } finally {
            fs.rmSync(theirs, { force: true });
        }
    });

    it("stores GUIDs mixed-endian and refuses malformed ones and partitions outside the usable area", function () {
        assert.equal(guidBytes("4f68bce3-e8cd-4db1-96e7-fbcaf984b709").toString("hex"), "e3bc684fcde8b14d96e7fbcaf984b709");
        assert.throws(() => guidBytes("4f68bce3e8cd4db196e7fbcaf984b709"), /not a GUID/);
        const { entries, diskSize } = entriesFor("x86-64", [4096, 4096], "x");
        assert.throws(() => gptBytes(seededUuid("x", "disk"), entries, diskSize - 8 * SECTOR_SIZE), /outside/);
    });
});

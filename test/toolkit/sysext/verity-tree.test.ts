// The in-process dm-verity hash area against `veritysetup format` itself: same superblock, same tree,
// same root hash, byte for byte, for sizes around every level boundary.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { levelCount, VERITY_BLOCK_SIZE, VerityHasher } from "../../../provider/toolkit/sysext/verity-tree";
import { tempDir } from "../../helpers/temp";

const SALT = "5a".repeat(32);
const UUID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

/** Blocks of varied, non-repeating bytes (a repeated block would hide a block-order mistake). */
function data(blocks: number): Buffer {
    const b = Buffer.alloc(blocks * VERITY_BLOCK_SIZE);
    for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 12)) >>> 0, i);
    return b;
}

async function veritysetupFormat(dir: string, content: Buffer, salt: string): Promise<{ hashArea: Buffer; rootHash: string }> {
    const files = { data: path.join(dir, "data"), hash: path.join(dir, "hash"), rootHash: path.join(dir, "roothash") };
    fs.writeFileSync(files.data, content);
    fs.rmSync(files.hash, { force: true });
    await run(["veritysetup", "format", files.data, files.hash, "--hash=sha256", `--data-block-size=${VERITY_BLOCK_SIZE}`, `--hash-block-size=${VERITY_BLOCK_SIZE}`, `--salt=${salt}`, `--uuid=${UUID}`, `--root-hash-file=${files.rootHash}`]);
    return { hashArea: fs.readFileSync(files.hash), rootHash: fs.readFileSync(files.rootHash, "utf8").trim() };
}

describe("toolkit/sysext/verity-tree: the hash area veritysetup format writes", function () {
    let dir: string;
    before(() => (dir = tempDir("verity-tree")));

    it("counts levels as cryptsetup does", function () {
        assert.deepEqual([1, 2, 128, 129, 16384, 16385].map(levelCount), [0, 1, 1, 2, 2, 3]);
    });

    // 1: no levels at all; 127/128/129: one level full and one over; 16385: three levels; odd counts throughout.
    for (const blocks of [1, 2, 3, 127, 128, 129, 1001, 16384, 16385, 16384 + 3 * 128 + 7]) {
        it(`matches veritysetup byte for byte for ${blocks} data block(s)`, async function () {
            const content = data(blocks);
            const theirs = await veritysetupFormat(dir, content, SALT);
            const hasher = new VerityHasher({ salt: SALT, uuid: UUID });
            // Fed in uneven whole-block pieces, as the build's reads arrive.
            for (let at = 0, piece = 1; at < content.length; at += piece * VERITY_BLOCK_SIZE, piece = (piece % 5) + 1) {
                hasher.update(content.subarray(at, Math.min(content.length, at + piece * VERITY_BLOCK_SIZE)));
            }
            const ours = hasher.finish();
            assert.equal(ours.rootHash, theirs.rootHash);
            assert.equal(ours.hashArea.length, theirs.hashArea.length);
            assert.ok(ours.hashArea.equals(theirs.hashArea), "the hash areas differ");
        });
    }

    it("uses the salt and its length as veritysetup does (a short salt)", async function () {
        const content = data(300);
        const theirs = await veritysetupFormat(dir, content, "c0ffee");
        const hasher = new VerityHasher({ salt: "c0ffee", uuid: UUID });
        hasher.update(content);
        const ours = hasher.finish();
        assert.equal(ours.rootHash, theirs.rootHash);
        assert.ok(ours.hashArea.equals(theirs.hashArea));
    });

    it("refuses partial blocks, no data and a malformed salt", function () {
        assert.throws(() => new VerityHasher({ salt: SALT, uuid: UUID }).update(Buffer.alloc(100)), /whole 4096-byte blocks/);
        assert.throws(() => new VerityHasher({ salt: SALT, uuid: UUID }).finish(), /at least one data block/);
        assert.throws(() => new VerityHasher({ salt: "xyz", uuid: UUID }), /salt/);
    });
});

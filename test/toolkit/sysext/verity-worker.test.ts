// DigestWorker: the helper thread's level-0 digests are VerityHasher's, and its failures reach the caller.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { VERITY_BLOCK_SIZE, VerityHasher } from "../../../provider/toolkit/sysext/verity-tree";
import { DigestWorker } from "../../../provider/toolkit/sysext/verity-worker";
import { tempDir } from "../../helpers/temp";

const SALT = "3c".repeat(32);
const UUID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

describe("toolkit/sysext/verity-worker", function () {
    let file: string;
    let data: Buffer;
    before(() => {
        data = Buffer.alloc(700 * VERITY_BLOCK_SIZE); // crosses the thread's 1 MiB reads
        for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((Math.imul(i, 2246822519) ^ (i >>> 9)) >>> 0, i);
        file = path.join(tempDir("verity-worker"), "data");
        fs.writeFileSync(file, data);
    });

    it("gives the digests VerityHasher computes, so a split build has the same hash area", async () => {
        const worker = DigestWorker.acquire();
        assert.ok(worker, "no build runs here, so the helper thread is free");
        try {
            assert.equal(DigestWorker.acquire(), undefined, "one build at a time has the thread");
            const whole = new VerityHasher({ salt: SALT, uuid: UUID });
            whole.update(data);
            const split = new VerityHasher({ salt: SALT, uuid: UUID });
            const at = 300 * VERITY_BLOCK_SIZE;
            split.update(data.subarray(0, at));
            split.updateDigests(await worker!.digests(file, at, data.length, SALT));
            assert.deepEqual(split.finish(), whole.finish());
        } finally {
            worker?.release();
        }
    });

    it("rejects a range past the file's end, and every call after it was stopped; the next build gets a new thread", async () => {
        const worker = DigestWorker.acquire();
        assert.ok(worker, "no build runs here, so the helper thread is free");
        await assert.rejects(worker!.digests(file, 0, data.length + VERITY_BLOCK_SIZE, SALT), /ends at/);
        await worker!.stop();
        await assert.rejects(worker!.digests(file, 0, VERITY_BLOCK_SIZE, SALT), /stopped/);
        const next = DigestWorker.acquire();
        assert.ok(next && next !== worker, "a stopped thread is replaced");
        next!.release();
    });
});

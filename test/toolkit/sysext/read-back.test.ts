// ReadBack: the sha256 of a written file, read once in steps, with each range compared to what was meant to be there.
import { strict as assert } from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ReadBack } from "../../../provider/toolkit/sysext/read-back";
import { tempDir } from "../../helpers/temp";

describe("toolkit/sysext/read-back", function () {
    let dir: string;
    let file: string;
    let data: Buffer;
    before(() => {
        dir = tempDir("read-back");
        data = Buffer.alloc(3 * 1024 * 1024 + 12345);
        for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
        file = path.join(dir, "image");
        fs.writeFileSync(file, data);
    });
    const slice = (offset: number, size: number, flip?: number) => {
        const bytes = Buffer.from(data.subarray(offset, offset + size));
        if (flip !== undefined) bytes[flip] ^= 1;
        return bytes;
    };
    const asFile = (name: string, bytes: Buffer) => {
        fs.writeFileSync(path.join(dir, name), bytes);
        return path.join(dir, name);
    };

    it("hashes the whole file in steps and finds every range as written, across read-chunk boundaries", async function () {
        const rb = await ReadBack.open(file);
        rb.expect({ name: "a", offset: 5, bytes: slice(5, 20) });
        rb.expect({ name: "b", offset: 1024 * 1024 - 10, size: 2 * 1024 * 1024 + 3, file: asFile("b", slice(1024 * 1024 - 10, 2 * 1024 * 1024 + 3)) });
        await rb.readTo(2 * 1024 * 1024 + 7);
        rb.expect({ name: "c", offset: data.length - 1, bytes: slice(data.length - 1, 1) });
        assert.deepEqual(await rb.finish(), { sha256: createHash("sha256").update(data).digest("hex"), size: data.length });
    });

    it("names the first range that differs: a flipped byte past a read boundary, a file of another size, a range past the end", async function () {
        const differs = async (add: (rb: ReadBack) => void) => {
            const rb = await ReadBack.open(file);
            add(rb);
            return (await rb.finish()).differs;
        };
        assert.equal(await differs((rb) => rb.expect({ name: "b", offset: 100, size: 2 * 1024 * 1024, file: asFile("b2", slice(100, 2 * 1024 * 1024, 1024 * 1024 + 1)) })), "b");
        assert.equal(await differs((rb) => rb.expect({ name: "short", offset: 100, size: 50, file: asFile("s", slice(100, 49)) })), "short");
        assert.equal(await differs((rb) => rb.expect({ name: "past", offset: data.length - 1, bytes: Buffer.from([data[data.length - 1], 0]) })), "past");
        assert.equal(await differs((rb) => rb.expect({ name: "ok", offset: 0, bytes: slice(0, 4096) })), undefined);
    });
});

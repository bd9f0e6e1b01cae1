// toolkit/files.ts: isInside, the one "is this path under that root" check (artifact store placement,
// media copies), and copyIntoVisiting, the one-read copy the DDI build hashes while copying.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { copyIntoVisiting, isInside } from "../../provider/toolkit/files";

describe("isInside", () => {
    it("takes the root and anything under it, including names that start with two dots", () => {
        for (const p of ["/r", "/r/", "/r/a", "/r/..data", "/r/..d/x", "/r/a/../b", "/r/...", "/r/a/.."]) assert.strictEqual(isInside("/r", p), true, p);
    });
    it("refuses what a '..' component or another root takes outside", () => {
        for (const p of ["/", "/r/..", "/r/../x", "/r/a/../../x", "/rx", "/r2/a", "/other"]) assert.strictEqual(isInside("/r", p), false, p);
    });
});

describe("copyIntoVisiting", () => {
    it("copies the whole source to the offset and shows every chunk once, in order, across chunk boundaries", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-copy-visit-"));
        try {
            for (const size of [0, 1, 4096, 3 * 4096, 3 * 4096 + 17]) {
                const data = Buffer.alloc(size);
                for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
                const source = path.join(dir, "source");
                const target = path.join(dir, "target");
                fs.writeFileSync(source, data);
                fs.writeFileSync(target, Buffer.alloc(10, 0xaa));
                const seen: Buffer[] = [];
                const copied = await copyIntoVisiting(source, target, 5, (chunk) => seen.push(Buffer.from(chunk)), 4096);
                assert.strictEqual(copied, size);
                assert.ok(Buffer.concat(seen).equals(data), `the chunks shown, ${size} bytes`);
                assert.ok(seen.every((c, i) => c.length === 4096 || i === seen.length - 1), "whole chunks but the last");
                const expected = Buffer.concat([Buffer.alloc(5, 0xaa), data, Buffer.alloc(Math.max(0, 5 - size), 0xaa)]);
                assert.ok(fs.readFileSync(target).equals(expected), `the target, ${size} bytes`);
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

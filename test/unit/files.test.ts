// toolkit/files.ts: isInside, the one "is this path under that root" check (artifact store placement,
// media copies), and sha256ComparingRanges, the byte-range reader the DDI checks use.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { createHash } from "crypto";
import { isInside, sha256ComparingRanges } from "../../provider/toolkit/files";

describe("isInside", () => {
    it("takes the root and anything under it, including names that start with two dots", () => {
        for (const p of ["/r", "/r/", "/r/a", "/r/..data", "/r/..d/x", "/r/a/../b", "/r/...", "/r/a/.."]) assert.strictEqual(isInside("/r", p), true, p);
    });
    it("refuses what a '..' component or another root takes outside", () => {
        for (const p of ["/", "/r/..", "/r/../x", "/r/a/../../x", "/rx", "/r2/a", "/other"]) assert.strictEqual(isInside("/r", p), false, p);
    });
});

describe("sha256ComparingRanges", () => {
    it("hashes the whole file in one read and compares each range with its file, across read-chunk boundaries", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-regions-"));
        try {
            const data = Buffer.alloc(3 * 1024 * 1024 + 12345);
            for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
            const file = path.join(dir, "image");
            fs.writeFileSync(file, data);
            const ranges = { a: { offset: 1024 * 1024 - 10, size: 20 }, b: { offset: 5, size: 2 * 1024 * 1024 + 3 }, c: { offset: data.length - 1, size: 1 } };
            const expected = (name: string, r: { offset: number; size: number }, change?: number) => {
                const bytes = Buffer.from(data.subarray(r.offset, r.offset + r.size));
                if (change !== undefined) bytes[change] ^= 1;
                fs.writeFileSync(path.join(dir, name), bytes);
                return { ...r, expected: path.join(dir, name) };
            };
            const same = { a: expected("a", ranges.a), b: expected("b", ranges.b), c: expected("c", ranges.c) };
            assert.deepStrictEqual(await sha256ComparingRanges(file, same), { sha256: createHash("sha256").update(data).digest("hex") });
            // one byte, on the far side of a 1 MiB read boundary
            assert.strictEqual((await sha256ComparingRanges(file, { ...same, b: expected("b2", ranges.b, 1024 * 1024 + 1) })).differs, "b");
            assert.strictEqual((await sha256ComparingRanges(file, { ...same, c: { ...ranges.c, expected: same.b.expected } })).differs, "c", "an expected file of another size");
            assert.strictEqual((await sha256ComparingRanges(file, { past: { offset: data.length - 1, size: 2, expected: expected("p", { offset: data.length - 1, size: 1 }).expected } })).differs, "past");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

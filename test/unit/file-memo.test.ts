// Remembered reads of small input files (toolkit/file-memo.ts): reused while the file is unchanged,
// read again after any change, never remembered for a file changed within the racy window.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { memoByFiles } from "../../provider/toolkit/file-memo";
import { tempDir } from "../helpers/oci-fixtures";

describe("memoByFiles", function () {
    this.timeout(20000);
    const aged = () => new Promise((r) => setTimeout(r, 2100));

    it("reads a settled file once, again after a change, and never a fresh one from memory", async () => {
        const dir = tempDir("file-memo-");
        const file = path.join(dir, "cert.pem");
        fs.writeFileSync(file, "one");
        let reads = 0;
        const read = memoByFiles((f: string) => (reads++, fs.readFileSync(f, "utf8")));
        assert.strictEqual(read(file), "one");
        assert.strictEqual(read(file), "one");
        assert.strictEqual(reads, 2, "changed within the racy window: read every time");
        await aged();
        read(file);
        read(file);
        assert.strictEqual(reads, 3, "settled: read once");
        fs.writeFileSync(file, "two"); // same size, same inode
        assert.strictEqual(read(file), "two");
        await aged();
        fs.chmodSync(file, 0o600); // only ctime moves
        read(file);
        assert.strictEqual(reads, 5);
        assert.throws(() => read(path.join(dir, "missing")), /ENOENT/);
    });

    it("does not remember a call that throws", async () => {
        const dir = tempDir("file-memo-");
        const file = path.join(dir, "key.pem");
        fs.writeFileSync(file, "x");
        await aged();
        let calls = 0;
        const parse = memoByFiles((_f: string) => {
            calls++;
            throw new Error("not a key");
        });
        assert.throws(() => parse(file), /not a key/);
        assert.throws(() => parse(file), /not a key/);
        assert.strictEqual(calls, 2);
    });
});

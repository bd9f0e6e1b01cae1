import * as assert from "assert";
import { guidFromBytes, parseSignatureLists, SignatureListFormatError } from "../../provider/toolkit/keys/efi-signature-list";

function guidBytes(guid: string): Buffer {
    const h = guid.replace(/-/g, "");
    const le = (s: string) => Buffer.from(s, "hex").reverse();
    return Buffer.concat([le(h.slice(0, 8)), le(h.slice(8, 12)), le(h.slice(12, 16)), Buffer.from(h.slice(16), "hex")]);
}

function sha256List(owner: string, digests: Buffer[]): Buffer {
    const header = Buffer.alloc(28);
    guidBytes("c1c41626-504c-4092-aca9-41f936934328").copy(header, 0);
    header.writeUInt32LE(28 + digests.length * 48, 16);
    header.writeUInt32LE(0, 20);
    header.writeUInt32LE(48, 24);
    return Buffer.concat([header, ...digests.map((d) => Buffer.concat([guidBytes(owner), d]))]);
}

describe("EFI signature list parser", () => {
    it("reads UEFI's mixed-endian GUIDs", () => {
        assert.strictEqual(guidFromBytes(guidBytes("77fa9abd-0359-4d32-bd60-28f4e78f784b")), "77fa9abd-0359-4d32-bd60-28f4e78f784b");
    });

    it("parses concatenated lists and their entries", () => {
        const d1 = Buffer.alloc(32, 1);
        const d2 = Buffer.alloc(32, 2);
        const lists = parseSignatureLists(Buffer.concat([sha256List("11111111-2222-3333-4444-555555555555", [d1, d2]), sha256List("77fa9abd-0359-4d32-bd60-28f4e78f784b", [d2])]));
        assert.strictEqual(lists.length, 2);
        assert.strictEqual(lists[0].type, "sha256");
        assert.deepStrictEqual(lists[0].entries.map((e) => e.description), [d1.toString("hex"), d2.toString("hex")]);
        assert.strictEqual(lists[1].entries[0].owner, "77fa9abd-0359-4d32-bd60-28f4e78f784b");
    });

    it("rejects truncated, inconsistent and empty input", () => {
        const list = sha256List("11111111-2222-3333-4444-555555555555", [Buffer.alloc(32)]);
        assert.throws(() => parseSignatureLists(list.subarray(0, list.length - 1)), SignatureListFormatError);
        assert.throws(() => parseSignatureLists(list.subarray(0, 10)), /truncated/);
        assert.throws(() => parseSignatureLists(Buffer.alloc(0)), /empty/);
        assert.throws(() => parseSignatureLists(Buffer.from("not an esl at all, just text that is long enough")), SignatureListFormatError);
    });
});

// The tar reader behind layer extraction and archive indexing: formats it must read (ustar, pax, GNU
// long names, what GNU tar writes) and damage it must refuse.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { Readable } from "stream";
import { run } from "../../../provider/toolkit/run";
import { ByteSource, FileSource, StreamSource, TarEntry, TarFormatError, readTar } from "../../../provider/toolkit/source/tar-reader";
import { TarSpec, buildTar, tempDir } from "../../helpers/oci-fixtures";

interface Listed {
    name: string;
    type: string;
    mode: number;
    linkname: string;
    content?: string;
}

async function list(src: ByteSource): Promise<Listed[]> {
    const out: Listed[] = [];
    try {
        for await (const e of readTar(src)) out.push(await toListed(e));
    } finally {
        if (src instanceof FileSource) await src.close();
    }
    return out;
}

async function toListed(e: TarEntry): Promise<Listed> {
    const chunks: Buffer[] = [];
    for await (const c of e.body()) chunks.push(c);
    const item: Listed = { name: e.name, type: e.type, mode: e.mode, linkname: e.linkname };
    if (e.type === "file") item.content = Buffer.concat(chunks).toString();
    return item;
}

/** A stream that hands out `size`-byte chunks, to exercise reads that straddle chunk edges. */
function chunked(data: Buffer, size: number): StreamSource {
    const parts: Buffer[] = [];
    for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
    return new StreamSource(Readable.from(parts));
}

function listBuffer(data: Buffer): Promise<Listed[]> {
    return list(chunked(data, 7));
}

async function rejects(data: Buffer, pattern: RegExp): Promise<void> {
    await assert.rejects(listBuffer(data), (e: Error) => e instanceof TarFormatError && pattern.test(e.message));
}

const LONG = `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(150)}`;

describe("tar reader", () => {
    let tmp: string;
    before(() => (tmp = tempDir()));
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    const SAMPLE: TarSpec[] = [
        { name: "usr/", type: "dir", mode: 0o750 },
        { name: "usr/bin/tool", content: "#!/bin/sh\necho hi\n", mode: 0o4755 },
        { name: "usr/lib/link", type: "symlink", linkname: "../bin/tool" },
        { name: "usr/bin/hard", type: "hardlink", linkname: "usr/bin/tool" },
        { name: "empty", content: "" },
        { name: "exact", content: "x".repeat(512) },
    ];

    it("reads names, types, modes, link names and contents", async () => {
        const entries = await listBuffer(buildTar(SAMPLE));
        assert.deepStrictEqual(entries, [
            { name: "usr/", type: "dir", mode: 0o750, linkname: "" },
            { name: "usr/bin/tool", type: "file", mode: 0o4755, linkname: "", content: "#!/bin/sh\necho hi\n" },
            { name: "usr/lib/link", type: "symlink", mode: 0o777, linkname: "../bin/tool" },
            { name: "usr/bin/hard", type: "hardlink", mode: 0o644, linkname: "usr/bin/tool" },
            { name: "empty", type: "file", mode: 0o644, linkname: "", content: "" },
            { name: "exact", type: "file", mode: 0o644, linkname: "", content: "x".repeat(512) },
        ]);
    });

    it("gives the same entries and data offsets from a file as from a stream", async () => {
        const data = buildTar(SAMPLE);
        const file = path.join(tmp, "sample.tar");
        fs.writeFileSync(file, data);
        const src = await FileSource.open(file);
        const offsets: number[] = [];
        for await (const e of readTar(src)) {
            offsets.push(e.dataOffset);
            if (e.name === "usr/bin/tool") assert.strictEqual(data.toString("utf8", e.dataOffset, e.dataOffset + e.size), "#!/bin/sh\necho hi\n");
        }
        await src.close();
        const streamed: number[] = [];
        for await (const e of readTar(chunked(data, 100))) streamed.push(e.dataOffset);
        assert.deepStrictEqual(streamed, offsets);
    });

    for (const longNames of ["pax", "gnu"] as const) {
        it(`reads long names and link names stored as ${longNames}`, async () => {
            const entries = await listBuffer(buildTar([
                { name: LONG, content: "deep" },
                { name: "l", type: "symlink", linkname: LONG },
            ], { longNames }));
            assert.deepStrictEqual(entries.map((e) => [e.name, e.linkname, e.content]), [[LONG, "", "deep"], ["l", LONG, undefined]]);
        });
    }

    for (const format of ["gnu", "pax", "ustar"]) {
        it(`reads what GNU tar writes in ${format} format`, async () => {
            const src = path.join(tmp, `src-${format}`);
            const nested = path.join(src, "d".repeat(60), "e".repeat(60));
            fs.mkdirSync(nested, { recursive: true });
            fs.writeFileSync(path.join(nested, "f".repeat(90)), "long");
            fs.writeFileSync(path.join(src, "run"), "x", { mode: 0o755 });
            fs.chmodSync(path.join(src, "run"), 0o755);
            fs.symlinkSync("run", path.join(src, "link"));
            fs.linkSync(path.join(src, "run"), path.join(src, "hard"));
            const file = path.join(tmp, `${format}.tar`);
            await run(["tar", `--format=${format}`, "--sort=name", "--owner=0", "--group=0", "--mtime=@0", "-C", src, "-cf", file, "."]);
            const entries = await list(await FileSource.open(file));
            const byName = new Map(entries.map((e) => [e.name.replace(/^\.\//, ""), e]));
            assert.strictEqual(byName.get(`${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(90)}`)?.content, "long");
            assert.strictEqual(byName.get("run")?.mode, 0o755);
            assert.deepStrictEqual([byName.get("link")?.type, byName.get("link")?.linkname], ["symlink", "run"]);
            // GNU tar stores the second name of a hard-linked file as a link to the first.
            const hard = [byName.get("hard"), byName.get("run")].find((e) => e?.type === "hardlink");
            assert.ok(hard, "one of the two names is a hardlink entry");
        });
    }

    it("writes fixtures that GNU tar lists the same way (checks the test helper)", async () => {
        const file = path.join(tmp, "fixture.tar");
        fs.writeFileSync(file, buildTar([...SAMPLE, { name: LONG, content: "deep" }]));
        const { stdout } = await run(["tar", "-tf", file]);
        assert.deepStrictEqual(stdout.trim().split("\n"), [...SAMPLE.map((e) => e.name), LONG]);
    });

    it("reads a size stored in base-256", async () => {
        const data = buildTar([{ name: "big", content: "hello" }]);
        data.fill(0, 124, 136);
        data[124] = 0x80;
        data[135] = 5;
        rewriteChecksum(data, 0);
        const [entry] = await listBuffer(data);
        assert.strictEqual(entry.content, "hello");
    });

    it("stops at a clean end of input without the end-of-archive blocks", async () => {
        const data = buildTar([{ name: "a", content: "1" }]);
        assert.strictEqual((await listBuffer(data.subarray(0, 1024))).length, 1);
    });

    it("fails on a bad header checksum", async () => {
        const data = buildTar([{ name: "a", content: "1" }]);
        data[0] = "b".charCodeAt(0);
        await rejects(data, /bad checksum/);
    });

    it("fails on input that is not tar", async () => {
        await rejects(Buffer.alloc(1024, 0x41), /checksum|not octal/);
    });

    it("fails on an archive cut inside a member", async () => {
        const data = buildTar([{ name: "a", content: "x".repeat(2000) }]);
        await rejects(data.subarray(0, 1200), /ends unexpectedly/);
        await rejects(data.subarray(0, 300), /ends unexpectedly/);
    });

    it("fails when entries follow a single zero block", async () => {
        const one = buildTar([{ name: "a", content: "1" }]);
        const hidden = buildTar([{ name: "hidden", content: "2" }]);
        await rejects(Buffer.concat([one.subarray(0, 1024 + 512), hidden]), /data after a zero block/);
    });

    it("fails on a malformed pax record", async () => {
        const data = buildTar([{ name: "a", content: "1", pax: { path: "a" } }]);
        data.write("99", 512, "latin1"); // the record length now runs past the header data
        await rejects(data, /malformed pax record/);
    });

    it("reports entry types it does not know as unsupported, with the flag", async () => {
        const [entry] = await listBuffer(buildTar([{ name: "v", typeflag: "V" }]));
        assert.deepStrictEqual([entry.type], ["unsupported"]);
        const sparse = await listBuffer(buildTar([{ name: "s", content: "x", pax: { "GNU.sparse.major": "1" } }]));
        assert.strictEqual(sparse[0].type, "unsupported");
    });
});

function rewriteChecksum(data: Buffer, offset: number): void {
    data.fill(0x20, offset + 148, offset + 156);
    let sum = 0;
    for (let i = offset; i < offset + 512; i++) sum += data[i];
    data.write(`${sum.toString(8).padStart(6, "0")}\0 `, offset + 148, 8, "latin1");
}

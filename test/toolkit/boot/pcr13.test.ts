// PCR 13 prediction: the stub's sysext cpio rebuilt byte for byte. GNU cpio reads the archive back
// (an independent check of the format); the guest's PCR 13 equals the prediction in
// test/boot/installed-node.test.ts, which is the proof that the bytes are the stub's.
import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { predictPcr13, stubLoadsAsSysext, writeStubSysextCpio, STUB_CPIO_TRAILER, cpioHeader, stubExtensions } from "../../../provider/toolkit/boot/pcr13";
import { run } from "../../../provider/toolkit/run";
import { tempDir } from "../../helpers/engine";

describe("pcr13: what systemd-stub measures for .extra.d extensions", () => {
    let work: string;
    const file = (name: string, content: string | Buffer) => {
        const p = path.join(work, "src", name);
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, content);
        return p;
    };
    before(() => (work = tempDir("pcr13")));

    it("picks *.raw except *.confext.raw, dot files and non-ASCII names, as the stub does", () => {
        assert.ok(stubLoadsAsSysext("k3s.sysext.raw"));
        assert.ok(stubLoadsAsSysext("legacy.raw"));
        assert.ok(stubLoadsAsSysext("UPPER.RAW"));
        assert.ok(!stubLoadsAsSysext("motd.confext.raw"));
        assert.ok(!stubLoadsAsSysext("motd.CONFEXT.RAW"));
        assert.ok(!stubLoadsAsSysext(".hidden.sysext.raw"));
        assert.ok(!stubLoadsAsSysext("café.sysext.raw"));
        assert.ok(!stubLoadsAsSysext("notes.txt"));
        assert.ok(!stubLoadsAsSysext(`${"a".repeat(250)}.sysext.raw`));
        // systemd 252's stub takes every *.raw, confexts included
        assert.ok(stubLoadsAsSysext("motd.confext.raw", { stubMajor: 252 }));
        assert.ok(!stubLoadsAsSysext("motd.confext.raw", { stubMajor: 257 }));
    });

    it("writes newc records GNU cpio reads back: dirs 0555, files 0444 under .extra/sysext, sorted, data intact", async () => {
        const files = stubExtensions([file("b.sysext.raw", "bee"), file("a.sysext.raw", Buffer.alloc(4097, 7)), file("m.confext.raw", "conf"), file("B.sysext.raw", "capital")]);
        const chunks: Buffer[] = [];
        const names = await writeStubSysextCpio(files, (c) => chunks.push(c));
        assert.deepEqual(names, ["B.sysext.raw", "a.sysext.raw", "b.sysext.raw"]); // code-unit order: upper case first
        const archive = path.join(work, "stub.cpio");
        fs.writeFileSync(archive, Buffer.concat(chunks));
        assert.equal(fs.statSync(archive).size % 4, 0);
        const { stdout } = await run(["cpio", "-itv", "--quiet", "-F", archive]);
        const lines = stdout.trim().split("\n");
        assert.equal(lines.length, 5);
        assert.match(lines[0], /^dr-xr-xr-x .* \.extra$/);
        assert.match(lines[1], /^dr-xr-xr-x .* \.extra\/sysext$/);
        assert.match(lines[2], /^-r--r--r-- .* \.extra\/sysext\/B\.sysext\.raw$/);
        const out = path.join(work, "unpacked");
        fs.mkdirSync(out);
        await run(["cpio", "-id", "--quiet", "-F", archive], { cwd: out });
        assert.deepEqual(fs.readFileSync(path.join(out, ".extra/sysext/a.sysext.raw")), Buffer.alloc(4097, 7));
        assert.equal(fs.readFileSync(path.join(out, ".extra/sysext/b.sysext.raw"), "utf8"), "bee");
        assert.ok(!fs.existsSync(path.join(out, ".extra/sysext/m.confext.raw")));
    });

    it("numbers inodes from 1 and ends with the stub's exact trailer", async () => {
        const chunks: Buffer[] = [];
        await writeStubSysextCpio(stubExtensions([file("x.sysext.raw", "x")]), (c) => chunks.push(c));
        const bytes = Buffer.concat(chunks);
        assert.equal(bytes.subarray(0, 14).toString("latin1"), "07070100000001");
        assert.deepEqual(bytes.subarray(0, 112), cpioHeader(1, 0o40555, 0, ".extra").subarray(0, 112));
        assert.deepEqual(bytes.subarray(bytes.length - STUB_CPIO_TRAILER.length), STUB_CPIO_TRAILER);
        assert.equal(STUB_CPIO_TRAILER.length, 124);
        // the file record: inode 3, mode 0100444, size 1, name size = ".extra/sysext/x.sysext.raw" + NUL
        const rec = bytes.indexOf(Buffer.from("07070100000003", "latin1"));
        assert.ok(rec > 0);
        const fields = bytes.subarray(rec + 6, rec + 110).toString("latin1").match(/.{8}/g)!.map((h) => parseInt(h, 16));
        assert.deepEqual(fields, [3, 0o100444, 0, 0, 1, 0, 1, 0, 0, 0, 0, ".extra/sysext/x.sysext.raw".length + 1, 0]);
    });

    it("PCR 13 = H(0 || H(archive)) per bank; no extension leaves it zero; a changed byte or name changes it", async () => {
        const a = file("k3s.sysext.raw", "payload-1");
        const chunks: Buffer[] = [];
        await writeStubSysextCpio(stubExtensions([a]), (c) => chunks.push(c));
        const archive = Buffer.concat(chunks);
        const expect = (bank: "sha1" | "sha256") => {
            const zero = Buffer.alloc(bank === "sha1" ? 20 : 32);
            return crypto.createHash(bank).update(zero).update(crypto.createHash(bank).update(archive).digest()).digest("hex");
        };
        const p = await predictPcr13(stubExtensions([a]));
        assert.equal(p.values.sha256, expect("sha256"));
        assert.equal(p.values.sha1, expect("sha1"));
        assert.deepEqual(p.extensions, ["k3s.sysext.raw"]);
        const none = await predictPcr13(stubExtensions([file("only.confext.raw", "c")]));
        assert.equal(none.values.sha256, "0".repeat(64));
        assert.deepEqual(none.extensions, []);
        assert.equal(none.eventDigests, undefined);
        const changed = await predictPcr13(stubExtensions([file("k3s.sysext.raw", "payload-2")]));
        assert.notEqual(changed.values.sha256, p.values.sha256);
        const renamed = await predictPcr13([{ name: "k3z.sysext.raw", source: a }]);
        assert.notEqual(renamed.values.sha256, p.values.sha256);
    });

    it("refuses the same name twice", async () => {
        const a = file("dup.sysext.raw", "1");
        await assert.rejects(predictPcr13([{ name: "dup.sysext.raw", source: a }, { name: "dup.sysext.raw", source: a }]), /given twice/);
    });
});

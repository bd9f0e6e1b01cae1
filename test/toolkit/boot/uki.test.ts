// UKI assembly and signing with the host's systemd 252 stub and a fake kernel: the layout is read back
// with objdump, the sections with objcopy, signatures are checked with sbverify, and PCR 11 is
// recomputed by systemd-measure from the sections taken out of the finished image.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { sha256File } from "../../../provider/toolkit/files";
import { authenticodeDigest } from "../../../provider/toolkit/boot/pe";
import { imageDigestOfSignature } from "../../../provider/toolkit/boot/authenticode";
import { GO_UKIFY_MEASURED_SECTIONS, SYSTEMD_252_MEASURED_SECTIONS, loadRsaPrivateKey, pcrPolicyDigest } from "../../../provider/toolkit/boot/pcr11";
import {
    SECTION_ALIGNMENT,
    assembleUki,
    buildUki,
    checkEfiSignature,
    measuredSectionsForStub,
    readLoaderInfo,
    readPeSections,
    signEfi,
    verifyEfi,
} from "../../../provider/toolkit/boot/uki";
import { tempDir } from "../../helpers/oci-fixtures";
import { makeCertificate } from "../../helpers/pki";
import { fakeBzImage } from "../../helpers/uki-fixtures";

const STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const SDBOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
const MEASURE = "/usr/lib/systemd/systemd-measure";

interface ObjdumpSection {
    name: string;
    size: number;
    vma: number;
}

async function objdumpSections(file: string): Promise<ObjdumpSection[]> {
    const out = (await run(["objdump", "-h", file])).stdout;
    return [...out.matchAll(/^\s+\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s/gm)].map((m) => ({ name: m[1], size: parseInt(m[2], 16), vma: parseInt(m[3], 16) }));
}

async function extractSection(file: string, name: string, out: string): Promise<Buffer> {
    await run(["objcopy", "-O", "binary", `--only-section=${name}`, file, out]);
    return fs.readFileSync(out);
}

/** Flips one byte of a section's data in place (what an attacker editing the cmdline would do). */
function flipSectionByte(file: string, name: string): void {
    const s = readPeSections(file).sections.find((x) => x.name === name)!;
    const fd = fs.openSync(file, "r+");
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, s.pointerToRawData);
    b[0] ^= 0x01;
    fs.writeSync(fd, b, 0, 1, s.pointerToRawData);
    fs.closeSync(fd);
}

describe("uki", () => {
    let tmp: string;
    let db: { key: string; certificate: string };
    let other: { key: string; certificate: string };
    let pcrKey: string;
    const f = (name: string, content: string | Buffer) => {
        const p = path.join(tmp, name);
        fs.writeFileSync(p, content);
        return p;
    };
    let kernel: string;
    let initrd: string;
    let osrel: string;
    let splash: string;

    before(async function () {
        this.timeout(60000);
        tmp = tempDir("kairos-uki-");
        db = await makeCertificate(tmp, "db");
        other = await makeCertificate(tmp, "other");
        pcrKey = path.join(tmp, "tpm2-pcr-private.pem");
        await run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pcrKey], { env: { OPENSSL_CONF: "/dev/null" } });
        kernel = f("vmlinuz", fakeBzImage("6.1.0-56-amd64 (test) #1", 300_001));
        initrd = f("initrd.zst", Buffer.from(Array.from({ length: 70_003 }, (_, i) => (i * 37) & 0xff)));
        osrel = f("os-release", 'NAME="Kairos"\nID=kairos\nPRETTY_NAME="Kairos test UKI"\n');
        splash = f("splash.bmp", Buffer.concat([Buffer.from("BM"), Buffer.alloc(998, 0x55)]));
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it("reads the PE section table as objdump does", async () => {
        for (const file of [STUB, SDBOOT]) {
            const info = readPeSections(file);
            const theirs = await objdumpSections(file);
            assert.deepStrictEqual(info.sections.map((s) => ({ name: s.name, size: s.virtualSize, vma: Number(info.imageBase) + s.virtualAddress })), theirs);
            const p = (await run(["objdump", "-p", file])).stdout;
            assert.strictEqual(info.sectionAlignment, parseInt(/SectionAlignment\s+([0-9a-f]+)/.exec(p)![1], 16));
            assert.strictEqual(info.sizeOfImage, parseInt(/SizeOfImage\s+([0-9a-f]+)/.exec(p)![1], 16));
        }
    });

    it("reads systemd's version markers and picks the 252 measurement list for this stub", () => {
        assert.deepStrictEqual(readLoaderInfo(STUB)?.component, "systemd-stub");
        assert.strictEqual(readLoaderInfo(STUB)?.major, 252);
        assert.strictEqual(readLoaderInfo(SDBOOT)?.component, "systemd-boot");
        assert.deepStrictEqual(measuredSectionsForStub(STUB), SYSTEMD_252_MEASURED_SECTIONS);
    });

    it("appends sections at page-aligned addresses after the stub, with exact sizes and contents", async () => {
        const cmdline = f("cmdline", "console=ttyS0 rd.immucore.uki");
        const out = path.join(tmp, "assembled.efi");
        await assembleUki({ stub: STUB, sections: [{ name: ".osrel", file: osrel }, { name: ".cmdline", file: cmdline }, { name: ".linux", file: kernel }], out });
        const stub = await objdumpSections(STUB);
        const all = await objdumpSections(out);
        assert.deepStrictEqual(all.slice(0, stub.length), stub, "the stub's own sections are untouched");
        const added = all.slice(stub.length);
        assert.deepStrictEqual(added.map((s) => s.name), [".osrel", ".cmdline", ".linux"]);
        const stubEnd = Math.max(...stub.map((s) => s.vma + s.size));
        assert.strictEqual(added[0].vma, Math.ceil(stubEnd / SECTION_ALIGNMENT) * SECTION_ALIGNMENT);
        for (const [i, s] of added.entries()) {
            assert.strictEqual(s.vma % SECTION_ALIGNMENT, 0, `${s.name} is page-aligned`);
            if (i > 0) assert.strictEqual(s.vma, Math.ceil((added[i - 1].vma + added[i - 1].size) / SECTION_ALIGNMENT) * SECTION_ALIGNMENT);
        }
        assert.deepStrictEqual(added.map((s) => s.size), [osrel, cmdline, kernel].map((x) => fs.statSync(x).size));
        assert.ok((await extractSection(out, ".linux", path.join(tmp, "x.linux"))).equals(fs.readFileSync(kernel)));
        assert.strictEqual((await extractSection(out, ".cmdline", path.join(tmp, "x.cmdline"))).toString(), "console=ttyS0 rd.immucore.uki");
        const flags = (await run(["objdump", "-h", out])).stdout;
        assert.match(flags, /\.linux[^\n]*\n\s+CONTENTS, ALLOC, LOAD, READONLY, DATA/);
        assert.strictEqual(readPeSections(out).timeDateStamp, readPeSections(STUB).timeDateStamp, "objcopy's timestamp is put back");
    });

    it("assembles the same bytes twice, even a second apart (objcopy stamps the time)", async function () {
        this.timeout(20000);
        const args = { stub: STUB, sections: [{ name: ".osrel", file: osrel }, { name: ".linux", file: kernel }] };
        await assembleUki({ ...args, out: path.join(tmp, "d1.efi") });
        await new Promise((r) => setTimeout(r, 1100));
        await assembleUki({ ...args, out: path.join(tmp, "d2.efi") });
        assert.strictEqual(await sha256File(path.join(tmp, "d1.efi")), await sha256File(path.join(tmp, "d2.efi")));
    });

    it("refuses bad section lists", async () => {
        const out = path.join(tmp, "bad.efi");
        await assert.rejects(assembleUki({ stub: STUB, sections: [{ name: ".sbat", file: osrel }], out }), /already has a \.sbat/);
        await assert.rejects(assembleUki({ stub: STUB, sections: [{ name: ".toolongname", file: osrel }], out }), /8 bytes/);
        await assert.rejects(assembleUki({ stub: STUB, sections: [{ name: ".osrel", file: osrel }, { name: ".osrel", file: osrel }], out }), /twice/);
        await assert.rejects(assembleUki({ stub: STUB, sections: [{ name: ".initrd", file: f("empty", "") }], out }), /empty/);
    });

    it("takes a signed stub (the signature is removed first; the UKI is signed afterwards)", async () => {
        const signedStub = path.join(tmp, "signed-stub.efi");
        await signEfi(STUB, signedStub, other.key, other.certificate);
        assert.ok(readPeSections(signedStub).certificateTable.size > 0);
        const out = path.join(tmp, "from-signed-stub.efi");
        await assembleUki({ stub: signedStub, sections: [{ name: ".linux", file: kernel }], out });
        assert.strictEqual(readPeSections(out).certificateTable.size, 0);
        const plain = path.join(tmp, "from-plain-stub.efi");
        await assembleUki({ stub: STUB, sections: [{ name: ".linux", file: kernel }], out: plain });
        assert.strictEqual(await sha256File(out), await sha256File(plain));
    });

    describe("signing", () => {
        let unsigned: string;
        before(async () => {
            unsigned = path.join(tmp, "to-sign.efi");
            await assembleUki({ stub: STUB, sections: [{ name: ".osrel", file: osrel }, { name: ".cmdline", file: f("c2", "quiet") }, { name: ".linux", file: kernel }], out: unsigned });
        });

        it("computes the Authenticode digest sbsign signs (also for an image that needs padding)", async () => {
            assert.notStrictEqual(fs.statSync(SDBOOT).size % 8, 0, "systemd-boot's size is not a multiple of 8");
            for (const [i, image] of [unsigned, SDBOOT].entries()) {
                const s = path.join(tmp, `sbsigned-${i}.efi`);
                await signEfi(image, s, db.key, db.certificate, { signer: "sbsign" });
                assert.ok(await verifyEfi(s, db.certificate));
                const p7 = path.join(tmp, `sbsigned-${i}.p7`);
                await run(["sbattach", "--detach", p7, s]);
                assert.ok(imageDigestOfSignature(fs.readFileSync(p7)).equals((await authenticodeDigest(image)).digest), image);
                const ours = path.join(tmp, `signed-${i}.efi`);
                await signEfi(image, ours, db.key, db.certificate);
                assert.ok(await verifyEfi(ours, db.certificate), image);
            }
        });

        it("signs deterministically, verifies with the right certificate only", async () => {
            const a = path.join(tmp, "signed-a.efi");
            const b = path.join(tmp, "signed-b.efi");
            await signEfi(unsigned, a, db.key, db.certificate);
            await new Promise((r) => setTimeout(r, 1100));
            await signEfi(unsigned, b, db.key, db.certificate);
            assert.strictEqual(await sha256File(a), await sha256File(b));
            assert.strictEqual(await verifyEfi(a, db.certificate), true);
            assert.deepStrictEqual((await checkEfiSignature(a, other.certificate)).ok, false);
            assert.strictEqual((await checkEfiSignature(a, other.certificate) as { reason: string }).reason, "untrusted-signer");
            assert.strictEqual((await checkEfiSignature(unsigned, db.certificate) as { reason: string }).reason, "unsigned");
            await assert.rejects(signEfi(a, path.join(tmp, "twice.efi"), db.key, db.certificate), /already signed/);
            await assert.rejects(signEfi(unsigned, path.join(tmp, "mismatch.efi"), db.key, other.certificate), /does not match its certificate/);
            await assert.rejects(checkEfiSignature(a, osrel), /is not an X\.509 certificate/);
            await assert.rejects(checkEfiSignature(osrel, db.certificate), /sbverify could not check[^]*Can't open image/);
            await assert.rejects(checkEfiSignature(path.join(tmp, "nonexistent.efi"), db.certificate), /no such file/);
        });

        it("fails verification after one byte of the command line changes", async () => {
            const a = path.join(tmp, "tampered.efi");
            await signEfi(unsigned, a, db.key, db.certificate);
            flipSectionByte(a, ".cmdline");
            assert.strictEqual((await checkEfiSignature(a, db.certificate) as { reason: string }).reason, "hash-mismatch");
        });
    });

    describe("buildUki", () => {
        const build = (out: string, extra: Partial<Parameters<typeof buildUki>[0]> = {}) =>
            buildUki({
                stub: STUB,
                kernel,
                initrd,
                osRelease: osrel,
                cmdline: "console=ttyS0 console=tty1 rd.immucore.uki install-mode",
                uname: "6.1.0-56-amd64",
                splash,
                pcrPrivateKey: pcrKey,
                sbKey: db.key,
                sbCert: db.certificate,
                out,
                workDir: path.join(tmp, `work-${path.basename(out)}`),
                ...extra,
            });

        it("builds a signed UKI whose PCR 11 prediction systemd-measure reproduces from its own sections", async function () {
            this.timeout(30000);
            const out = path.join(tmp, "norole.efi");
            const uki = await build(out);
            assert.deepStrictEqual(uki.sections.map((s) => s.name), [".osrel", ".cmdline", ".uname", ".splash", ".pcrsig", ".pcrpkey", ".initrd", ".linux"]);
            assert.deepStrictEqual(uki.measuredSections, [".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".pcrpkey"]);
            assert.strictEqual(uki.stubVersion, readLoaderInfo(STUB)!.version);
            assert.strictEqual(uki.sha256, await sha256File(out));
            assert.strictEqual(uki.size, fs.statSync(out).size);
            assert.ok(await verifyEfi(out, db.certificate));
            assert.ok(!(await verifyEfi(out, other.certificate)));

            const x = (name: string) => extractSection(out, name, path.join(tmp, `uki${name}`)).then(() => path.join(tmp, `uki${name}`));
            assert.strictEqual(fs.readFileSync(await x(".uname"), "utf8"), "6.1.0-56-amd64");
            const pcrpkey = fs.readFileSync(await x(".pcrpkey"), "utf8");
            assert.match(pcrpkey, /^-----BEGIN PUBLIC KEY-----\n/);
            const calculate = async (...extra: string[]) => {
                const calc = await run([
                    MEASURE, "calculate", "--json=short", "--bank=sha256", ...extra,
                    `--linux=${await x(".linux")}`, `--osrel=${await x(".osrel")}`, `--cmdline=${await x(".cmdline")}`,
                    `--initrd=${await x(".initrd")}`, `--splash=${await x(".splash")}`, `--pcrpkey=${await x(".pcrpkey")}`,
                ]);
                // With an empty phase path systemd-measure prints no "phase" key.
                return Object.fromEntries((JSON.parse(calc.stdout).sha256 as { phase?: string; hash: string }[]).map((e) => [e.phase ?? "", e.hash]));
            };
            // systemd-measure's phase "" is the value right after the stub, which buildUki names "stub".
            const stubOnly = await calculate("--phase=");
            const expected = await calculate();
            assert.deepStrictEqual(uki.pcr11, { stub: stubOnly[""], ...expected });

            const pcrsig = JSON.parse(fs.readFileSync(await x(".pcrsig"), "utf8"));
            assert.deepStrictEqual(Object.keys(pcrsig), ["sha256"]);
            assert.deepStrictEqual(
                pcrsig.sha256.map((e: { pol: string }) => e.pol),
                Object.values(expected).map((v) => pcrPolicyDigest("sha256", Buffer.from(v as string, "hex")).toString("hex")),
            );
            assert.ok(loadRsaPrivateKey(pcrKey));
        });

        it("gives the same bytes for the same inputs, and fails verification when tampered with", async function () {
            this.timeout(30000);
            const a = await build(path.join(tmp, "same-a.efi"));
            const b = await build(path.join(tmp, "same-b.efi"));
            assert.strictEqual(a.sha256, b.sha256);
            const c = await build(path.join(tmp, "other-cmdline.efi"), { cmdline: "console=ttyS0 rd.debug" });
            assert.notStrictEqual(c.sha256, a.sha256);
            assert.notDeepStrictEqual(c.pcr11, a.pcr11);
            flipSectionByte(path.join(tmp, "same-a.efi"), ".cmdline");
            assert.ok(!(await verifyEfi(path.join(tmp, "same-a.efi"), db.certificate)));
        });

        it("measures .uname and the stub's .sbat when told the stub is newer (go-ukify's list)", async function () {
            this.timeout(30000);
            const a = await build(path.join(tmp, "ukify-list.efi"), { measuredSections: GO_UKIFY_MEASURED_SECTIONS });
            assert.deepStrictEqual(a.measuredSections, [".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".uname", ".sbat", ".pcrpkey"]);
            const b = await build(path.join(tmp, "252-list.efi"));
            assert.notDeepStrictEqual(a.pcr11, b.pcr11);
        });
    });
});

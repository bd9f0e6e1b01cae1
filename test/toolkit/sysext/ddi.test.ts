// Builds real sysext images with the real tools and checks them with tools other than the builder
// (systemd-dissect, sfdisk, veritysetup, openssl, fsck.erofs), reading offsets from the image itself.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import { makeCertificate } from "../../helpers/pki";
import { partitionBytes, sfdiskJson } from "../../helpers/ddi-inspect";
import { makeTree, sha256, walk } from "../../helpers/sysext-tree";
import {
    BuildSysextOptions,
    DdiError,
    PARTITION_TYPES,
    SIGNATURE_PARTITION_SIZE,
    SysextImage,
    buildSysextImage,
    defaultSeed,
    gptLayout,
    parseSignaturePartition,
    resignSysextImage,
    rootHashPartitionUuids,
    seededUuid,
    sfdiskScript,
    signaturePartitionContent,
} from "../../../provider/toolkit/sysext/ddi";
import { verifySysextImage } from "../../../provider/toolkit/sysext/ddi-verify";

const NAME = "hello";
const EPOCH = 1700000000;
const OPENSSL_ENV = { OPENSSL_CONF: "/dev/null" };
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

type KeyPair = Awaited<ReturnType<typeof makeCertificate>>;

/** Copies partition `index` (0-based, in table order) out of the image, using the image's own GPT. */
async function cutPartition(image: string, index: number, out: string): Promise<string> {
    fs.writeFileSync(out, await partitionBytes(image, index));
    return out;
}

function flipHexDigit(hex: string): string {
    return (hex[0] === "0" ? "1" : "0") + hex.slice(1);
}

describe("toolkit/ddi: signed sysext images", function () {
    let tmp: string;
    let keyA: KeyPair;
    let keyB: KeyPair;
    let tree: string;
    let image: string;
    let built: SysextImage;
    let buildMs: number;

    const options = (over: Partial<BuildSysextOptions>): BuildSysextOptions => ({
        sourceDir: tree,
        outFile: path.join(tmp, "out", `${NAME}.raw`),
        workDir: path.join(tmp, "work"),
        name: NAME,
        kind: "sysext",
        arch: "x86-64",
        compression: "none",
        sourceDateEpoch: EPOCH,
        signing: keyA,
        ...over,
    });

    /** Builds into its own folder so the file is named NAME.raw, as systemd needs. */
    const buildInto = (folder: string, over: Partial<BuildSysextOptions> = {}) => {
        fs.mkdirSync(path.join(tmp, folder), { recursive: true });
        return buildSysextImage(options({ outFile: path.join(tmp, folder, `${NAME}.raw`), ...over }));
    };

    before(async function () {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ddi-test-"));
        fs.mkdirSync(path.join(tmp, "work"));
        fs.mkdirSync(path.join(tmp, "keys"));
        [keyA, keyB] = await Promise.all([makeCertificate(path.join(tmp, "keys"), "a"), makeCertificate(path.join(tmp, "keys"), "b")]);
        tree = makeTree(path.join(tmp, "tree"));
        const start = Date.now();
        built = await buildInto("a");
        buildMs = Date.now() - start;
        image = path.join(tmp, "a", `${NAME}.raw`);
    });

    after(function () {
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    describe("pure helpers", function () {
        it("seeded UUIDs are stable, v4-shaped and differ by tag and seed", function () {
            const a = seededUuid("seed", "disk");
            assert.match(a, UUID_V4);
            assert.equal(seededUuid("seed", "disk"), a);
            assert.notEqual(seededUuid("seed", "fs"), a);
            assert.notEqual(seededUuid("other", "disk"), a);
        });

        it("the default seed depends on name, kind and architecture", function () {
            const seeds = new Set([
                defaultSeed("a", "sysext", "x86-64"),
                defaultSeed("b", "sysext", "x86-64"),
                defaultSeed("a", "confext", "x86-64"),
                defaultSeed("a", "sysext", "arm64"),
            ]);
            assert.equal(seeds.size, 4);
        });

        it("lays partitions out contiguously from LBA 2048 and leaves room for the backup GPT", function () {
            const { slots, diskSize } = gptLayout([8192, 4096, SIGNATURE_PARTITION_SIZE]);
            assert.deepEqual(slots.map((s) => [s.startSector, s.sectors, s.offset]), [[2048, 16, 1048576], [2064, 8, 1056768], [2072, 32, 1060864]]);
            // end 2104 + 33 backup sectors = 2137 sectors = 1094144 B, rounded up to 4 KiB
            assert.equal(diskSize, 1097728);
            assert.throws(() => gptLayout([4097]), DdiError);
        });

        it("splits the root hash into the root and verity partition UUIDs", function () {
            const hash = "00112233445566778899aabbccddeeff" + "ffeeddccbbaa99887766554433221100";
            assert.deepEqual(rootHashPartitionUuids(hash), {
                root: "00112233-4455-6677-8899-aabbccddeeff",
                verity: "ffeeddcc-bbaa-9988-7766-554433221100",
            });
            assert.throws(() => rootHashPartitionUuids("abc"), DdiError);
        });

        it("writes the signature JSON compactly in repart's key order, zero-padded to 16 KiB", function () {
            const content = signaturePartitionContent("ab".repeat(32), "cd".repeat(32), Buffer.from([1, 2, 3]));
            assert.equal(content.length, SIGNATURE_PARTITION_SIZE);
            const text = content.subarray(0, content.indexOf(0)).toString();
            assert.equal(text, `{"rootHash":"${"ab".repeat(32)}","certificateFingerprint":"${"cd".repeat(32)}","signature":"AQID"}`);
            assert.ok(content.subarray(text.length).every((b) => b === 0));
            assert.deepEqual(parseSignaturePartition(content).signature, Buffer.from([1, 2, 3]));
            assert.throws(() => signaturePartitionContent("ab", "cd", Buffer.alloc(13000)), DdiError);
        });

        it("writes an sfdisk script with read-only attrs and the given names", function () {
            const { slots } = gptLayout([4096]);
            const script = sfdiskScript("11111111-2222-4333-8444-555555555555", [{ slot: slots[0], type: PARTITION_TYPES.arm64.root, uuid: "u", name: "root-arm64" }]);
            assert.match(script, /^label: gpt\nlabel-id: 11111111-2222-4333-8444-555555555555\n/);
            assert.match(script, /start=2048, size=8, type=b921b045-1df0-41c3-af44-4c6f280d3fae, uuid=u, name="root-arm64", attrs="GUID:60"/);
        });
    });

    describe("a signed x86-64 image", function () {
        it("is small, and reports its own size and digest", function () {
            // 1 MiB lead-in + 84 KiB erofs + 4 KiB verity + 16 KiB signature + backup GPT
            assert.ok(built.size < 1.25 * 1024 * 1024, `size ${built.size}`);
            assert.equal(built.size, fs.statSync(image).size);
            assert.equal(built.sha256, sha256(fs.readFileSync(image)));
            console.log(`      (built in ${buildMs} ms; speed is measured in bench/, not asserted here)`);
        });

        it("is reported by systemd-dissect as a signed-verity erofs system extension", async function () {
            const report = JSON.parse((await run(["systemd-dissect", "--json=short", image])).stdout);
            assert.equal(report.useSystemExtension, true);
            assert.deepEqual(report.extensionRelease, ["ID=_any", "ARCHITECTURE=x86-64"]);
            const byDesignator = Object.fromEntries(report.mounts.map((m: { designator: string }) => [m.designator, m]));
            assert.deepEqual(Object.keys(byDesignator).sort(), ["root", "root-verity", "root-verity-sig"]);
            assert.equal(byDesignator.root.verity, "signed");
            assert.equal(byDesignator.root.fstype, "erofs");
            assert.equal(byDesignator.root.architecture, "x86-64");
            assert.equal(byDesignator["root-verity"].fstype, "DM_verity_hash");
            assert.equal(byDesignator["root-verity-sig"].fstype, "verity_hash_signature");
        });

        it("has the Discoverable Partitions layout: types, names, read-only attrs, root-hash UUIDs, seeded GUIDs", async function () {
            const table = await sfdiskJson(image);
            const t = PARTITION_TYPES["x86-64"];
            assert.deepEqual(table.partitions.map((p) => [p.type, p.name, p.attrs]), [
                [t.root, "root-x86-64", "GUID:60"],
                [t.verity, "root-x86-64-verity", "GUID:60"],
                [t.signature, "root-x86-64-verity-sig", "GUID:60"],
            ]);
            const [root, verity, sig] = table.partitions;
            assert.equal(root.start, 2048);
            assert.equal(verity.start, root.start + root.size);
            assert.equal(sig.start, verity.start + verity.size);
            assert.equal(sig.size * table.sectorsize, SIGNATURE_PARTITION_SIZE);
            assert.equal((root.uuid + verity.uuid).replace(/-/g, ""), built.rootHash);
            const seed = defaultSeed(NAME, "sysext", "x86-64");
            assert.equal(table.id, seededUuid(seed, "disk"));
            assert.equal(sig.uuid, seededUuid(seed, "root-verity-sig"));
            await run(["sfdisk", "--verify", image]);
        });

        it("passes veritysetup verify with its root hash and fails with another", async function () {
            const data = await cutPartition(image, 0, path.join(tmp, "root.part"));
            const hash = await cutPartition(image, 1, path.join(tmp, "verity.part"));
            await run(["veritysetup", "verify", data, hash, built.rootHash]);
            await assert.rejects(run(["veritysetup", "verify", data, hash, flipHexDigit(built.rootHash)]), /Verification of root hash failed/);
        });

        it("carries a signature that verifies with the signing certificate and not with another", async function () {
            const sigPart = fs.readFileSync(await cutPartition(image, 2, path.join(tmp, "sig.part")));
            const json = sigPart.subarray(0, sigPart.indexOf(0)).toString();
            assert.ok(sigPart.subarray(json.length).every((b) => b === 0), "zero padding after the JSON");
            const sig = JSON.parse(json);
            assert.deepEqual(Object.keys(sig), ["rootHash", "certificateFingerprint", "signature"]);
            assert.equal(sig.rootHash, built.rootHash);
            const fingerprint = (await run(["openssl", "x509", "-in", keyA.certificate, "-noout", "-fingerprint", "-sha256"], { env: OPENSSL_ENV })).stdout;
            assert.equal(sig.certificateFingerprint, fingerprint.split("=")[1].trim().replace(/:/g, "").toLowerCase());
            assert.equal(built.certificateFingerprint, sig.certificateFingerprint);

            fs.writeFileSync(path.join(tmp, "rh.txt"), sig.rootHash);
            fs.writeFileSync(path.join(tmp, "rh.p7s"), Buffer.from(sig.signature, "base64"));
            const verifyWith = (cert: string) =>
                run(
                    [
                        "openssl", "smime", "-verify",
                        "-inform", "DER",
                        "-in", path.join(tmp, "rh.p7s"),
                        "-content", path.join(tmp, "rh.txt"),
                        "-binary",
                        "-CAfile", cert,
                        "-purpose", "any",
                        "-out", "/dev/null",
                    ],
                    { env: OPENSSL_ENV },
                );
            await verifyWith(keyA.certificate);
            await assert.rejects(verifyWith(keyB.certificate), /Verification failure|verify error/);
        });

        it("signs like systemd-repart: detached sha256 PKCS#7, signer cert included, no signed attributes", async function () {
            // Signed attributes would carry a signing time, making every build's bytes differ.
            const sigPart = fs.readFileSync(await cutPartition(image, 2, path.join(tmp, "sig2.part")));
            const sig = JSON.parse(sigPart.subarray(0, sigPart.indexOf(0)).toString());
            fs.writeFileSync(path.join(tmp, "structure.p7s"), Buffer.from(sig.signature, "base64"));
            const { stdout } = await run(["openssl", "cms", "-cmsout", "-print", "-noout", "-inform", "DER", "-in", path.join(tmp, "structure.p7s")], { env: OPENSSL_ENV });
            assert.match(stdout, /^\s*signedAttrs:\s*<ABSENT>/m); // not "unsignedAttrs", which is absent anyway
            assert.match(stdout, /eContent: <ABSENT>/);
            assert.match(stdout, /digestAlgorithm:\s*\n\s*algorithm: sha256 /);
            assert.match(stdout, /certificates:\s*\n\s*d\.certificate:/);
            assert.match(stdout, /issuer: CN=a/);
        });

        it("is accepted by verifySysextImage with its certificate and rejected with another", async function () {
            const result = await verifySysextImage(image, { workDir: path.join(tmp, "work"), certificate: keyA.certificate, requireSignature: true });
            assert.equal(result.rootHash, built.rootHash);
            assert.equal(result.signed, true);
            assert.equal(result.arch, "x86-64");
            await assert.rejects(verifySysextImage(image, { workDir: path.join(tmp, "work"), certificate: keyB.certificate }), (e: Error) => {
                assert.ok(e instanceof DdiError);
                assert.match(e.message, /was signed by certificate/);
                return true;
            });
            await assert.rejects(verifySysextImage(image, { workDir: path.join(tmp, "work"), rootHash: flipHexDigit(built.rootHash) }), /expected/);
            assert.deepEqual(fs.readdirSync(path.join(tmp, "work")), [], "scratch folders are removed");
        });

        it("fails verification when one byte of the filesystem changes", async function () {
            const copy = path.join(tmp, "corrupt.raw");
            const bytes = fs.readFileSync(image);
            bytes[built.partitions.root.offset + 2048] ^= 0xff;
            fs.writeFileSync(copy, bytes);
            await assert.rejects(verifySysextImage(copy, { workDir: path.join(tmp, "work") }), /verity hash tree does not match/);
        });

        it("holds the source files with their modes, root ownership, the symlink and the epoch as mtime", async function () {
            const root = await cutPartition(image, 0, path.join(tmp, "root-extract.part"));
            const out = path.join(tmp, "extracted");
            // fsck.erofs 1.5 exits 0 even on a bad superblock, so the tree comparison is what counts.
            await run(["fsck.erofs", `--extract=${out}`, root]);
            const expected = walk(tree).map((e) => ({ ...e, uid: 0, mtime: EPOCH }));
            assert.deepEqual(walk(out), expected);
            const link = walk(out).find((e) => e.path === "usr/local/bin/hi");
            assert.deepEqual([link?.type, link?.content], ["symlink", "hello"]);
        });

        it("lets systemd-dissect copy a file out (verity bypassed: this host has no device-mapper)", async function () {
            const out = path.join(tmp, "copied-hello");
            await run(["systemd-dissect", "--copy-from", image, "/usr/local/bin/hello", out], { env: { SYSTEMD_DISSECT_VERITY_EMBEDDED: "0" } });
            assert.equal(sha256(fs.readFileSync(out)), sha256(fs.readFileSync(path.join(tree, "usr/local/bin/hello"))));
            assert.equal(fs.statSync(out).mode & 0o777, 0o755);
        });
    });

    describe("reproducibility", function () {
        it("gives the same bytes for the same tree made in another order, place and time", async function () {
            // mtimes older than the epoch, and a SOURCE_DATE_EPOCH in the environment: erofs-utils 1.5
            // turns that variable into "clamp", which would keep the older mtimes.
            const other = makeTree(path.join(tmp, "tree-reversed"), { reverse: true, mtime: 1234567890 });
            const saved = process.env.SOURCE_DATE_EPOCH;
            process.env.SOURCE_DATE_EPOCH = String(EPOCH);
            let again: SysextImage;
            try {
                again = await buildInto("b", { sourceDir: other });
            } finally {
                if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
                else process.env.SOURCE_DATE_EPOCH = saved;
            }
            assert.equal(again.sha256, built.sha256);
            assert.equal(again.rootHash, built.rootHash);
        });

        it("gives other bytes for another epoch, tree or name", async function () {
            const epoch = await buildInto("c", { sourceDateEpoch: EPOCH + 1 });
            assert.notEqual(epoch.sha256, built.sha256);
            const changed = makeTree(path.join(tmp, "tree-changed"));
            fs.chmodSync(path.join(changed, "usr/share/hello/words.txt"), 0o600);
            const mode = await buildInto("d", { sourceDir: changed });
            assert.notEqual(mode.rootHash, built.rootHash);
            const seeded = await buildInto("e", { seed: "another seed" });
            assert.notEqual(seeded.rootHash, built.rootHash, "the seed sets the verity salt");
        });
    });

    describe("variants", function () {
        it("arm64 uses the arm64 partition type GUIDs and names", async function () {
            const armTree = makeTree(path.join(tmp, "tree-arm64"), { arch: "arm64" });
            const arm = await buildInto("arm64", { sourceDir: armTree, arch: "arm64" });
            const file = path.join(tmp, "arm64", `${NAME}.raw`);
            const table = await sfdiskJson(file);
            const t = PARTITION_TYPES.arm64;
            assert.deepEqual(table.partitions.map((p) => [p.type, p.name]), [
                [t.root, "root-arm64"],
                [t.verity, "root-arm64-verity"],
                [t.signature, "root-arm64-verity-sig"],
            ]);
            const result = await verifySysextImage(file, { workDir: path.join(tmp, "work"), certificate: keyA.certificate });
            assert.equal(result.arch, "arm64");
            assert.equal(result.rootHash, arm.rootHash);
        });

        it("unsigned images have no signature partition and still verify", async function () {
            const unsigned = await buildInto("unsigned", { signing: undefined });
            const file = path.join(tmp, "unsigned", `${NAME}.raw`);
            const table = await sfdiskJson(file);
            assert.deepEqual(table.partitions.map((p) => p.name), ["root-x86-64", "root-x86-64-verity"]);
            assert.equal(unsigned.rootHash, built.rootHash, "signing does not touch the data or hash tree");
            assert.equal(unsigned.partitions.signature, undefined);
            assert.equal(unsigned.certificateFingerprint, undefined);
            const report = JSON.parse((await run(["systemd-dissect", "--json=short", file])).stdout);
            const root = report.mounts.find((m: { designator: string }) => m.designator === "root");
            assert.notEqual(root.verity, "signed");
            assert.equal((await verifySysextImage(file, { workDir: path.join(tmp, "work") })).signed, false);
            await assert.rejects(verifySysextImage(file, { workDir: path.join(tmp, "work"), requireSignature: true }), /no verity signature partition/);
        });

        it("lz4hc compresses the filesystem and keeps the content", async function () {
            const packed = await buildInto("lz4hc", { compression: "lz4hc" });
            assert.ok(packed.partitions.root.size < built.partitions.root.size, `${packed.partitions.root.size} < ${built.partitions.root.size}`);
            const root = await cutPartition(path.join(tmp, "lz4hc", `${NAME}.raw`), 0, path.join(tmp, "lz4hc.part"));
            const out = path.join(tmp, "extracted-lz4hc");
            await run(["fsck.erofs", `--extract=${out}`, root]);
            assert.deepEqual(walk(out).map((e) => [e.path, e.content]), walk(tree).map((e) => [e.path, e.content]));
            const again = await buildInto("lz4hc-again", { compression: "lz4hc" });
            assert.equal(again.sha256, packed.sha256);
        });

        it("confext images need the release file under etc/", async function () {
            const confTree = makeTree(path.join(tmp, "tree-confext"), { kind: "confext" });
            const conf = await buildInto("confext", { sourceDir: confTree, kind: "confext" });
            assert.notEqual(conf.rootHash, built.rootHash);
            await assert.rejects(buildInto("confext-bad", { kind: "confext" }), /etc\/extension-release\.d\/extension-release\.hello/);
        });
    });

    describe("re-signing", function () {
        it("swaps only the signature partition and equals a fresh build with the new key", async function () {
            const resigned = path.join(tmp, "resigned", `${NAME}.raw`);
            fs.mkdirSync(path.dirname(resigned));
            const result = await resignSysextImage({ inFile: image, outFile: resigned, workDir: path.join(tmp, "work"), signing: keyB });
            const fresh = await buildInto("fresh-b", { signing: keyB });
            assert.equal(result.rootHash, built.rootHash);
            assert.equal(result.sha256, fresh.sha256);
            assert.notEqual(result.sha256, built.sha256);

            const before = fs.readFileSync(image);
            const after = fs.readFileSync(resigned);
            const sig = built.partitions.signature!;
            const outside = (b: Buffer) => Buffer.concat([b.subarray(0, sig.offset), b.subarray(sig.offset + sig.size)]);
            assert.ok(outside(before).equals(outside(after)), "bytes outside the signature partition are unchanged");

            await verifySysextImage(resigned, { workDir: path.join(tmp, "work"), certificate: keyB.certificate });
            await assert.rejects(verifySysextImage(resigned, { workDir: path.join(tmp, "work"), certificate: keyA.certificate }), DdiError);
        });

        it("refuses an unsigned image", async function () {
            const unsigned = path.join(tmp, "unsigned-2", `${NAME}.raw`);
            await buildInto("unsigned-2", { signing: undefined });
            await assert.rejects(
                resignSysextImage({ inFile: unsigned, outFile: unsigned, workDir: path.join(tmp, "work"), signing: keyB }),
                /not signed/,
            );
        });
    });

    describe("input checks", function () {
        it("rejects a tree without the release file, a foreign ARCHITECTURE, a bad name and a mismatched key", async function () {
            const empty = path.join(tmp, "tree-empty");
            fs.mkdirSync(empty);
            await assert.rejects(buildInto("x1", { sourceDir: empty }), /usr\/lib\/extension-release\.d\/extension-release\.hello/);
            await assert.rejects(buildInto("x2", { arch: "arm64" }), /ARCHITECTURE=x86-64 but the image is built for arm64/);
            await assert.rejects(buildInto("x3", { name: "../evil" }), /image name/);
            await assert.rejects(buildInto("x4", { signing: { key: keyA.key, certificate: keyB.certificate } }), /does not belong/);
            assert.equal(fs.existsSync(path.join(tmp, "x1", `${NAME}.raw`)), false);
        });
    });
});

// The SystemExtension handler called directly (as the dynamic-provider process calls it), building
// real images from every source form, checked with systemd-dissect, fsck.erofs and openssl.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { systemExtensionHandler as handler } from "../../provider/system-extension";
import { sha256File } from "../../provider/toolkit/files";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/engine";
import { makeCertificate } from "../helpers/pki";
import { buildImage, makeLayer, TarSpec, writeDockerSave, writeOciLayout, tarDirectory } from "../helpers/oci-fixtures";
import { dissectJson, extractRootTree, listTree, veritySignatureVerifies } from "../helpers/ddi-inspect";
import { startRegistry, TestRegistry } from "../helpers/registry";

const dir = (name: string): TarSpec => ({ name, type: "dir", mode: 0o755 });
const file = (name: string, content: string, mode = 0o644): TarSpec => ({ name, content, mode });

function payloadDir(root: string, files: Record<string, string>): string {
    for (const [rel, content] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
        fs.writeFileSync(path.join(root, rel), content, { mode: rel.includes("/bin/") ? 0o755 : 0o644 });
    }
    return root;
}

async function checked(news: Record<string, unknown>, olds: Record<string, unknown> = {}) {
    const r = await handler.check(olds, news);
    assert.deepStrictEqual(r.failures, [], JSON.stringify(r.failures));
    return r.inputs;
}

async function build(news: Record<string, unknown>) {
    return (await handler.create(await checked(news))).outs;
}

async function failuresOf(news: Record<string, unknown>) {
    return (await handler.check({}, news)).failures ?? [];
}

/** A two-layer image: the base has usr/bin/a and usr/bin/b; the top deletes b (whiteout) and adds c. */
async function twoLayerImage() {
    const base = await makeLayer([dir("usr"), dir("usr/bin"), file("usr/bin/a", "a\n", 0o755), file("usr/bin/b", "b\n", 0o755), dir("etc"), file("etc/os-release", "ID=test\n")]);
    const top = await makeLayer([dir("usr"), dir("usr/bin"), file("usr/bin/.wh.b", ""), file("usr/bin/c", "c\n", 0o755)]);
    return buildImage({ layers: [base, top] });
}

describe("SystemExtension handler", function () {
    this.timeout(180000);
    let work: string;
    let signer: { key: string; certificate: string };
    let other: { key: string; certificate: string };

    before(async () => {
        work = tempDir("sysext");
        signer = await makeCertificate(work, "sysext-db");
        other = await makeCertificate(work, "other-db");
    });

    describe("from a directory", () => {
        let outs: any;
        let src: string;
        before(async () => {
            src = payloadDir(path.join(work, "src-hello"), { "usr/local/bin/hello": "#!/bin/sh\necho hello\n", "usr/share/hello/data.txt": "data\n" });
            outs = await build({ name: "hello", outputDir: path.join(work, "out-a"), source: { dir: src }, signing: signer });
        });

        it("writes NAME.sysext.raw that systemd-dissect sees as a signed x86-64 system extension named NAME", async () => {
            assert.strictEqual(outs.path, path.join(work, "out-a", "hello.sysext.raw"));
            assert.strictEqual(outs.sha256, await sha256File(outs.path));
            assert.strictEqual(outs.size, fs.statSync(outs.path).size);
            // systemd 252 (here) derives the name by stripping ".raw" only; the Kairos target's newer
            // systemd strips ".sysext.raw". So the 252 check looks at a copy named NAME.raw.
            const asNamed = path.join(work, "hello.raw");
            fs.copyFileSync(outs.path, asNamed);
            const d = await dissectJson(asNamed);
            assert.strictEqual(d.useSystemExtension, true);
            assert.deepStrictEqual(d.extensionRelease, ["ID=_any", "ARCHITECTURE=x86-64"]);
            const root = d.mounts.find((m: any) => m.designator === "root");
            assert.deepStrictEqual([root.verity, root.architecture, root.fstype], ["signed", "x86-64", "erofs"]);
        });

        it("generates the extension-release file and reports it", () => {
            assert.strictEqual(outs.extensionRelease, "ID=_any\nARCHITECTURE=x86-64\n");
            assert.match(outs.sourceDigest, /^tree:sha256:[0-9a-f]{64}$/);
        });

        it("writes SYSEXT_SCOPE and EXTENSION_RELOAD_MANAGER from release; systemd-dissect reads them back", async () => {
            const scoped = await build({ name: "scoped", outputDir: path.join(work, "out-scoped"), source: { dir: src }, release: { scope: ["system", "initrd"], reloadManager: true } });
            assert.strictEqual(scoped.extensionRelease, "ID=_any\nARCHITECTURE=x86-64\nSYSEXT_SCOPE=system initrd\nEXTENSION_RELOAD_MANAGER=1\n");
            const asNamed = path.join(work, "scoped.raw");
            fs.copyFileSync(scoped.path, asNamed);
            assert.deepStrictEqual((await dissectJson(asNamed)).extensionRelease, ["ID=_any", "ARCHITECTURE=x86-64", "SYSEXT_SCOPE=system initrd", "EXTENSION_RELOAD_MANAGER=1"]);
            const confext = await build({ name: "scoped-conf", kind: "confext", outputDir: path.join(work, "out-scoped"), source: { dir: payloadDir(path.join(work, "src-scoped-conf"), { "etc/x.conf": "x\n" }) }, release: { scope: ["system"] } });
            assert.match(confext.extensionRelease, /^CONFEXT_SCOPE=system$/m);
            const f = await failuresOf({ name: "scoped", outputDir: path.join(work, "out-scoped"), source: { dir: src }, release: { scope: ["host"] } });
            assert.strictEqual(f[0].property, "release.scope[0]");
        });

        it("signs the root hash with the db key: verifies with its certificate, not with another", async () => {
            const good = await veritySignatureVerifies(outs.path, signer.certificate, work);
            assert.ok(good.ok);
            assert.strictEqual(good.rootHash, outs.rootHash);
            assert.ok(!(await veritySignatureVerifies(outs.path, other.certificate, work)).ok);
        });

        it("holds exactly the source files, modes kept", async () => {
            const tree = await extractRootTree(outs.path, path.join(work, "x-a"));
            assert.deepStrictEqual(listTree(tree), ["usr/lib/extension-release.d/extension-release.hello", "usr/local/bin/hello", "usr/share/hello/data.txt"]);
            assert.strictEqual(fs.readFileSync(path.join(tree, "usr/local/bin/hello"), "utf8"), "#!/bin/sh\necho hello\n");
            assert.strictEqual(fs.statSync(path.join(tree, "usr/local/bin/hello")).mode & 0o777, 0o755);
        });

        it("is reproducible: a clean build of a copy elsewhere has the same sha256", async () => {
            const copy = path.join(work, "src-hello-copy");
            fs.cpSync(src, copy, { recursive: true });
            const again = await build({ name: "hello", outputDir: path.join(work, "out-b"), source: { dir: copy }, signing: signer });
            assert.strictEqual(again.sha256, outs.sha256);
            assert.strictEqual(again.inputHash, outs.inputHash);
        });

        it("reads a folder that needs no mirror as it is: the image a mirrored build makes, and the source's inodes untouched", async () => {
            const files = { "usr/local/bin/hello": "#!/bin/sh\necho hello\n", "usr/lib/extension-release.d/extension-release.plain": "ID=_any\nARCHITECTURE=x86-64\n" };
            const asIs = payloadDir(path.join(work, "src-as-is"), files);
            fs.chmodSync(asIs, 0o755);
            const mirrored = payloadDir(path.join(work, "src-mirrored"), files);
            fs.chmodSync(mirrored, 0o700); // not the image root's mode: only a mirror (made 0755) can give the same image
            const ctimeOf = (root: string) => fs.statSync(path.join(root, "usr/local/bin/hello"), { bigint: true }).ctimeNs;
            const [asIsBefore, mirroredBefore] = [ctimeOf(asIs), ctimeOf(mirrored)];
            const a = await build({ name: "plain", outputDir: path.join(work, "out-as-is"), source: { dir: asIs }, signing: signer });
            const b = await build({ name: "plain", outputDir: path.join(work, "out-mirrored"), source: { dir: mirrored }, signing: signer });
            assert.strictEqual(a.sha256, b.sha256);
            assert.strictEqual(ctimeOf(asIs), asIsBefore, "read as it is: no hard link touched the source");
            assert.notStrictEqual(ctimeOf(mirrored), mirroredBefore, "mirrored: the hard link changed the ctime");
        });

        it("re-signs with a new key by rewriting only the signature: same root hash, new signer", async () => {
            const news = await checked({ name: "hello", outputDir: path.join(work, "out-a"), source: { dir: src }, signing: other });
            assert.strictEqual(news.contentHash, outs.contentHash);
            assert.notStrictEqual(news.inputHash, outs.inputHash);
            assert.deepStrictEqual(await handler.diff("id", outs, news), { changes: true, replaces: [] });
            const before = fs.readFileSync(outs.path);
            const updated = (await handler.update!("id", outs, news)).outs;
            assert.strictEqual(updated.rootHash, outs.rootHash);
            assert.notStrictEqual(updated.sha256, outs.sha256);
            assert.ok((await veritySignatureVerifies(updated.path, other.certificate, work)).ok);
            const after = fs.readFileSync(updated.path);
            const sigStart = after.length - 16384 - 33 * 512 - 4096; // the signature partition sits near the end
            assert.ok(before.subarray(0, sigStart).equals(after.subarray(0, sigStart)), "bytes before the signature partition are unchanged");
        });

        it("read() reports a deleted or altered artifact so the next up rebuilds it", async () => {
            const f = path.join(work, "out-b", "hello.sysext.raw");
            const props = { path: f, sha256: await sha256File(f) };
            assert.deepStrictEqual((await handler.read!("id", props)).props.drift, []);
            fs.appendFileSync(f, "x");
            assert.deepStrictEqual((await handler.read!("id", props)).props.drift, ["hello.sysext.raw: altered"]);
            fs.rmSync(f);
            assert.deepStrictEqual((await handler.read!("id", props)).props.drift, ["hello.sysext.raw: missing"]);
        });
    });

    describe("from images", () => {
        let layoutTar: string;
        let dockerTar: string;
        before(async () => {
            const image = await twoLayerImage();
            const layout = path.join(work, "layout");
            writeOciLayout(layout, [{ image, name: "test/app:1" }]);
            layoutTar = path.join(work, "layout.tar");
            tarDirectory(layout, layoutTar);
            dockerTar = path.join(work, "docker-save.tar");
            writeDockerSave(dockerTar, [{ image, repoTags: ["test/app:1"] }]);
        });

        it("layers=last takes only the last layer (auroraboot's semantics), from an OCI layout tar", async () => {
            const outs = await build({ name: "app", outputDir: path.join(work, "out-last"), source: { ociLayout: layoutTar }, signing: signer });
            const tree = await extractRootTree(outs.path, path.join(work, "x-last"));
            assert.deepStrictEqual(listTree(tree), ["usr/bin/c", "usr/lib/extension-release.d/extension-release.app"]);
            assert.match(outs.sourceDigest, /^layer:sha256:/);
        });

        it("layers=all flattens every layer and applies the whiteout, from a docker-save tar", async () => {
            const outs = await build({
                name: "app", outputDir: path.join(work, "out-all"), source: { dockerArchive: dockerTar }, layers: "all", dropDisallowedPaths: true, signing: signer,
            });
            const tree = await extractRootTree(outs.path, path.join(work, "x-all"));
            assert.deepStrictEqual(listTree(tree), ["usr/bin/a", "usr/bin/c", "usr/lib/extension-release.d/extension-release.app"]);
            assert.deepStrictEqual(outs.droppedPaths, ["etc", "etc/os-release"]);
        });

        it("fails on files outside /usr, listing them, unless told to drop them; nothing is written", async () => {
            const out = path.join(work, "out-strict");
            const inputs = await checked({ name: "app", outputDir: out, source: { dockerArchive: dockerTar }, layers: "all", signing: signer });
            await assert.rejects(handler.create(inputs), /outside the allowed paths \(usr\):\n {2}etc\n {2}etc\/os-release/);
            assert.ok(!fs.existsSync(out));
            assert.deepStrictEqual(fs.readdirSync(work).filter((f) => f.includes(".work-") || f.includes(".staging-")), []);
        });
    });

    describe("a source whose links point at the host (its '/' is its own root, as on the booted system)", () => {
        let outside: string;
        const hostFiles = () => Object.fromEntries(listTree(outside).map((f) => [f, fs.readFileSync(path.join(outside, f), "utf8")]));
        before(() => {
            outside = tempDir("sysext-host"); // stands for a host folder: not under `work`
            fs.writeFileSync(path.join(outside, "extension-release.decoy"), "ID=_any\n");
            fs.mkdirSync(path.join(outside, "lib", "extension-release.d"), { recursive: true });
            fs.writeFileSync(path.join(outside, "lib", "keep.txt"), "host\n");
        });

        const cases: [string, TarSpec[], string][] = [
            ["an absolute link at usr/lib/extension-release.d", [dir("usr"), dir("usr/lib"), { name: "usr/lib/extension-release.d", type: "symlink", linkname: "OUTSIDE" }, dir("usr/bin"), file("usr/bin/x", "x\n", 0o755)], "OUTSIDE"],
            ["an absolute link at a parent folder (usr/lib)", [dir("usr"), { name: "usr/lib", type: "symlink", linkname: "OUTSIDE/lib" }, dir("usr/bin"), file("usr/bin/x", "x\n", 0o755)], "OUTSIDE/lib/extension-release.d"],
        ];
        for (const [what, entries, lands] of cases) {
            it(`${what}: resolves inside the image; nothing on the host is listed or written`, async () => {
                const before = hostFiles();
                const at = (s: string) => s.replace("OUTSIDE", outside.slice(1)).replace(/^\//, "");
                const layout = path.join(work, `layout-${what.length}`);
                writeOciLayout(layout, [{ image: buildImage({ layers: [await makeLayer(entries.map((e) => (e.linkname ? { ...e, linkname: e.linkname.replace("OUTSIDE", outside) } : e)))] }), name: "latest" }]);
                const outs = await build({ name: "app", outputDir: path.join(work, `out-link-${what.length}`), source: { ociLayout: layout }, signing: signer });
                assert.deepStrictEqual(hostFiles(), before, "the host folder is as it was");
                assert.strictEqual(outs.extensionRelease, "ID=_any\nARCHITECTURE=x86-64\n");
                const tree = await extractRootTree(outs.path, path.join(work, `x-link-${what.length}`));
                assert.ok(listTree(tree).includes(`${at(lands)}/extension-release.app`), JSON.stringify(listTree(tree)));
            });
        }

        it("a directory source with such a link: check and build stay inside the source and its copy", async () => {
            const before = hostFiles();
            const src = payloadDir(path.join(work, "src-link"), { "usr/bin/x": "x\n" });
            fs.mkdirSync(path.join(src, "usr", "lib"));
            fs.symlinkSync(outside, path.join(src, "usr", "lib", "extension-release.d"));
            // the host folder's extension-release.decoy is not the source's: no "another name" refusal
            const outs = await build({ name: "linked", outputDir: path.join(work, "out-link-dir"), source: { dir: src }, signing: signer });
            assert.deepStrictEqual(hostFiles(), before);
            assert.deepStrictEqual(listTree(src), ["usr/bin/x", "usr/lib/extension-release.d"], "the source folder is only read");
            const tree = await extractRootTree(outs.path, path.join(work, "x-link-dir"));
            assert.ok(listTree(tree).includes(`${outside.slice(1)}/extension-release.linked`), JSON.stringify(listTree(tree)));
        });
    });

    describe("from a registry (Debian's docker-registry on 127.0.0.1, pulled with skopeo)", () => {
        let registry: TestRegistry;
        before(async () => (registry = await startRegistry()));
        after(async () => registry?.stop());

        async function pushPayload(text: string): Promise<void> {
            const layer = await makeLayer([dir("usr"), dir("usr/bin"), file("usr/bin/tool", text, 0o755)]);
            const layout = tempDir("push");
            writeOciLayout(layout, [{ image: buildImage({ layers: [layer] }), name: "v1" }]);
            await registry.push(layout, "v1", "tools/tool:v1");
        }

        it("records the manifest digest, builds from it, and sees a moved tag as a change", async () => {
            await pushPayload("version one\n");
            const news = { name: "tool", outputDir: path.join(work, "out-reg"), source: { image: `${registry.host}/tools/tool:v1`, insecureRegistry: true }, signing: signer };
            const first = await checked(news);
            const digest = (await fetch(`http://${registry.host}/v2/tools/tool/manifests/v1`, { method: "HEAD", headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } })).headers.get("docker-content-digest");
            assert.strictEqual(first.sourceDigest, `manifest:${digest}`);
            const outs = (await handler.create(first)).outs;
            const tree = await extractRootTree(outs.path, path.join(work, "x-reg"));
            assert.strictEqual(fs.readFileSync(path.join(tree, "usr/bin/tool"), "utf8"), "version one\n");

            assert.strictEqual((await checked(news)).inputHash, outs.inputHash, "same tag, same digest: no change");
            await pushPayload("version two\n");
            const moved = await checked(news);
            assert.notStrictEqual(moved.sourceDigest, outs.sourceDigest);
            assert.strictEqual((await handler.diff("id", outs, moved)).changes, true);
        });
    });

    describe("bad input: one clear error each, previous artifact intact", () => {
        let out: string;
        let previous: string;
        before(async () => {
            out = path.join(work, "out-bad");
            const outs = await build({ name: "bad", outputDir: out, source: { dir: payloadDir(path.join(work, "src-bad"), { "usr/bin/ok": "ok\n" }) }, signing: signer });
            previous = outs.sha256;
        });
        afterEach(async () => {
            assert.strictEqual(await sha256File(path.join(out, "bad.sysext.raw")), previous, "the previous artifact is intact");
            assert.deepStrictEqual(fs.readdirSync(out), ["bad.sysext.raw"]);
        });

        it("an unknown compression", async () => {
            const f = await failuresOf({ name: "bad", outputDir: out, source: { dir: work }, compression: "xz" });
            assert.deepStrictEqual(f, [{ property: "compression", reason: `"xz" is not allowed; allowed: none, lz4, lz4hc` }]);
        });

        it("a name systemd would cut at '_'", async () => {
            const f = await failuresOf({ name: "k3s_v1", outputDir: out, source: { dir: work } });
            assert.strictEqual(f[0].property, "name");
        });

        it("two sources at once, or none", async () => {
            assert.deepStrictEqual(await failuresOf({ name: "bad", outputDir: out, source: { dir: work, image: "x:1" } }), [{ property: "source", reason: "names dir and image; give exactly one" }]);
            assert.strictEqual((await failuresOf({ name: "bad", outputDir: out, source: {} }))[0].reason, "names no source; give one of dir, ociLayout, dockerArchive, image, dockerfile");
        });

        it("a FIFO (or device node) in a directory source, named in the error", async () => {
            const src = payloadDir(path.join(work, "src-fifo"), { "usr/bin/ok": "ok\n" });
            await run(["mkfifo", path.join(src, "usr/bin/pipe")]);
            const inputs = await checked({ name: "bad", outputDir: out, source: { dir: src }, signing: signer });
            await assert.rejects(handler.create(inputs), /src-fifo holds 1 device node\(s\), FIFO\(s\) or socket\(s\), which an image cannot carry: usr\/bin\/pipe/);
        });

        it("an extension-release file for another name", async () => {
            const src = payloadDir(path.join(work, "src-misnamed"), { "usr/bin/x": "x\n", "usr/lib/extension-release.d/extension-release.other": "ID=_any\n" });
            const f = await failuresOf({ name: "bad", outputDir: out, source: { dir: src }, signing: signer });
            assert.deepStrictEqual(f.map((p: any) => p.property), ["source.dir"]);
            assert.match(f[0].reason, /extension-release\.other, but this extension is named 'bad' \(systemd needs usr\/lib\/extension-release\.d\/extension-release\.bad\)/);
        });

        it("an extension-release file for another architecture", async () => {
            const src = payloadDir(path.join(work, "src-arm"), { "usr/bin/x": "x\n", "usr/lib/extension-release.d/extension-release.bad": "ID=_any\nARCHITECTURE=arm64\n" });
            const inputs = await checked({ name: "bad", outputDir: out, source: { dir: src }, signing: signer });
            await assert.rejects(handler.create(inputs), /says ARCHITECTURE=arm64, but the extension is built for x86-64/);
        });

        it("a layer entry that climbs out with ../", async () => {
            const evil = await makeLayer([dir("usr"), file("usr/../../escaped", "pwned\n")]);
            const layout = path.join(work, "evil-layout");
            writeOciLayout(layout, [{ image: buildImage({ layers: [evil] }) }]);
            const inputs = await checked({ name: "bad", outputDir: out, source: { ociLayout: layout }, signing: signer });
            await assert.rejects(handler.create(inputs), /refused/);
            assert.ok(!fs.existsSync(path.join(work, "escaped")) && !fs.existsSync(path.join(path.dirname(work), "escaped")));
        });

        it("a signing key that does not match its certificate", async () => {
            const f = await failuresOf({ name: "bad", outputDir: out, source: { dir: work }, signing: { key: signer.key, certificate: other.certificate } });
            assert.deepStrictEqual(f, [{ property: "signing", reason: `the key ${signer.key} does not match the certificate ${other.certificate}` }]);
        });
    });
});

// The bad-input table: every resource driven through the inputs users get wrong (wrong types, values out
// of range, missing and unreadable files, mismatched keys, hostile archives, paths that climb out,
// wrong architectures, duplicate and mismatched extension names, an oversize UKI). For each: one clear
// error naming the property, nothing written, the previous artifacts and outputs (the state) intact.
// Most are refused by check (the preview); the rest by the build, before anything is moved into place.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { handlerFor } from "../../provider/handlers";
import { SIGNING_KEYS_TOKEN } from "../../provider/signing-keys";
import { SYSTEM_EXTENSION_TOKEN } from "../../provider/system-extension";
import { KAIROS_UKI_IMAGE_TOKEN } from "../../provider/kairos-uki-image";
import { BOOT_MEDIA_TOKEN } from "../../provider/boot-media";
import { PROMOTED_ARTIFACT_TOKEN } from "../../provider/promoted-artifact";
import { sha256File } from "../../provider/toolkit/files";
import { run } from "../../provider/toolkit/run";
import { makeCertificate } from "../helpers/pki";
import { tempDir } from "../helpers/temp";
import { treeSnapshot } from "../helpers/tree";
import { engineStack } from "../helpers/engine";
import { SystemExtension } from "../../provider/system-extension";
import { buildTestOsRootfs } from "../helpers/test-os";
import { buildImage, buildTar, makeLayer, TarSpec, writeOciLayout } from "../helpers/oci-fixtures";

type Inputs = Record<string, any>;
interface BadInput {
    what: string;
    /** The bad inputs, made from the good ones. */
    inputs: (good: Inputs) => Inputs | Promise<Inputs>;
    /** Run between check and the build (a file changed after the preview). */
    afterCheck?: () => void;
    /** The property the error must name: check's failure property, or a build error's message. */
    names: RegExp;
    /**
     * Refused by the build rather than by check (it needs what only the build reads). Asserted both ways:
     * an atBuild case must pass check and fail create/update; any other case must be refused by check,
     * in the preview, before anything runs.
     */
    atBuild?: boolean;
}

describe("the bad-input table", function () {
    this.timeout(600000);
    let work: string;
    let out: string;
    const good: Record<string, Inputs> = {};
    const built: Record<string, Inputs> = {};
    let signer: { key: string; certificate: string };
    let stranger: { key: string; certificate: string };
    let counted = 0;
    const extensions: Record<"unsigned" | "foreign", string> = { unsigned: "", foreign: "" };
    /** A copy of `efi` with its signature removed (and, given a signer, signed by it instead). */
    const resigned = async (efi: string, name: string, by?: { key: string; certificate: string }) => {
        const unsigned = f(`${name}.unsigned.efi`);
        fs.copyFileSync(efi, unsigned);
        await run(["sbattach", "--remove", unsigned]);
        if (!by) return unsigned;
        await run(["sbsign", "--key", by.key, "--cert", by.certificate, "--output", f(`${name}.efi`), unsigned]);
        return f(`${name}.efi`);
    };

    const f = (...p: string[]) => path.join(work, ...p);
    const payload = (name: string, files: Record<string, string>) => {
        for (const [rel, content] of Object.entries(files)) {
            fs.mkdirSync(path.dirname(f(name, rel)), { recursive: true });
            fs.writeFileSync(f(name, rel), content);
        }
        return f(name);
    };
    const layout = async (name: string, entries: TarSpec[], arch = "amd64") => {
        writeOciLayout(f(name), [{ image: buildImage({ layers: [await makeLayer(entries)], arch }), name: "latest" }]);
        return f(name);
    };

    before(async function () {
        this.timeout(300000);
        work = tempDir("bad-input");
        out = f("out");
        signer = await makeCertificate(work, "db");
        stranger = await makeCertificate(work, "stranger");
        fs.writeFileSync(f("garbage"), "not a certificate, a key, a list or an image\n");
        fs.mkdirSync(f("a-folder"));
        payload("ext-src", { "usr/bin/tool": "tool 1\n" });
        const rootfs = path.join(tempDir("bad-input-os"), "rootfs"); // outside `work`, which every case snapshots
        await buildTestOsRootfs(rootfs);

        good.SigningKeys = { name: "table", outputDir: path.join(out, "keys") };
        good.SystemExtension = { name: "tool", outputDir: path.join(out, "extensions"), source: { dir: f("ext-src") }, signing: signer };
        built.SigningKeys = await create(SIGNING_KEYS_TOKEN, good.SigningKeys);
        const keys = built.SigningKeys;
        // the media enrol these keys, and Kairos merges only extensions signed by one of them
        good.SystemExtension.signing = { key: keys.files.db.key, certificate: keys.files.db.pem };
        built.SystemExtension = await create(SYSTEM_EXTENSION_TOKEN, good.SystemExtension);
        const extension = async (dir: string, signing?: { key: string; certificate: string }) => (await create(SYSTEM_EXTENSION_TOKEN, { ...good.SystemExtension, outputDir: path.join(out, dir), signing })).path;
        extensions.unsigned = await extension("ext-unsigned");
        extensions.foreign = await extension("ext-foreign", stranger);
        good.KairosUkiImage = { outputDir: path.join(out, "uki"), source: { dir: rootfs }, signing: { key: keys.files.db.key, certificate: keys.files.db.pem }, pcrKey: keys.tpmPcrKeyFile };
        built.KairosUkiImage = await create(KAIROS_UKI_IMAGE_TOKEN, good.KairosUkiImage);
        const enrollKeys = { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth };
        good.BootMedia = { name: "media", outputDir: path.join(out, "media"), type: "dir", secureBootEnroll: "force", uki: built.KairosUkiImage.bootFiles, enrollKeys, extensions: [built.SystemExtension.path] };
        built.BootMedia = await create(BOOT_MEDIA_TOKEN, good.BootMedia);
        good.PromotedArtifact = { source: built.SystemExtension.path, expectedSha256: built.SystemExtension.sha256, outputDir: path.join(out, "prod") };
        built.PromotedArtifact = await create(PROMOTED_ARTIFACT_TOKEN, good.PromotedArtifact);
    });

    after(() => console.log(`      bad inputs run: ${counted}`));

    async function create(token: string, inputs: Inputs): Promise<Inputs> {
        const h = handlerFor(token);
        const { inputs: checked, failures } = await h.check({}, inputs);
        assert.deepStrictEqual(failures ?? [], []);
        return (await h.create(checked)).outs;
    }

    const TABLE: Record<string, [string, BadInput[]]> = {
        SigningKeys: [SIGNING_KEYS_TOKEN, [
            { what: "name of the wrong type", inputs: (g) => ({ ...g, name: 42 }), names: /^name$/ },
            { what: "an RSA key size not offered", inputs: (g) => ({ ...g, keySize: 1024 }), names: /^keySize$/ },
            { what: "zero days of validity", inputs: (g) => ({ ...g, validityDays: 0 }), names: /^validityDays$/ },
            { what: "validity as text", inputs: (g) => ({ ...g, validityDays: "ten" }), names: /^validityDays$/ },
            { what: "a negative rotation", inputs: (g) => ({ ...g, rotation: -1 }), names: /^rotation$/ },
            { what: "a fractional rotation", inputs: (g) => ({ ...g, rotation: 1.5 }), names: /^rotation$/ },
            { what: "an owner GUID that is not a GUID", inputs: (g) => ({ ...g, ownerGuid: "not-a-guid" }), names: /^ownerGuid$/ },
            { what: "a timestamp that is not a time", inputs: (g) => ({ ...g, authTimestamp: "yesterday" }), names: /^authTimestamp$/ },
            { what: "a bigger key without a rotation (new keys must be asked for)", inputs: (g) => ({ ...g, keySize: 3072 }), names: /^(rotation|keySize)$/ },
            { what: "an unknown property", inputs: (g) => ({ ...g, colour: "red" }), names: /colour/ },
            { what: "a token URI that carries the PIN (it would land in the state)", inputs: (g) => ({ ...g, token: "pkcs11:token=kairos-prod;pin-value=123456" }), names: /^token$/ },
            { what: "a new key folder that already holds someone's keys", inputs: (g) => ({ ...g, outputDir: fs.mkdirSync(f("foreign"), { recursive: true }) && (fs.copyFileSync(signer.key, f("foreign", "db.key")), f("foreign")) }), names: /^outputDir$/ },
            { what: "import from a folder that does not exist", inputs: (g) => ({ ...g, outputDir: f("new-keys-1"), import: { dir: f("no-such-folder") } }), names: /^import/ },
            { what: "import of a key that does not match its certificate", inputs: (g) => ({ ...g, outputDir: f("new-keys-2"), import: { PK: { key: stranger.key, certificate: signer.certificate }, KEK: signer, db: signer } }), names: /^import/ },
            { what: "import of a folder where a key file should be", inputs: (g) => ({ ...g, outputDir: f("new-keys-3"), import: { PK: { key: f("a-folder"), certificate: signer.certificate }, KEK: signer, db: signer } }), names: /^import/ },
            { what: "an extra signature list that is not one", inputs: (g) => ({ ...g, extraSignatureLists: { db: [f("garbage")] } }), names: /extraSignatureLists\.db: .* is not an EFI signature list/, atBuild: true },
        ]],
        SystemExtension: [SYSTEM_EXTENSION_TOKEN, [
            { what: "a name that climbs out of the folder", inputs: (g) => ({ ...g, name: "../evil" }), names: /^name$/ },
            { what: "an empty name", inputs: (g) => ({ ...g, name: "" }), names: /^name$/ },
            { what: "an unknown kind", inputs: (g) => ({ ...g, kind: "bogus" }), names: /^kind$/ },
            { what: "an unknown architecture", inputs: (g) => ({ ...g, arch: "sparc" }), names: /^arch$/ },
            { what: "an unknown compression", inputs: (g) => ({ ...g, compression: "zip" }), names: /^compression$/ },
            { what: "a negative source date", inputs: (g) => ({ ...g, sourceDateEpoch: -5 }), names: /^sourceDateEpoch$/ },
            { what: "an unknown layer selection", inputs: (g) => ({ ...g, layers: "some" }), names: /^layers$/ },
            { what: "a source with no form", inputs: (g) => ({ ...g, source: {} }), names: /^source/ },
            { what: "a source with two forms", inputs: (g) => ({ ...g, source: { dir: f("ext-src"), ociLayout: f("ext-src") } }), names: /^source/ },
            { what: "a source folder that does not exist", inputs: (g) => ({ ...g, source: { dir: f("nope") } }), names: /^source/ },
            { what: "a source folder that is a file", inputs: (g) => ({ ...g, source: { dir: f("garbage") } }), names: /^source/ },
            { what: "a signing key that does not match its certificate", inputs: (g) => ({ ...g, signing: { key: stranger.key, certificate: signer.certificate } }), names: /^signing/ },
            { what: "a signing certificate that is garbage", inputs: (g) => ({ ...g, signing: { key: signer.key, certificate: f("garbage") } }), names: /^signing/ },
            { what: "a missing signing key", inputs: (g) => ({ ...g, signing: { key: f("nope.key"), certificate: signer.certificate } }), names: /^signing/ },
            { what: "a token key URI with the PIN in its query", inputs: (g) => ({ ...g, signing: { key: "pkcs11:token=kairos-prod;object=db?pin-value=123456", certificate: signer.certificate } }), names: /^signing\.key$/ },
            { what: "a payload with a file outside /usr and /opt", inputs: (g) => ({ ...g, source: { dir: payload("etc-src", { "usr/bin/x": "x\n", "etc/passwd": "root\n" }) } }), names: /^SystemExtension tool: step "read source" failed: source: .*\n {2}etc\n.*dropDisallowedPaths/s, atBuild: true },
            { what: "an extension-release file of another name", inputs: (g) => ({ ...g, source: { dir: payload("rel-src", { "usr/bin/x": "x\n", "usr/lib/extension-release.d/extension-release.other": "ID=_any\n" }) } }), names: /^source/ },
            { what: "an image layer with an entry that climbs out", inputs: async (g) => ({ ...g, source: { ociLayout: await layout("evil-layout", [{ name: "usr", type: "dir" }, { name: "usr/../../../etc/evil", content: "x" }]) } }), names: /\.\.\/|climbs|unsafe|outside/i, atBuild: true },
            { what: "an image layer with a symlink that points out, then a file through it", inputs: async (g) => ({ ...g, source: { ociLayout: await layout("link-layout", [{ name: "usr", type: "dir" }, { name: "usr/lib", type: "symlink", linkname: "/etc" }, { name: "usr/lib/evil", content: "x" }]) } }), names: /usr\/lib|symlink|link|outside|unsafe/i, atBuild: true },
            { what: "an image for another architecture", inputs: async (g) => ({ ...g, source: { ociLayout: await layout("arm-layout", [{ name: "usr", type: "dir" }, { name: "usr/bin", type: "dir" }, { name: "usr/bin/x", content: "x" }], "arm64") } }), names: /^source$/ },
            { what: "an OCI layout whose index.json is not JSON", inputs: (g) => ({ ...g, source: { ociLayout: (fs.mkdirSync(f("bad-index"), { recursive: true }), fs.writeFileSync(f("bad-index", "oci-layout"), '{"imageLayoutVersion":"1.0.0"}'), fs.writeFileSync(f("bad-index", "index.json"), "{nope"), f("bad-index")) } }), names: /^source$/ },
            { what: "a docker save archive whose manifest points outside it", inputs: (g) => ({ ...g, source: { dockerArchive: hostileDockerSave() } }), names: /^source$/ },
            { what: "an artifact store whose bucket is not a bucket name", inputs: (g) => ({ ...g, artifactStore: { bucket: "My_Bucket" } }), names: /^artifactStore\.bucket$/ },
            { what: "an artifact store endpoint without a scheme", inputs: (g) => ({ ...g, artifactStore: { bucket: "artifacts", endpoint: "127.0.0.1:8333" } }), names: /^artifactStore\.endpoint$/ },
            { what: "an unknown onCorrupt policy", inputs: (g) => ({ ...g, artifactStore: { bucket: "artifacts", onCorrupt: "ignore" } }), names: /^artifactStore\.onCorrupt$/ },
        ]],
        KairosUkiImage: [KAIROS_UKI_IMAGE_TOKEN, [
            { what: "an initrd compression level out of range", inputs: (g) => ({ ...g, initrdCompressionLevel: 99 }), names: /^initrdCompressionLevel$/ },
            { what: "an initrd window the kernel cannot unpack", inputs: (g) => ({ ...g, initrdWindowLog: 28 }), names: /^initrdWindowLog$/ },
            { what: "an initrd window below zstd's smallest", inputs: (g) => ({ ...g, initrdWindowLog: 5 }), names: /^initrdWindowLog$/ },
            { what: "a size limit of zero", inputs: (g) => ({ ...g, maxUkiSizeMB: 0 }), names: /^maxUkiSizeMB$/ },
            { what: "a UKI over the size limit (oversize EFI)", inputs: (g) => ({ ...g, maxUkiSizeMB: 1 }), names: /maxUkiSizeMB/, atBuild: true },
            { what: "a PCR key that does not exist", inputs: (g) => ({ ...g, pcrKey: f("nope.pem") }), names: /^pcrKey$/ },
            { what: "a PCR key that is a certificate", inputs: (g) => ({ ...g, pcrKey: signer.certificate }), names: /^pcrKey$/ },
            { what: "a splash image that does not exist", inputs: (g) => ({ ...g, splash: f("nope.bmp") }), names: /^splash$/ },
            { what: "a command line with a line break", inputs: (g) => ({ ...g, extendCmdline: "quiet\ninit=/bin/sh" }), names: /^extendCmdline$/ },
            { what: "an unknown loader entry key", inputs: (g) => ({ ...g, loaderEntryKey: "bogus" }), names: /^loaderEntryKey$/ },
            { what: "a signing key for another certificate", inputs: (g) => ({ ...g, signing: { key: stranger.key, certificate: signer.certificate } }), names: /^signing/ },
            { what: "an OS image for another architecture", inputs: async (g) => ({ ...g, source: { ociLayout: await layout("arm-os", [{ name: "etc", type: "dir" }, { name: "etc/os-release", content: "ID=x\n" }], "arm64") } }), names: /^source$/ },
        ]],
        BootMedia: [BOOT_MEDIA_TOKEN, [
            { what: "an unknown media type", inputs: (g) => ({ ...g, type: "floppy" }), names: /^type$/ },
            { what: "an overlay file that climbs out of the media", inputs: (g) => ({ ...g, overlayFiles: [{ source: f("garbage"), path: "../../etc/x" }] }), names: /^overlayFiles/ },
            { what: "an overlay source that does not exist", inputs: (g) => ({ ...g, overlayFiles: [{ source: f("nope"), path: "x.txt" }] }), names: /^overlayFiles/ },
            { what: "an extension that does not exist", inputs: (g) => ({ ...g, extensions: [f("nope.sysext.raw")] }), names: /^extensions/ },
            { what: "the same extension twice (duplicate names)", inputs: (g) => ({ ...g, extensions: [g.extensions[0], g.extensions[0]] }), names: /^extensions/ },
            { what: "an extension that is not an image", inputs: (g) => ({ ...g, extensions: [(fs.copyFileSync(f("garbage"), f("fake.sysext.raw")), f("fake.sysext.raw"))] }), names: /^extensions|fake\.sysext\.raw/ },
            { what: "an unknown enrolment mode", inputs: (g) => ({ ...g, secureBootEnroll: "always" }), names: /^secureBootEnroll$/ },
            { what: "a negative menu timeout", inputs: (g) => ({ ...g, timeout: -1 }), names: /^timeout$/ },
            { what: "an enrolment .auth that does not exist", inputs: (g) => ({ ...g, enrollKeys: { ...g.enrollKeys, db: f("nope.auth") } }), names: /^enrollKeys/ },
            { what: "a UKI file that does not exist", inputs: (g) => ({ ...g, uki: { ...g.uki, efiFiles: [f("nope.efi")] } }), names: /^uki/ },
            { what: "a UKI signed by a key that is not in the enrolled db", inputs: async (g) => ({ ...g, uki: { ...g.uki, efiFiles: [await resigned(g.uki.efiFiles[0], "foreign-uki", stranger)] } }), names: /^uki\.efiFiles\[0\]$/ },
            { what: "an unsigned UKI", inputs: async (g) => ({ ...g, uki: { ...g.uki, efiFiles: [await resigned(g.uki.efiFiles[0], "unsigned-uki")] } }), names: /^uki\.efiFiles\[0\]$/ },
            { what: "an unsigned systemd-boot", inputs: async (g) => ({ ...g, uki: { ...g.uki, systemdBoot: await resigned(g.uki.systemdBoot, "unsigned-boot") } }), names: /^uki\.systemdBoot$/ },
            { what: "the db private key handed over as a UKI (key exfiltration)", inputs: (g) => ({ ...g, uki: { ...g.uki, efiFiles: [...g.uki.efiFiles, built.SigningKeys.files.db.key] } }), names: /^uki\.efiFiles\[1\]$/ },
            { what: "a loader entry that is a PEM block", inputs: (g) => ({ ...g, uki: { ...g.uki, loaderEntries: [(fs.copyFileSync(signer.key, f("evil.conf")), f("evil.conf"))] } }), names: /^uki\.loaderEntries\[0\]$/ },
            { what: "an unsigned extension", inputs: (g) => ({ ...g, extensions: [extensions.unsigned] }), names: /^extensions\[0\]$/ },
            { what: "an extension signed by a key that is not among PK, KEK and db", inputs: (g) => ({ ...g, extensions: [extensions.foreign] }), names: /^extensions\[0\]$/ },
            {
                what: "a loader entry changed (still a valid one) after the preview: its bytes are not the ones the input hash records",
                inputs: (g) => {
                    fs.mkdirSync(f("entry-edit"), { recursive: true });
                    const entry = f("entry-edit", path.basename(g.uki.loaderEntries[0]));
                    fs.writeFileSync(entry, `${fs.readFileSync(g.uki.loaderEntries[0], "utf8")}# as previewed\n`);
                    return { ...g, uki: { ...g.uki, loaderEntries: [entry, ...g.uki.loaderEntries.slice(1)] } };
                },
                afterCheck: () => fs.appendFileSync(f("entry-edit", fs.readdirSync(f("entry-edit"))[0]), "# changed after the preview\n"),
                names: /step "check inputs" failed: uki changed after the input hash was taken/,
                atBuild: true,
            },
            { what: "an enrolment db.auth that is not a signed variable update", inputs: (g) => ({ ...g, enrollKeys: { ...g.enrollKeys, db: f("garbage") } }), names: /^enrollKeys\.db$/ },
        ]],
        PromotedArtifact: [PROMOTED_ARTIFACT_TOKEN, [
            { what: "a tested digest that is not a sha256", inputs: (g) => ({ ...g, expectedSha256: "abc" }), names: /^expectedSha256$/ },
            { what: "an artifact that is not the tested one", inputs: (g) => ({ ...g, expectedSha256: "0".repeat(64) }), names: /not the artifact that was tested/, atBuild: true },
            { what: "a source that does not exist", inputs: (g) => ({ ...g, source: f("nope.raw") }), names: /^source$/ },
            { what: "an unknown artifact kind", inputs: (g) => ({ ...g, kind: "blob" }), names: /^kind$/ },
            { what: "a re-signing key for another certificate", inputs: (g) => ({ ...g, kind: "sysext", resign: { key: stranger.key, certificate: signer.certificate } }), names: /^resign/ },
        ]],
    };

    /** A docker save archive whose manifest.json names a layer path that climbs out of the archive. */
    function hostileDockerSave(): string {
        const file = f("hostile.tar");
        if (!fs.existsSync(file)) {
            const manifest = JSON.stringify([{ Config: "config.json", RepoTags: ["x:latest"], Layers: ["../../../etc/shadow"] }]);
            fs.writeFileSync(file, buildTar([{ name: "manifest.json", content: manifest }, { name: "config.json", content: JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [`sha256:${"0".repeat(64)}`] } }) }]));
        }
        return file;
    }

    it("holds at least 40 bad inputs, for every resource", () => {
        const perResource = Object.values(TABLE).map(([, cases]) => cases.length);
        assert.ok(perResource.reduce((a, b) => a + b) >= 40 && perResource.every((n) => n >= 5), String(perResource));
    });

    for (const [resource, [token, cases]] of Object.entries(TABLE)) {
        describe(resource, () => {
            for (const c of cases) {
                it(c.what, async () => {
                    counted++;
                    const h = handlerFor(token);
                    const olds = built[resource];
                    const stateBefore = JSON.stringify(olds);
                    const before = treeSnapshot(work);
                    const news = await c.inputs(good[resource]);
                    const fresh = news.outputDir !== good[resource].outputDir;
                    let afterSetup = treeSnapshot(work); // the case's own fixture files are not the resource's writing
                    let { inputs, failures } = await h.check(fresh ? {} : olds, news);
                    if (c.afterCheck) {
                        c.afterCheck();
                        afterSetup = treeSnapshot(work);
                    }
                    if (!c.atBuild) {
                        assert.ok((failures ?? []).length > 0, "a preview case is refused by check, before anything runs");
                        assert.strictEqual(failures!.length, 1, `one error, not ${JSON.stringify(failures)}`);
                        assert.match(failures![0].property, c.names, JSON.stringify(failures![0]));
                        assert.ok(failures![0].reason.length > 10, failures![0].reason);
                    } else {
                        assert.deepStrictEqual(failures ?? [], [], "an atBuild case passes check: only the build can find it");
                        const attempt = fresh ? h.create(inputs) : h.update(olds.id ?? "id", olds, inputs);
                        await assert.rejects(attempt, (e: Error) => {
                            assert.match(e.message, c.names, e.message);
                            return true;
                        });
                    }
                    assert.deepStrictEqual(treeSnapshot(work), afterSetup, "nothing was written, nothing changed");
                    assert.ok(Object.keys(before).every((k) => afterSetup[k] === before[k]), "the case only added its own fixtures");
                    assert.strictEqual(JSON.stringify(olds), stateBefore, "the previous outputs are untouched");
                    for (const file of [olds.path, ...(olds.ukis ?? []).map((u: any) => u.path)].filter(Boolean)) {
                        if (resource === "BootMedia") continue; // a folder: covered by the snapshot
                        assert.strictEqual(await sha256File(file), (olds.ukis ?? []).find((u: any) => u.path === file)?.sha256 ?? olds.sha256);
                    }
                });
            }
        });
    }

    it("through the engine: a refused preview and a failed build leave the stack's state as it was", async () => {
        const dir = tempDir("bad-input-engine");
        let source = f("ext-src");
        let signing = signer;
        const stack = await engineStack(async () => {
            const ext = new SystemExtension("tool", { name: "tool", outputDir: path.join(dir, "extensions"), source: { dir: source }, signing });
            return { sha256: ext.sha256 };
        });
        try {
            await stack.up();
            const resources = async () => JSON.stringify((await stack.stack.exportStack()).deployment.resources);
            const state = await resources();
            const files = treeSnapshot(dir);
            signing = { key: stranger.key, certificate: signer.certificate }; // refused by check
            await assert.rejects(stack.up(), /property signing .*does not match the certificate/s);
            assert.strictEqual(await resources(), state);
            signing = signer;
            source = payload("etc-src-engine", { "usr/bin/x": "x\n", "etc/passwd": "root\n" }); // refused by the build
            await assert.rejects(stack.up(), /step "read source" failed: source: 1 entry is outside the allowed paths/);
            assert.strictEqual(await resources(), state);
            assert.deepStrictEqual(treeSnapshot(dir), files);
        } finally {
            await stack.dispose();
        }
    });
});

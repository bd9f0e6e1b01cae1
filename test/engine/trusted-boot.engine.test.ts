// Keys + two extensions + UKI + ISO through the real Pulumi engine: each change rebuilds exactly
// what depends on it, and an up with nothing changed runs nothing.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { SigningKeys } from "../../provider/signing-keys";
import { SystemExtension } from "../../provider/system-extension";
import { KairosUkiImage } from "../../provider/kairos-uki-image";
import { BootMedia } from "../../provider/boot-media";
import { sha256File } from "../../provider/toolkit/files";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { buildTestOsRootfs, packTestOsImage } from "../helpers/test-os";

describe("trusted-boot pipeline through the Pulumi engine", function () {
    this.timeout(600000);
    let work: string;
    let stack: EngineStack;
    let extendCmdline = "rd.debug";

    const writePayload = (name: string, text: string) => {
        const dir = path.join(work, "src", name, "usr", "bin");
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, name), text, { mode: 0o755 });
    };
    const digests = async () => ({
        keys: await sha256File(path.join(work, "keys", "db.auth")),
        alpha: await sha256File(path.join(work, "extensions", "alpha.sysext.raw")),
        beta: await sha256File(path.join(work, "extensions", "beta.sysext.raw")),
        uki: await sha256File(path.join(work, "uki", "norole.efi")),
        iso: await sha256File(path.join(work, "media", "kairos.iso")),
    });
    const changes = async (ops: Record<string, number> | undefined) => Object.fromEntries(Object.entries(ops ?? {}).filter(([k]) => k !== "same"));

    before(async function () {
        this.timeout(300000);
        work = tempDir("engine-boot");
        writePayload("alpha", "alpha 1\n");
        writePayload("beta", "beta 1\n");
        const rootfs = path.join(work, "test-os");
        await buildTestOsRootfs(rootfs);
        await packTestOsImage(rootfs, path.join(work, "test-os.oci"));
        stack = await engineStack(async () => {
            const keys = new SigningKeys("keys", { name: "engine-boot", outputDir: path.join(work, "keys") });
            const exts = ["alpha", "beta"].map((n) => new SystemExtension(n, { name: n, outputDir: path.join(work, "extensions"), source: { dir: path.join(work, "src", n) }, signingKeys: keys }));
            const uki = new KairosUkiImage("os", { outputDir: path.join(work, "uki"), source: { ociLayout: path.join(work, "test-os.oci") }, signingKeys: keys, extendCmdline });
            const iso = new BootMedia("iso", { name: "kairos", outputDir: path.join(work, "media"), ukiImage: uki, signingKeys: keys, extensions: exts, secureBootEnroll: "force" });
            return { iso: iso.path, cmdline: uki.ukis.apply((u) => u[0].cmdline) };
        });
    });
    after(async () => stack?.dispose());

    it("builds everything once; a second up runs nothing", async () => {
        const up = await stack.up();
        assert.strictEqual(up.summary.resourceChanges?.create, 6);
        assert.match(up.outputs.cmdline.value, / install-mode rd\.debug$/);
        const again = await stack.up();
        assert.deepStrictEqual(again.summary.resourceChanges, { same: 6 });
    });

    it("a new command line rebuilds the UKI and the media; keys and extensions stay", async () => {
        const before = await digests();
        extendCmdline = "rd.debug rd.immucore.debug";
        const up = await stack.up();
        assert.deepStrictEqual(await changes(up.summary.resourceChanges), { update: 2 });
        const after = await digests();
        assert.deepStrictEqual([after.keys, after.alpha, after.beta], [before.keys, before.alpha, before.beta]);
        assert.notStrictEqual(after.uki, before.uki);
        assert.notStrictEqual(after.iso, before.iso);
        assert.deepStrictEqual((await stack.resourceOutputs("os")).lastBuild.reasons, ["cmdlines"]);
        assert.deepStrictEqual((await stack.resourceOutputs("iso")).lastBuild.reasons, ["uki"]);
    });

    it("a changed extension rebuilds that extension and the media (new PCR 13); the UKI stays", async () => {
        const before = await digests();
        const pcr13Before = (await stack.resourceOutputs("iso")).pcr13;
        writePayload("beta", "beta 2\n");
        const up = await stack.up();
        assert.deepStrictEqual(await changes(up.summary.resourceChanges), { update: 2 });
        const after = await digests();
        assert.deepStrictEqual([after.keys, after.alpha, after.uki], [before.keys, before.alpha, before.uki]);
        assert.notStrictEqual(after.beta, before.beta);
        assert.notStrictEqual(after.iso, before.iso);
        const iso = await stack.resourceOutputs("iso");
        assert.deepStrictEqual(iso.lastBuild.reasons, ["extensions"]);
        assert.deepStrictEqual(iso.pcr13.extensions, ["alpha.sysext.raw", "beta.sysext.raw"]);
        assert.notStrictEqual(iso.pcr13.sha256, pcr13Before.sha256);
        assert.deepStrictEqual((await stack.up()).summary.resourceChanges, { same: 6 });
    });
});

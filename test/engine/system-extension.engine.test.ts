// SigningKeys + SystemExtensions through the real Pulumi engine: only what changed rebuilds.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { SigningKeys } from "../../provider/signing-keys";
import { SystemExtension } from "../../provider/system-extension";
import { sha256File } from "../../provider/toolkit/files";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { veritySignatureVerifies } from "../helpers/ddi-inspect";
import { buildImage, makeLayer, writeOciLayout } from "../helpers/oci-fixtures";
import { startRegistry, TestRegistry } from "../helpers/registry";

const NAMES = ["alpha", "beta", "gamma"];

function writePayload(root: string, name: string, text: string): string {
    const dir = path.join(root, name);
    fs.mkdirSync(path.join(dir, "usr", "bin"), { recursive: true });
    fs.writeFileSync(path.join(dir, "usr", "bin", name), text, { mode: 0o755 });
    return dir;
}

describe("SystemExtension through the Pulumi engine", function () {
    this.timeout(300000);
    let work: string;
    let stack: EngineStack;
    let registry: TestRegistry;
    let image: string;

    async function pushTool(text: string): Promise<void> {
        const layer = await makeLayer([{ name: "usr", type: "dir", mode: 0o755 }, { name: "usr/bin", type: "dir", mode: 0o755 }, { name: "usr/bin/tool", content: text, mode: 0o755 }]);
        const layout = tempDir("engine-push");
        writeOciLayout(layout, [{ image: buildImage({ layers: [layer] }), name: "latest" }]);
        await registry.push(layout, "latest", "tools/tool:stable");
    }

    before(async () => {
        work = tempDir("engine-sysext");
        registry = await startRegistry();
        image = `${registry.host}/tools/tool:stable`;
        await pushTool("one\n");
        for (const n of NAMES) writePayload(path.join(work, "src"), n, `${n} v1\n`);
        stack = await engineStack(async () => {
            const keys = new SigningKeys("keys", { name: "engine-sysext", outputDir: path.join(work, "keys") });
            const out: Record<string, unknown> = { dbCert: keys.files.apply((f) => f.db.pem) };
            for (const n of NAMES) {
                const ext = new SystemExtension(n, { name: n, outputDir: path.join(work, "extensions"), source: { dir: path.join(work, "src", n) }, signingKeys: keys });
                out[n] = ext.sha256;
            }
            const tool = new SystemExtension("tool", { name: "tool", outputDir: path.join(work, "extensions"), source: { image, insecureRegistry: true }, signingKeys: keys });
            out.toolDigest = tool.sourceDigest;
            return out;
        });
    });
    after(async () => {
        await stack?.dispose();
        await registry?.stop();
    });

    it("builds keys and four signed extensions; a second up runs nothing", async () => {
        const up = await stack.up();
        assert.strictEqual(up.summary.resourceChanges?.create, 6);
        for (const n of [...NAMES, "tool"]) {
            const file = path.join(work, "extensions", `${n}.sysext.raw`);
            assert.ok((await veritySignatureVerifies(file, up.outputs.dbCert.value, work)).ok, `${n} is signed by the db key`);
        }
        assert.strictEqual(up.outputs.alpha.value, await sha256File(path.join(work, "extensions", "alpha.sysext.raw")));
        const again = await stack.up();
        assert.deepStrictEqual(again.summary.resourceChanges, { same: 6 });
    });

    it("rebuilds exactly the extension whose payload changed", async () => {
        const before = Object.fromEntries(await Promise.all(NAMES.map(async (n) => [n, await sha256File(path.join(work, "extensions", `${n}.sysext.raw`))])));
        writePayload(path.join(work, "src"), "beta", "beta v2\n");
        const preview = await stack.preview();
        assert.strictEqual(preview.changeSummary.update, 1);
        assert.match(preview.stdout, /SystemExtension::beta\]/);
        assert.match(preview.stdout, /~ sourceDigest/);
        assert.match(preview.stdout, /~ hashParts\s*: \{[^}]*~ source\s*: "tree:sha256:/);
        const up = await stack.up();
        assert.deepStrictEqual(up.summary.resourceChanges, { same: 5, update: 1 });
        assert.strictEqual(await sha256File(path.join(work, "extensions", "alpha.sysext.raw")), before.alpha);
        assert.strictEqual(await sha256File(path.join(work, "extensions", "gamma.sysext.raw")), before.gamma);
        assert.notStrictEqual(await sha256File(path.join(work, "extensions", "beta.sysext.raw")), before.beta);
        const report = (await stack.resourceOutputs("beta")).lastBuild;
        assert.deepStrictEqual([report.action, report.reasons], ["updated", ["source"]]);
        assert.deepStrictEqual(report.steps.map((s: { step: string }) => s.step), ["read source", "build and verify image"]);
        assert.strictEqual((await stack.resourceOutputs("alpha")).lastBuild.action, "created", "untouched resources keep their report");
    });

    it("shows a registry tag that moved to a new digest as a change in preview", async () => {
        const before = (await stack.stack.outputs()).toolDigest.value;
        await pushTool("two\n");
        const preview = await stack.preview();
        assert.strictEqual(preview.changeSummary.update, 1);
        assert.match(preview.stdout, /SystemExtension::tool\]/);
        const up = await stack.up();
        assert.strictEqual(up.summary.resourceChanges?.update, 1);
        assert.notStrictEqual(up.outputs.toolDigest.value, before);
    });

    it("refresh notices a deleted artifact and the next up restores the same bytes", async () => {
        const file = path.join(work, "extensions", "gamma.sysext.raw");
        const sha = await sha256File(file);
        fs.rmSync(file);
        await stack.refresh();
        assert.deepStrictEqual((await stack.resourceOutputs("gamma")).drift, ["gamma.sysext.raw: missing"]);
        const up = await stack.up();
        assert.strictEqual(up.summary.resourceChanges?.update, 1);
        assert.strictEqual(await sha256File(file), sha);
        const report = (await stack.resourceOutputs("gamma")).lastBuild;
        assert.deepStrictEqual([report.action, report.reasons], ["restored", ["drift: gamma.sysext.raw: missing"]]);
    });
});

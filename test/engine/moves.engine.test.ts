// Moves through the real Pulumi engine (issue 22): a program with absolute paths moved along with its
// artifacts, a keys folder moved on purpose, and new folders that do not hold the recorded artifact.
// A resource whose new place holds exactly what the state records takes it over (an update whose
// lastBuild says "moved", no build step); anything else behaves as before (rebuilt, or refused for keys).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { SigningKeys } from "../../provider/signing-keys";
import { SystemExtension } from "../../provider/system-extension";
import { KairosUkiImage } from "../../provider/kairos-uki-image";
import { BootMedia } from "../../provider/boot-media";
import { PromotedArtifact } from "../../provider/promoted-artifact";
import { sha256File } from "../../provider/toolkit/files";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { buildTestOsRootfs } from "../helpers/test-os";

/** Every file under `dir` (relative path) with its sha256 and mtime. */
async function snapshot(dir: string): Promise<Record<string, { sha256: string; mtimeMs: number }>> {
    const out: Record<string, { sha256: string; mtimeMs: number }> = {};
    for (const rel of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
        const file = path.join(dir, rel);
        const st = fs.lstatSync(file);
        if (st.isFile()) out[rel] = { sha256: await sha256File(file), mtimeMs: st.mtimeMs };
    }
    return out;
}

const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** A preview as `pulumi preview` shows it by default: the providers' messages (the "moved" line) under Diagnostics. */
const previewOf = (s: EngineStack) => s.stack.preview({ color: "never" });
/** The files that are the keys themselves (never rewritten). */
const KEY_MATERIAL = ["PK.key", "KEK.key", "db.key", "tpm2-pcr-private.pem", "PK.pem", "KEK.pem", "db.pem"];
const changes = (ops: Record<string, number> | undefined) => Object.fromEntries(Object.entries(ops ?? {}).filter(([k]) => k !== "same"));

describe("moves through the Pulumi engine", function () {
    this.timeout(600000);
    let work: string;

    before(() => (work = tempDir("engine-moves")));

    describe("a program with absolute paths, moved with its artifacts to another folder", function () {
        let root: string;
        let isoName = "kairos";
        let espName = "esp";
        let stack: EngineStack;
        const RESOURCES = ["keys", "alpha", "os", "iso", "esp", "promoted"];

        before(async function () {
            this.timeout(300000);
            root = path.join(work, "a");
            fs.mkdirSync(path.join(root, "src", "alpha", "usr", "bin"), { recursive: true });
            fs.writeFileSync(path.join(root, "src", "alpha", "usr", "bin", "alpha"), "alpha 1\n", { mode: 0o755 });
            await buildTestOsRootfs(path.join(root, "os-tree"));
            stack = await engineStack(async () => {
                const at = (p: string) => path.join(root, p);
                const keys = new SigningKeys("keys", { name: "moves", outputDir: at("keys") });
                const alpha = new SystemExtension("alpha", { name: "alpha", outputDir: at("extensions"), source: { dir: at("src/alpha") }, signingKeys: keys });
                const uki = new KairosUkiImage("os", { outputDir: at("uki"), source: { dir: at("os-tree") }, signingKeys: keys, initrdCompressionLevel: 3 });
                const iso = new BootMedia("iso", { name: isoName, outputDir: at("media"), ukiImage: uki, signingKeys: keys, extensions: [alpha], secureBootEnroll: "force" });
                const esp = new BootMedia("esp", { name: espName, type: "dir", outputDir: at("media"), ukiImage: uki, signingKeys: keys, secureBootEnroll: "force" });
                const promoted = new PromotedArtifact("promoted", { source: alpha.path, expectedSha256: alpha.sha256, outputDir: at("promoted"), kind: "sysext" });
                return { keyDir: keys.keyDir, alpha: alpha.path, iso: iso.path, esp: esp.path, promoted: promoted.path };
            });
        });
        after(async () => stack?.dispose());

        it("follows the folder: each resource takes its artifact over (lastBuild 'moved', no build step), keys byte-identical, nothing rewritten", async () => {
            const first = await stack.up();
            assert.deepStrictEqual(changes(first.summary.resourceChanges), { create: RESOURCES.length + 1 });
            const before = await snapshot(root);
            const recorded = Object.fromEntries(await Promise.all(RESOURCES.map(async (r) => [r, await stack.resourceOutputs(r)] as const)));

            const from = root;
            root = path.join(work, "b");
            fs.renameSync(from, root);

            const preview = await previewOf(stack);
            assert.deepStrictEqual(changes(preview.changeSummary), { update: RESOURCES.length }, preview.stdout);
            for (const dir of ["keys", "extensions", "uki", "media", "promoted"]) {
                assert.match(preview.stdout, new RegExp(`moved from ${re(path.join(from, dir))} to ${re(path.join(root, dir))}: the recorded artifact is there`), dir);
            }

            const up = await stack.up();
            assert.deepStrictEqual(changes(up.summary.resourceChanges), { update: RESOURCES.length });
            for (const r of RESOURCES) {
                const outs = await stack.resourceOutputs(r);
                const dir = path.dirname(path.relative(from, recorded[r].path ?? path.join(recorded[r].keyDir ?? recorded[r].outputDir, "x")));
                assert.strictEqual(outs.lastBuild.action, "moved", r);
                assert.deepStrictEqual(outs.lastBuild.reasons, [`moved from ${path.join(from, dir)} to ${path.join(root, dir)}`], r);
                // one step, the check of the digests at the new place: no build step ran
                assert.strictEqual(outs.lastBuild.steps.length, 1, r);
                assert.strictEqual(outs.lastBuild.steps[0].step, "verify the recorded digests at the new place", r);
                assert.deepStrictEqual(outs.drift, [], r);
            }
            // Nothing was written in the moved folder: every file has its bytes and its time.
            assert.deepStrictEqual(await snapshot(root), before);
            // The outputs follow the folder; the old folder was left alone (not even made again for a lock).
            const outputs = (await stack.stack.outputs());
            assert.strictEqual(outputs.keyDir.value, path.join(root, "keys"));
            assert.strictEqual(outputs.alpha.value, path.join(root, "extensions", "alpha.sysext.raw"));
            assert.strictEqual(outputs.iso.value, path.join(root, "media", "kairos.iso"));
            assert.strictEqual(outputs.esp.value, path.join(root, "media", "esp"));
            assert.strictEqual(outputs.promoted.value, path.join(root, "promoted", "alpha.sysext.raw"));
            const keys = await stack.resourceOutputs("keys");
            assert.strictEqual(keys.files.db.key, path.join(root, "keys", "db.key"));
            assert.strictEqual(keys.tpmPcrKeyFile, path.join(root, "keys", "tpm2-pcr-private.pem"));
            assert.deepStrictEqual(keys.fileDigests, recorded.keys.fileDigests);
            const os = await stack.resourceOutputs("os");
            assert.deepStrictEqual(os.bootFiles.efiFiles, [path.join(root, "uki", "norole.efi")]);
            assert.ok(!fs.existsSync(from), `${from} exists again`);

            const again = await stack.up();
            assert.deepStrictEqual(changes(again.summary.resourceChanges), {});
        });

        it("BootMedia renamed along with its ISO file: moved, not rebuilt", async () => {
            const from = path.join(root, "media", "kairos.iso");
            const to = path.join(root, "media", "prod.iso");
            const before = fs.statSync(from);
            fs.renameSync(from, to);
            isoName = "prod";
            const preview = await previewOf(stack);
            assert.deepStrictEqual(changes(preview.changeSummary), { update: 1 }, preview.stdout);
            assert.match(preview.stdout, new RegExp(re(`BootMedia prod: moved from ${from} to ${to}: the recorded artifact is there (prod.iso, same sha256)`)));
            await stack.up();
            const outs = await stack.resourceOutputs("iso");
            assert.strictEqual(outs.lastBuild.action, "moved");
            assert.deepStrictEqual(outs.lastBuild.reasons, [`moved from ${from} to ${to}`]);
            assert.strictEqual(outs.path, to);
            assert.strictEqual(fs.statSync(to).mtimeMs, before.mtimeMs);
            assert.deepStrictEqual(changes((await stack.up()).summary.resourceChanges), {});
        });

        it("BootMedia type dir pointed at a folder holding something else: refused in preview, nothing written", async () => {
            const foreign = path.join(root, "media", "foreign");
            fs.mkdirSync(foreign);
            fs.writeFileSync(path.join(foreign, "keep.txt"), "not ours\n");
            espName = "foreign";
            try {
                const err = await previewOf(stack).catch((e) => e);
                assert.ok(err instanceof Error, "preview must fail");
                // refused by check (the folder is not what these inputs write), so no plan is needed for the refusal
                assert.match(String(err.message), new RegExp(re(`${foreign} already exists and was not made by this BootMedia; type "dir" replaces its folder whole`)));
                assert.deepStrictEqual(fs.readdirSync(foreign), ["keep.txt"]);
                assert.strictEqual((await stack.resourceOutputs("esp")).path, path.join(root, "media", "esp"));
            } finally {
                espName = "esp";
            }
        });

        it("a new outputDir that does not hold the artifact rebuilds it there, as before (a replace)", async () => {
            const first = path.join(root, "extensions-replace");
            let extDir = first;
            const other = await engineStack(async () => {
                const keys = new SigningKeys("keys", { name: "moves-replace", outputDir: path.join(root, "keys-replace") });
                new SystemExtension("alpha", { name: "alpha", outputDir: extDir, source: { dir: path.join(root, "src/alpha") }, signingKeys: keys });
            });
            try {
                await other.up();
                extDir = path.join(root, "extensions-empty");
                fs.mkdirSync(extDir);
                const preview = await previewOf(other);
                assert.deepStrictEqual(changes(preview.changeSummary), { replace: 1 }, preview.stdout);
                assert.doesNotMatch(preview.stdout, /moved from/);
                const up = await other.up();
                assert.deepStrictEqual(changes(up.summary.resourceChanges), { replace: 1 });
                const outs = await other.resourceOutputs("alpha");
                assert.strictEqual(outs.lastBuild.action, "created");
                assert.ok(outs.lastBuild.steps.some((s: { step: string }) => s.step === "build and verify image"));
                assert.ok(fs.existsSync(path.join(extDir, "alpha.sysext.raw")));
                assert.ok(!fs.existsSync(path.join(first, "alpha.sysext.raw")), "the replaced image is deleted");
            } finally {
                await other.dispose();
            }
        });
    });

    describe("SigningKeys: a key folder moved on purpose, and folders holding other keys", function () {
        let stack: EngineStack;
        let outputDir: string;
        let keysBefore: Record<string, { sha256: string; mtimeMs: number }>;

        before(async () => {
            outputDir = path.join(work, "keys-1");
            stack = await engineStack(async () => {
                const keys = new SigningKeys("keys", { name: "moved-on-purpose", outputDir });
                return { keyDir: keys.keyDir, db: keys.files.apply((f) => f.db.key) };
            });
            await stack.up();
            keysBefore = await snapshot(outputDir);
        });
        after(async () => stack?.dispose());

        it("moved with `mv` and outputDir updated: taken over as it is, the preview says moved", async () => {
            const from = outputDir;
            outputDir = path.join(work, "elsewhere", "keys-2");
            fs.mkdirSync(path.dirname(outputDir));
            fs.renameSync(from, outputDir);
            const preview = await previewOf(stack);
            assert.deepStrictEqual(changes(preview.changeSummary), { update: 1 }, preview.stdout);
            assert.match(preview.stdout, new RegExp(re(`SigningKeys moved-on-purpose: moved from ${from} to ${outputDir}: the recorded artifact is there (16 files, each with its recorded digest), so the update takes it over and rebuilds nothing; ${from} is left as it is`)));
            const up = await stack.up();
            assert.deepStrictEqual(changes(up.summary.resourceChanges), { update: 1 });
            const outs = await stack.resourceOutputs("keys");
            assert.strictEqual(outs.lastBuild.action, "moved");
            assert.deepStrictEqual(outs.lastBuild.reasons, [`moved from ${from} to ${outputDir}`]);
            assert.strictEqual(outs.keyDir, outputDir);
            assert.strictEqual((await stack.stack.outputs()).db.value, path.join(outputDir, "db.key"));
            assert.deepStrictEqual(await snapshot(outputDir), keysBefore);
            assert.ok(!fs.existsSync(from));
            assert.deepStrictEqual(changes((await stack.up()).summary.resourceChanges), {});
        });

        it("moved without its stamp and with an .auth file lost: the keys are taken over, the lists signed again in place", async () => {
            const from = outputDir;
            outputDir = path.join(work, "keys-3");
            fs.renameSync(from, outputDir);
            fs.rmSync(path.join(outputDir, ".kairos-keyset.json"));
            fs.rmSync(path.join(outputDir, "db.auth"));
            const preview = await previewOf(stack);
            assert.deepStrictEqual(changes(preview.changeSummary), { update: 1 }, preview.stdout);
            assert.match(preview.stdout, /moved from .*; db\.auth will be put right/);
            await stack.up();
            const outs = await stack.resourceOutputs("keys");
            assert.strictEqual(outs.lastBuild.action, "restored");
            assert.deepStrictEqual(outs.lastBuild.reasons, [`moved from ${from} to ${outputDir}`, "drift: db.auth: missing"]);
            const now = await snapshot(outputDir);
            // every file byte for byte as before (db.auth made again: fixed timestamp); the keys and
            // certificates untouched, the signature lists and .auth files re-signed in place
            for (const [f, s] of Object.entries(keysBefore)) {
                if (f === ".kairos-keyset.json") continue;
                assert.strictEqual(now[f]?.sha256, s.sha256, f);
                if (KEY_MATERIAL.includes(f)) assert.strictEqual(now[f].mtimeMs, s.mtimeMs, f);
            }
            assert.deepStrictEqual(changes((await stack.up()).summary.resourceChanges), {});
        });

        it("a new outputDir holding another key set is refused in preview, and nothing is written", async () => {
            const other = path.join(work, "other-keys");
            const otherStack = await engineStack(async () => {
                new SigningKeys("keys", { name: "someone-else", outputDir: other });
            });
            try {
                await otherStack.up();
            } finally {
                await otherStack.dispose();
            }
            const otherBefore = await snapshot(other);
            const ownBefore = await snapshot(outputDir);
            const stateBefore = await stack.resourceOutputs("keys");
            const recorded = outputDir;

            outputDir = other; // its stamp names another key set: refused by check, as before
            const err = await previewOf(stack).catch((e) => e);
            assert.ok(err instanceof Error, "preview must fail");
            assert.match(String(err.message), new RegExp(`${re(other)} already holds PK\\.key, KEK\\.key, db\\.key.*SigningKeys never overwrites keys`));

            fs.rmSync(path.join(other, ".kairos-keyset.json")); // no stamp: the diff compares the keys with the state
            const err2 = await stack.up().catch((e) => e);
            assert.ok(err2 instanceof Error, "up must fail");
            assert.match(String(err2.message), new RegExp(`outputDir ${re(other)} holds PK\\.key, .*which are not the keys this stack recorded in ${re(recorded)} \\(.*PK\\.key differs.*\\)\\. SigningKeys never overwrites or regenerates keys`));
            delete otherBefore[".kairos-keyset.json"];
            assert.deepStrictEqual(await snapshot(other), otherBefore);
            assert.deepStrictEqual(await snapshot(recorded), ownBefore);
            assert.deepStrictEqual(await stack.resourceOutputs("keys"), stateBefore);

            outputDir = path.join(work, "empty-keys"); // an empty folder: a key replacement, refused with what to do
            const err3 = await previewOf(stack).catch((e) => e);
            assert.ok(err3 instanceof Error, "preview must fail");
            assert.match(String(err3.message), /changing outputDir .* would replace the Secure Boot keys.*move the key folder there/s);
            assert.ok(!fs.existsSync(outputDir));
            outputDir = recorded;
            assert.deepStrictEqual(changes((await stack.up()).summary.resourceChanges), {});
        });
    });
});

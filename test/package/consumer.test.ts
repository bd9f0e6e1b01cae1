// pulumi-kairos as a user gets it: `npm pack`, installed into a project folder outside the repository
// (plain JavaScript, no ts-node), a real stack of keys + extension + UKI + ISO through the engine. Then
// the state outlives its folder (project and backend moved, the original deleted) and the package
// version that wrote it (a stack made by 0.1.0 is refreshed and updated by this one).
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { buildTestOsRootfs } from "../helpers/test-os";
import { tempDir } from "../helpers/temp";
import { CONSUMER_TEMPLATE, REPO, fileDigests, installTarball, npmInstall, packedTarball, stackOp } from "../helpers/packed";

const TSC = path.join(REPO, "node_modules", "typescript", "bin", "tsc");
/** pulumi-kairos 0.1.0 as `npm pack` made it from commit 54d38dd, the last version with per-file providers. */
const PREVIOUS_RELEASE = path.join(REPO, "test", "fixtures", "pulumi-kairos-0.1.0.tgz");
const ARTIFACTS = ["out/keys/db.auth", "out/keys/db.key", "out/extensions/hello.sysext.raw", "out/uki/norole.efi", "out/media/kairos.iso"];
/** The stack itself and the four resources. */
const RESOURCES = 5;

/** A project folder as a user would have it: the template program, a payload, an OS folder, `npm install`. */
async function makeProject(dir: string, tarball: string): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(CONSUMER_TEMPLATE)) fs.copyFileSync(path.join(CONSUMER_TEMPLATE, f), path.join(dir, f));
    fs.mkdirSync(path.join(dir, "payload/hello/usr/bin"), { recursive: true });
    fs.writeFileSync(path.join(dir, "payload/hello/usr/bin/hello"), "#!/bin/sh\necho hello from a system extension\n", { mode: 0o755 });
    await buildTestOsRootfs(path.join(dir, "os"));
    await installTarball(dir, tarball);
}

const artifactDigests = (dir: string) => fileDigests(dir, ARTIFACTS);

/** The state's custom resources of this package (not the stack or Pulumi's default provider). */
function kairosResources(deployment: any): any[] {
    return (deployment.deployment.resources ?? []).filter((r: any) => r.custom && r.inputs?.__provider);
}

/** The state without Pulumi's own `sourcePosition` notes (where the program registered each resource). */
function stateWithoutSourcePositions(deployment: any): string {
    return JSON.stringify(deployment, (k, v) => (k === "sourcePosition" ? undefined : v));
}

describe("the package installed from its tarball into a project outside the repository", function () {
    this.timeout(1800000);
    let parent: string;
    let tarball: string;
    let projectA: string;
    let built: Record<string, string>;

    before(async function () {
        this.timeout(900000);
        const started = Date.now();
        tarball = await packedTarball();
        parent = tempDir("consumer");
        projectA = path.join(parent, "a");
        await makeProject(projectA, tarball);
        console.log(`      (npm pack + project set-up with npm install: ${((Date.now() - started) / 1000).toFixed(0)} s)`);
    });

    it("installs compiled JavaScript only: no TypeScript sources, no ts-node, nothing from the checkout", async () => {
        assert.ok(path.relative(REPO, projectA).startsWith(".."), "the project is outside the repository");
        const resolve = async (request: string) =>
            (await run(["node", "-e", `try { console.log(require.resolve(${JSON.stringify(request)})) } catch { console.log("not found") }`], { cwd: projectA })).stdout.trim();
        assert.equal(await resolve("pulumi-kairos"), path.join(projectA, "node_modules/pulumi-kairos/bin/index.js"));
        assert.equal(await resolve("pulumi-kairos/handlers"), path.join(projectA, "node_modules/pulumi-kairos/bin/provider/handlers.js"));
        assert.equal(await resolve("ts-node"), "not found");
        const installed = path.join(projectA, "node_modules/pulumi-kairos");
        const sources = (fs.readdirSync(installed, { recursive: true }) as string[]).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"));
        assert.deepEqual(sources, []);
    });

    it("its bin `pulumi-kairos doctor` checks the tools: all found here; with only node on PATH, exit 1 naming packages", async () => {
        const doctor = path.join(projectA, "node_modules/.bin/pulumi-kairos");
        const ok = await run([doctor, "doctor"], { cwd: projectA });
        assert.match(ok.stdout, /every tool the resources always need is here/);
        const onlyNode = tempDir("only-node");
        fs.symlinkSync(process.execPath, path.join(onlyNode, "node"));
        const bad = await run([doctor, "doctor"], { cwd: projectA, env: { PATH: onlyNode }, okCodes: [1] });
        assert.match(bad.stdout, /mkfs\.erofs\s+MISSING\s+apt-get install erofs-utils\s+\|\s+dnf install erofs-utils/);
    });

    it("every TypeScript block in the README type-checks against the installed package (and a wrong one does not)", async () => {
        const blocks = [...fs.readFileSync(path.join(REPO, "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
        assert.ok(blocks.length >= 2, `${blocks.length} TypeScript blocks in the README`);
        const check = async (name: string, sources: string[]) => {
            const dir = path.join(parent, name);
            fs.mkdirSync(dir);
            // the project's node_modules, so "pulumi-kairos" resolves to the installed package as in a user's program
            const files = sources.map((src, i) => {
                fs.writeFileSync(path.join(dir, `block-${i + 1}.ts`), `${src}\nexport {};\n`);
                return `block-${i + 1}.ts`;
            });
            const compilerOptions = { strict: true, noEmit: true, module: "node16", moduleResolution: "node16", target: "es2022", types: [], skipLibCheck: true };
            fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files }));
            const link = path.join(dir, "node_modules");
            fs.symlinkSync(path.join(projectA, "node_modules"), link);
            return run(["node", TSC, "-p", dir], { cwd: dir, timeoutMs: 120000 });
        };
        await check("readme-blocks", blocks);
        const wrong = blocks[0].replace("outputDir:", "outputDirectory:");
        assert.notEqual(wrong, blocks[0]);
        await assert.rejects(check("readme-wrong", [wrong]), /outputDirectory/);
    });

    it("up builds keys, extension, UKI and ISO with relative paths; a second up changes nothing", async () => {
        const started = Date.now();
        const first = await stackOp(projectA, "up");
        const upSeconds = (Date.now() - started) / 1000;
        assert.deepEqual(first.changes, { create: RESOURCES });
        assert.equal(first.outputs.iso, "out/media/kairos.iso");
        assert.equal(first.outputs.extension, "out/extensions/hello.sysext.raw");
        assert.equal(first.outputs.keyDir, "out/keys");
        built = await artifactDigests(projectA);
        assert.equal(built["out/media/kairos.iso"], first.outputs.isoSha256);
        const again = await stackOp(projectA, "up");
        assert.deepEqual(again.changes, { same: RESOURCES });
        console.log(`      (first up ${upSeconds.toFixed(0)} s)`);
    });

    it("the state names the package and the resource token, and holds no path of this machine", async () => {
        const state = await stackOp(projectA, "export");
        const resources = kairosResources(state);
        assert.equal(resources.length, 4);
        const tokens = resources.map((r) => {
            assert.match(r.inputs.__provider, /require\.resolve\("pulumi-kairos\/handlers"/, r.urn);
            assert.equal(r.outputs.stateVersion, 2, r.urn);
            return /token: "(kairos:index:\w+)"/.exec(r.inputs.__provider)?.[1];
        });
        assert.deepEqual(tokens.sort(), ["kairos:index:BootMedia", "kairos:index:KairosUkiImage", "kairos:index:SigningKeys", "kairos:index:SystemExtension"]);
        const text = stateWithoutSourcePositions(state);
        for (const place of [projectA, REPO, parent]) assert.ok(!text.includes(place), `the state mentions ${place}`);
    });

    it("moved with its state to another folder, the original deleted: no changes, refresh and destroy work", async () => {
        const projectB = path.join(parent, "b");
        await run(["cp", "-a", projectA, projectB]);
        fs.rmSync(projectA, { recursive: true, force: true });

        const preview = await stackOp(projectB, "preview");
        assert.deepEqual(preview.changes, { same: RESOURCES }, preview.stdout);
        const refresh = await stackOp(projectB, "refresh");
        assert.deepEqual(refresh.changes, { same: RESOURCES });
        for (const r of kairosResources(await stackOp(projectB, "export"))) assert.deepEqual(r.outputs.drift ?? [], [], r.urn);
        assert.deepEqual(await artifactDigests(projectB), built);

        const destroy = await stackOp(projectB, "destroy");
        assert.deepEqual(destroy.changes, { delete: RESOURCES });
        for (const f of ["out/extensions/hello.sysext.raw", "out/uki/norole.efi", "out/media/kairos.iso"]) assert.ok(!fs.existsSync(path.join(projectB, f)), `${f} removed`);
        // SigningKeys' documented default: destroy forgets the keys but leaves them on disk
        assert.ok(fs.existsSync(path.join(projectB, "out/keys/db.key")));
    });

    describe("a stack made by pulumi-kairos 0.1.0, then upgraded in place", function () {
        let projectU: string;
        let before010: Record<string, string>;

        before(async function () {
            this.timeout(900000);
            projectU = path.join(parent, "upgrade");
            await makeProject(projectU, PREVIOUS_RELEASE);
            const made = await stackOp(projectU, "up");
            assert.deepEqual(made.changes, { create: RESOURCES });
            before010 = await artifactDigests(projectU);
        });

        it("0.1.0's state is the kind this version replaces: absolute module paths, no stateVersion", async () => {
            for (const r of kairosResources(await stackOp(projectU, "export"))) {
                assert.ok(r.inputs.__provider.includes(path.join(projectU, "node_modules/pulumi-kairos/bin/provider/")), r.urn);
                assert.equal(r.outputs.stateVersion, undefined);
            }
        });

        it("after npm install of this version, refresh works on the old state and finds no drift", async () => {
            await npmInstall(projectU, `pulumi-kairos@file:${tarball}`);
            const refresh = await stackOp(projectU, "refresh");
            assert.deepEqual(refresh.changes, { same: RESOURCES });
        });

        it("the next up updates each resource in place (keys and extension byte-identical to 0.1.0's, the UKI and ISO rebuilt with the new initrd default) with portable state; then nothing changes", async () => {
            const preview = await stackOp(projectU, "preview");
            assert.deepEqual(preview.changes, { update: 4, same: 1 }, preview.stdout);
            const up = await stackOp(projectU, "up");
            assert.deepEqual(up.changes, { update: 4, same: 1 });
            // Keys and the extension are 0.1.0's bytes. The UKI and the ISO that holds it are rebuilt, because
            // the initrd default changed (zstd -19 then, -12 --long=27 now): they must be what the state records.
            const after = await artifactDigests(projectU);
            for (const f of ["out/extensions/hello.sysext.raw", "out/keys/db.auth", "out/keys/db.key"]) assert.equal(after[f], before010[f], f);
            const state = await stackOp(projectU, "export");
            const outputsOf = (type: string) => kairosResources(state).find((r) => r.type.endsWith(`kairos:${type}`))!.outputs;
            assert.equal(outputsOf("KairosUkiImage").ukis[0].sha256, after["out/uki/norole.efi"]);
            assert.equal(outputsOf("BootMedia").sha256, after["out/media/kairos.iso"]);
            assert.deepEqual(Object.keys(after).sort(), Object.keys(before010).sort());
            for (const r of kairosResources(state)) assert.equal(r.outputs.stateVersion, 2, r.urn);
            assert.ok(!stateWithoutSourcePositions(state).includes(path.join(projectU, "node_modules")), "no module path left in the state");
            assert.deepEqual((await stackOp(projectU, "up")).changes, { same: RESOURCES });
            assert.deepEqual((await stackOp(projectU, "destroy")).changes, { delete: RESOURCES });
        });
    });
});

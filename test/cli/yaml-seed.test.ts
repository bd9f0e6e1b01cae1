// `pulumi up` in a project folder, as users type it: the real CLI in examples/seed-yaml (a
// `runtime: yaml` program, run by the YAML language host the set-up builds), with the kairos resource
// plugin installed from the packed package by its own `pulumi-kairos install-plugin`. Then the same
// inputs through the dynamic providers (a JavaScript program with the same package) give the same bytes.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { sha256File } from "../../provider/toolkit/files";
import { pulumiBinDir } from "../../scripts/lib/local-engine";
import { buildTestOsRootfs } from "../helpers/test-os";
import { tempDir } from "../helpers/temp";
import { makeGenkeyFolder } from "../helpers/genkey";
import { CONSUMER_TEMPLATE, REPO, fileDigests, installTarball, packedTarball, stackOp } from "../helpers/packed";
import { startRegistry } from "../helpers/registry";
import { resolveDigest } from "../../provider/toolkit/release/oras";
import "../helpers/oras-path";
import { startBuildkitd, useBuildkitFromSetup } from "../../scripts/lib/buildkit";
import { extractRootTree, veritySignatureVerifies } from "../helpers/ddi-inspect";

const EXAMPLE = path.join(REPO, "examples", "seed-yaml");
const ARTIFACTS = ["out/keys/db.key", "out/keys/db.auth", "out/extensions/k3s.sysext.raw", "out/uki/norole.efi", "out/uki/BOOTX64.EFI", "out/media/kairos.iso"];
const RESOURCES = 5; // the stack and four resources

/** The k3s payload: what examples/k3s-sysext's Dockerfile lays out, with a script for the binary. */
function writeK3sTree(root: string, version: string): void {
    fs.mkdirSync(path.join(root, "usr/local/bin"), { recursive: true });
    fs.mkdirSync(path.join(root, "usr/local/lib/systemd/system"), { recursive: true });
    fs.writeFileSync(path.join(root, "usr/local/bin/k3s"), `#!/bin/sh\necho "k3s ${version} (stand-in)"\n`, { mode: 0o755 });
    fs.copyFileSync(path.join(REPO, "examples/k3s-sysext/k3s.service"), path.join(root, "usr/local/lib/systemd/system/k3s.service"));
}

/** Every file in a folder with its sha256 (a key folder must come out of an adopting `up` untouched). */
function folderDigests(dir: string): Promise<Record<string, string>> {
    return fileDigests(dir, fs.readdirSync(dir).sort());
}

const digests = (dir: string) => fileDigests(dir, ARTIFACTS);

describe("a runtime: yaml project with the kairos plugin, through the pulumi CLI", function () {
    this.timeout(1800000);
    let tools: string;
    let project: string;
    let env: Record<string, string | undefined>;
    let built: Record<string, string>;
    const timings: Record<string, number> = {};

    const pulumi = async (args: string[], opts: { okCodes?: number[] } = {}) => {
        const started = Date.now();
        const r = await run(["pulumi", ...args, "--non-interactive", "--color", "never"], { cwd: project, env, timeoutMs: 900000, okCodes: opts.okCodes });
        return { ...r, seconds: (Date.now() - started) / 1000 };
    };

    before(async function () {
        this.timeout(900000);
        tools = tempDir("plugin-tools");
        await installTarball(tools, await packedTarball(), "kairos-tools");
        const home = tempDir("pulumi-home");
        env = {
            PULUMI_HOME: home,
            PULUMI_BACKEND_URL: `file://${tempDir("yaml-backend")}`,
            PULUMI_CONFIG_PASSPHRASE: "yaml-seed-test",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PATH: `${pulumiBinDir()}:${process.env.PATH}`,
            PULUMI_KAIROS_HANDLERS: undefined,
        };
        const started = Date.now();
        const installed = await run([path.join(tools, "node_modules/.bin/pulumi-kairos"), "install-plugin"], { env, timeoutMs: 180000 });
        timings.installPlugin = (Date.now() - started) / 1000;
        assert.match(installed.stdout, /installed resource plugin kairos v\d+\.\d+\.\d+ \(runs .*node_modules\/pulumi-kairos\/bin\/provider\/plugin\.js\)/);

        project = tempDir("yaml-seed");
        fs.copyFileSync(path.join(EXAMPLE, "Pulumi.yaml"), path.join(project, "Pulumi.yaml"));
        writeK3sTree(path.join(project, "k3s-tree"), "v1.31.2");
        await buildTestOsRootfs(path.join(project, "kairos-os"));
        await pulumi(["stack", "init", "dev"]);
    });

    after(() => console.log(`      (timings, s: ${JSON.stringify(timings)})`));

    it("up builds the four resources, each build step logged on its resource's row; a second up changes nothing", async () => {
        const up = await pulumi(["up", "--yes"]);
        timings.firstUp = up.seconds;
        assert.match(up.stdout, /\+ 5 created/, up.stdout);
        // the plugin's build-log lines land on the resource they belong to: live on its row, kept under Diagnostics
        assert.match(up.stdout, /kairos:index:SystemExtension k3s creating \(\d+s\) SystemExtension k3s: build and verify image\.\.\./, up.stdout);
        assert.match(up.stdout, /kairos:index:BootMedia media created \([\d.]+s\) BootMedia kairos: build hybrid ISO done \(\d+\.\d\d s\)/, up.stdout);
        assert.match(up.stdout, /Diagnostics:[\s\S]*kairos:index:KairosUkiImage \(os\):\n\s+KairosUkiImage: created: new\n\s+KairosUkiImage: read OS image done/, up.stdout);
        built = await digests(project);
        const again = await pulumi(["up", "--yes"]);
        timings.noOpUp = again.seconds;
        assert.match(again.stdout, /5 unchanged/, again.stdout);
        assert.doesNotMatch(again.stdout, /created|updated|replaced/);
    });

    it("a changed k3s payload: preview --diff names the changed hash part, and only k3s and the media change", async () => {
        writeK3sTree(path.join(project, "k3s-tree"), "v1.31.3");
        const preview = await pulumi(["preview", "--diff"]);
        assert.match(preview.stdout, /~ kairos:index:SystemExtension: \(update\)[\s\S]*?~ hashParts\s*: \{[\s\S]*?~ source\s*:/, preview.stdout);
        assert.match(preview.stdout, /~ kairos:index:BootMedia: \(update\)/, preview.stdout);
        assert.doesNotMatch(preview.stdout, /kairos:index:(SigningKeys|KairosUkiImage): \(update\)/);
        assert.match(preview.stdout, /~ 2 to update/, preview.stdout);
        const up = await pulumi(["up", "--yes"]);
        assert.match(up.stdout, /~ 2 updated/, up.stdout);
        const now = await digests(project);
        assert.notEqual(now["out/extensions/k3s.sysext.raw"], built["out/extensions/k3s.sysext.raw"]);
        assert.equal(now["out/uki/norole.efi"], built["out/uki/norole.efi"]);
        assert.equal(now["out/keys/db.auth"], built["out/keys/db.auth"]);
        built = now;
    });

    it("a tampered ISO: refresh shows the drift, the next up restores the same bytes", async () => {
        fs.appendFileSync(path.join(project, "out/media/kairos.iso"), "tampered");
        const refresh = await pulumi(["refresh", "--yes", "--diff"]);
        assert.match(refresh.stdout, /kairos\.iso: altered/, refresh.stdout);
        const up = await pulumi(["up", "--yes"]);
        assert.match(up.stdout, /BootMedia kairos: restored: drift: kairos\.iso: altered/, up.stdout);
        assert.equal(await sha256File(path.join(project, "out/media/kairos.iso")), built["out/media/kairos.iso"]);
    });

    it("the same inputs through the dynamic providers give byte-identical artifacts", async () => {
        const other = path.join(tempDir("dynamic-twin"), "project");
        fs.mkdirSync(other);
        fs.copyFileSync(path.join(CONSUMER_TEMPLATE, "stack.js"), path.join(other, "stack.js"));
        fs.copyFileSync(path.join(CONSUMER_TEMPLATE, "Pulumi.yaml"), path.join(other, "Pulumi.yaml"));
        // examples/seed-yaml/Pulumi.yaml, word for word in TypeScript-package form
        fs.writeFileSync(path.join(other, "program.js"), [
            `const { SigningKeys, SystemExtension, KairosUkiImage, BootMedia } = require("pulumi-kairos");`,
            `module.exports = async () => {`,
            // keys are random: this twin adopts the YAML stack's key files (import copies them into out/keys)
            `    const keys = new SigningKeys("keys", { name: "Acme Corp", outputDir: "out/keys", import: { dir: "keys-import" } });`,
            `    const k3s = new SystemExtension("k3s", { name: "k3s", outputDir: "out/extensions", source: { dir: "k3s-tree" }, release: { reloadManager: true }, signingKeys: keys });`,
            `    const os = new KairosUkiImage("os", { outputDir: "out/uki", source: { dir: "kairos-os" }, signingKeys: keys });`,
            `    const media = new BootMedia("media", { name: "kairos", outputDir: "out/media", ukiImage: os, signingKeys: keys, extensions: [k3s], secureBootEnroll: "force" });`,
            `    return { iso: media.path };`,
            `};`,
        ].join("\n"));
        for (const key of ["PK", "KEK", "db"]) {
            for (const ext of ["key", "pem"]) fs.cpSync(path.join(project, `out/keys/${key}.${ext}`), path.join(other, `keys-import/${key}.${ext}`));
        }
        fs.cpSync(path.join(project, "out/keys/tpm2-pcr-private.pem"), path.join(other, "keys-import/tpm2-pcr-private.pem"));
        for (const tree of ["k3s-tree", "kairos-os"]) fs.cpSync(path.join(project, tree), path.join(other, tree), { recursive: true, verbatimSymlinks: true });
        fs.symlinkSync(path.join(tools, "node_modules"), path.join(other, "node_modules"));
        const started = Date.now();
        const up = await stackOp(other, "up");
        assert.deepEqual(up.changes, { create: RESOURCES });
        // dynamic providers have no URN to log against; through the set-up's wrapper their lines reach the engine on the stack
        assert.match(up.stdout, /Diagnostics:\n\s+pulumi:pulumi:Stack \(kairos-consumer-dev\):\n(?:\s+.*\n)*?\s+SystemExtension k3s: build and verify image done/, up.stdout);
        assert.doesNotMatch(up.stdout, /\[kairos\]/, "no raw stderr lines");
        timings.dynamicUp = (Date.now() - started) / 1000;
        assert.deepEqual(await digests(other), built);
        const noOpStarted = Date.now();
        assert.deepEqual((await stackOp(other, "up")).changes, { same: RESOURCES });
        timings.dynamicNoOpUp = (Date.now() - noOpStarted) / 1000;
    });

    it("pulumi import adopts a genkey key folder: the next up changes nothing and touches no file; a re-sign that would drop its Microsoft lists is refused", async () => {
        const legacy = path.join(project, "legacy-keys");
        await makeGenkeyFolder(legacy, "Acme Legacy", { timestamp: "2026-11-30 10:00:00" });
        const before = await folderDigests(legacy);
        const imported = await pulumi(["import", "kairos:index:SigningKeys", "legacy", "legacy-keys", "--yes", "--protect=false", "--out", "imported.yaml"]);
        assert.match(imported.stdout, /= 1 imported/, imported.stdout);
        const generated = fs.readFileSync(path.join(project, "imported.yaml"), "utf8");
        assert.match(generated, /type: kairos:(index:)?SigningKeys/);
        assert.match(generated, /name: Acme Legacy/);
        assert.match(generated, /authTimestamp: 2026-11-30T10:00:00Z/);
        // the generated resource goes into the program, as a user would paste it
        const program = fs.readFileSync(path.join(project, "Pulumi.yaml"), "utf8");
        const resourceLines = generated.slice(generated.indexOf("resources:") + "resources:".length).replace(/\n+$/, "");
        fs.writeFileSync(path.join(project, "Pulumi.yaml"), program.replace("\nresources:", `\nresources:${resourceLines}\n`));
        const up = await pulumi(["up", "--yes"]);
        assert.match(up.stdout, /6 unchanged/, up.stdout);
        assert.deepEqual(await folderDigests(legacy), before);

        fs.writeFileSync(path.join(project, "Pulumi.yaml"), fs.readFileSync(path.join(project, "Pulumi.yaml"), "utf8").replace("authTimestamp: 2026-11-30T10:00:00Z", "authTimestamp: 2027-01-01T00:00:00Z"));
        const refused = await pulumi(["preview"], { okCodes: [1] });
        assert.match(refused.stdout + refused.stderr, /imported with signature lists no input names \(1 after the own certificate in KEK\.esl, 1 after the own certificate in db\.esl/);
        assert.deepEqual(await folderDigests(legacy), before);
        fs.writeFileSync(path.join(project, "Pulumi.yaml"), program.replace("\nresources:", `\nresources:${resourceLines}\n`));
    });

    it("the release resources from YAML: k3s published as Kairos' raw artifact and listed in a catalog nodes fetch", async () => {
        const registry = await startRegistry();
        const releases = path.join(tempDir("releases-yaml"), "project");
        fs.mkdirSync(releases);
        fs.copyFileSync(path.join(REPO, "examples/releases-yaml/Pulumi.yaml"), path.join(releases, "Pulumi.yaml"));
        const inReleases = (args: string[]) => run(["pulumi", ...args, "--non-interactive", "--color", "never"], { cwd: releases, env, timeoutMs: 300000 });
        try {
            await inReleases(["stack", "init", "dev"]);
            for (const [k, v] of [["registry", registry.host], ["image", path.join(project, "out/extensions/k3s.sysext.raw")], ["plainHttp", "true"]]) await inReleases(["config", "set", k, v]);
            const up = await inReleases(["up", "--yes"]);
            assert.match(up.stdout, /\+ 3 created/, up.stdout);
            const outputs = JSON.parse((await inReleases(["stack", "output", "--json"])).stdout);
            assert.match(outputs.reference, new RegExp(`^${registry.host}/kairos/k3s@sha256:[0-9a-f]{64}$`));
            const catalog = JSON.parse(await (await fetch(outputs.catalogUrl)).text());
            assert.equal(catalog.layers[0].tags[0].sysext.amd64.oci, outputs.reference);
            await inReleases(["destroy", "--yes"]);
            assert.ok(await resolveDigest(outputs.reference, { plainHttp: true }), "destroy leaves the published release");
        } finally {
            await registry.stop();
        }
    });

    it("a Dockerfile source from YAML: examples/dockerfile-yaml built by BuildKit, signed by the plugin", async () => {
        // A FROM scratch + COPY Dockerfile: this test is about YAML and the plugin; the seed's k3s Dockerfile
        // (apt-get against Debian's archive, heredocs) runs in test/provider/dockerfile-source.test.ts and the demo.
        const buildkitd = await startBuildkitd();
        const project = path.join(tempDir("dockerfile-yaml"), "project");
        fs.mkdirSync(project);
        fs.copyFileSync(path.join(REPO, "examples/dockerfile-yaml/Pulumi.yaml"), path.join(project, "Pulumi.yaml"));
        fs.writeFileSync(path.join(project, "Dockerfile"), "FROM scratch\nARG K3S_VERSION\nCOPY usr /usr\n");
        writeK3sTree(path.join(project, "k3s-context"), "v1.31.2");
        const inProject = (args: string[]) => run(["pulumi", ...args, "--non-interactive", "--color", "never"], { cwd: project, env: { ...env, PATH: `${useBuildkitFromSetup() ?? ""}:${env.PATH}`, BUILDKIT_HOST: buildkitd.address }, timeoutMs: 300000 });
        try {
            await inProject(["stack", "init", "dev"]);
            const up = await inProject(["up", "--yes"]);
            assert.match(up.stdout, /\+ 3 created/, up.stdout);
            assert.match(up.stdout, /SystemExtension k3s: BuildKit at unix:\/\/\S+: 1 steps, 0 from its cache/, up.stdout);
            const outputs = JSON.parse((await inProject(["stack", "output", "--json"])).stdout);
            const image = path.join(project, outputs.k3s);
            assert.ok((await veritySignatureVerifies(image, path.join(project, "out/keys/db.pem"), project)).ok);
            const tree = await extractRootTree(image, path.join(project, "tree"));
            assert.ok(fs.readFileSync(path.join(tree, "usr/local/bin/k3s"), "utf8").includes("k3s v1.31.2 (stand-in)"));
            const again = await inProject(["up", "--yes"]);
            assert.match(again.stdout, /3 unchanged/, again.stdout);
        } finally {
            await buildkitd.stop();
        }
    });

    it("destroy removes what the resources made and keeps the keys (the documented default)", async () => {
        const destroy = await pulumi(["destroy", "--yes"]);
        assert.match(destroy.stdout, /- 6 deleted/, destroy.stdout);
        assert.ok(!fs.existsSync(path.join(project, "out/media/kairos.iso")));
        assert.ok(!fs.existsSync(path.join(project, "out/extensions/k3s.sysext.raw")));
        assert.ok(fs.existsSync(path.join(project, "out/keys/db.key")));
        assert.ok(fs.existsSync(path.join(project, "legacy-keys/db.key")), "an adopted key folder stays too");
    });
});

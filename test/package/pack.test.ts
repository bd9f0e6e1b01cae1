// What `npm pack` would publish: the compiled library (bin/: JavaScript and declarations) plus
// schema.json, README and LICENSE — no TypeScript sources, tests, scripts, examples or CI files — and
// that compiled entry point loads in a plain Node process, without ts-node.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";

const REPO = path.resolve(__dirname, "..", "..");
const TOP_LEVEL_FILES = ["LICENSE", "README.md", "package.json", "schema.json"];

describe("the npm package", function () {
    this.timeout(300000);
    let files: string[];
    let packed: { size: number; unpackedSize: number; entryCount: number };

    before(async () => {
        // --dry-run still runs prepack (npm run build), so this is what a publish would contain
        const { stdout } = await run(["npm", "pack", "--dry-run", "--json", "--ignore-scripts=false"], { cwd: REPO, timeoutMs: 240000 });
        const [info] = JSON.parse(stdout.slice(stdout.indexOf("[")));
        files = info.files.map((f: { path: string }) => f.path).sort();
        packed = info;
    });

    it("holds only bin/*.js, bin/*.d.ts and the top-level files", () => {
        const unexpected = files.filter((f) => !TOP_LEVEL_FILES.includes(f) && !/^bin\/.+\.(js|d\.ts)$/.test(f));
        assert.deepEqual(unexpected, []);
        for (const f of [...TOP_LEVEL_FILES, "bin/index.js", "bin/index.d.ts", "bin/provider/dynamic-transport.js", "bin/provider/boot-media.d.ts", "bin/constructs/trusted-boot-image.js"]) {
            assert.ok(files.includes(f), `${f} is packed`);
        }
        assert.ok(!files.some((f) => /^bin\/(test|scripts|examples|bench)\//.test(f)), "no tests, scripts, examples or benchmarks");
        console.log(`      (npm pack: ${packed.entryCount} files, ${(packed.size / 1024).toFixed(0)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(0)} KiB unpacked)`);
    });

    it("every subpath in exports and the bin point at packed files", () => {
        const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
        const targets = Object.values<string | Record<string, string>>(pkg.exports).flatMap((t) => (typeof t === "string" ? [t] : Object.values(t)));
        assert.ok(targets.length >= 10, JSON.stringify(pkg.exports));
        for (const t of targets) assert.ok(files.includes(t.replace(/^\.\//, "")), `${t} is packed`);
        assert.deepEqual(Object.keys(pkg.exports).sort(), [".", "./aws", "./command", "./docker", "./handlers", "./package.json", "./schema.json"]);
        for (const target of Object.values<string>(pkg.bin)) assert.ok(files.includes(target), `bin ${target} is packed`);
        assert.match(fs.readFileSync(path.join(REPO, pkg.bin["pulumi-kairos"]), "utf8"), /^#!\/usr\/bin\/env node\n/);
    });

    it("the main entry loads none of @pulumi/aws, @pulumi/docker, @pulumi/command; each subpath loads its own", async () => {
        const loaded = async (entry: string) => {
            const probe = [
                `require(${JSON.stringify(path.join(REPO, entry))});`,
                `const names = ["@pulumi/aws", "@pulumi/docker", "@pulumi/command"];`,
                `console.log(JSON.stringify(names.filter((n) => Object.keys(require.cache).some((p) => p.includes("/node_modules/" + n + "/")))));`,
            ].join("\n");
            return JSON.parse((await run(["node", "-e", probe], { cwd: REPO, timeoutMs: 120000 })).stdout);
        };
        assert.deepEqual(await loaded("bin/index.js"), []);
        assert.deepEqual(await loaded("bin/constructs/s3-release.js"), ["@pulumi/aws"]);
        // SysextFromDockerfile also runs a local command (@pulumi/command) around the docker image
        assert.deepEqual(await loaded("bin/constructs/sysext-from-dockerfile.js"), ["@pulumi/docker", "@pulumi/command"]);
        assert.deepEqual(await loaded("bin/constructs/auroraboot-build.js"), ["@pulumi/command"]);
    });

    it("the compiled entry point loads without ts-node and finds schema.json", async () => {
        const probe = [
            `const k = require(${JSON.stringify(path.join(REPO, "bin", "index.js"))});`,
            `const v = require(${JSON.stringify(path.join(REPO, "bin", "provider", "validation", "schema-validator.js"))});`,
            `const tsNode = Object.keys(require.cache).some((p) => p.includes("/ts-node/"));`,
            `console.log(JSON.stringify({ exports: Object.keys(k).sort(), schema: v.SCHEMA_PATH, tsNode }));`,
        ].join("\n");
        const { stdout } = await run(["node", "-e", probe], { cwd: REPO });
        const r = JSON.parse(stdout);
        for (const name of ["SigningKeys", "SystemExtension", "KairosUkiImage", "BootMedia", "PromotedArtifact", "TrustedBootImage"]) assert.ok(r.exports.includes(name), name);
        assert.equal(r.schema, path.join(REPO, "schema.json"));
        assert.equal(r.tsNode, false);
    });
});

// SDKs for languages other than TypeScript, generated from schema.json by Pulumi's own code
// generators (scripts/gen-sdk, pinned to the CLI's pkg/v3): the Go SDK builds against the served
// sdk/v3, the Node.js SDK type-checks against @pulumi/pulumi, and the Python SDK byte-compiles (no
// Python Pulumi SDK can be installed here, so that is as far as it goes).
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/temp";
import { REPO, SDK_VERSION } from "../helpers/packed";

const GEN = path.join(REPO, "scripts", "gen-sdk");
const GO_ENV = { GOFLAGS: "-mod=mod" };

describe("SDKs generated from schema.json", function () {
    this.timeout(1200000);
    let out: string;
    const timings: Record<string, number> = {};
    const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
        const started = Date.now();
        try {
            return await fn();
        } finally {
            timings[name] = (Date.now() - started) / 1000;
        }
    };

    before(async function () {
        this.timeout(900000);
        out = tempDir("sdk");
        const { stdout } = await timed("generate", () =>
            run(["go", "run", ".", "-schema", path.join(REPO, "schema.json"), "-out", out], { cwd: GEN, env: GO_ENV, timeoutMs: 900000 }),
        );
        assert.match(stdout, /nodejs: \d+ files\npython: \d+ files\ngo: \d+ files/);
    });

    after(() => console.log(`      (timings, s: ${JSON.stringify(timings)})`));

    it("Go: one file per resource, and it builds against github.com/pulumi/pulumi/sdk/v3", async () => {
        const goDir = path.join(out, "go");
        const files = fs.readdirSync(path.join(goDir, "kairos")).sort();
        for (const f of ["signingKeys.go", "systemExtension.go", "kairosUkiImage.go", "bootMedia.go", "promotedArtifact.go"]) assert.ok(files.includes(f), f);
        // schema.json's language.go.importBasePath is example.invalid/pulumi-kairos/sdk/go/kairos
        fs.writeFileSync(path.join(goDir, "go.mod"), `module example.invalid/pulumi-kairos/sdk/go\n\ngo 1.21\n\nrequire github.com/pulumi/pulumi/sdk/v3 v${SDK_VERSION}\n`);
        await timed("goBuild", async () => {
            await run(["go", "mod", "tidy"], { cwd: goDir, env: GO_ENV, timeoutMs: 900000 });
            await run(["go", "build", "./..."], { cwd: goDir, env: GO_ENV, timeoutMs: 900000 });
        });
        const signingKeys = fs.readFileSync(path.join(goDir, "kairos", "signingKeys.go"), "utf8");
        assert.match(signingKeys, /func NewSigningKeys\(ctx \*pulumi\.Context,/);
        assert.match(signingKeys, /OutputDir pulumi\.StringInput/);
    });

    it("Node.js: the generated TypeScript type-checks against @pulumi/pulumi", async () => {
        const nodeDir = path.join(out, "nodejs");
        fs.symlinkSync(path.join(REPO, "node_modules"), path.join(nodeDir, "node_modules"));
        await timed("nodeTypecheck", () => run(["node", path.join(REPO, "node_modules/typescript/bin/tsc"), "-p", nodeDir, "--noEmit"], { cwd: nodeDir, timeoutMs: 300000 }));
        assert.match(fs.readFileSync(path.join(nodeDir, "systemExtension.ts"), "utf8"), /export class SystemExtension extends pulumi\.CustomResource/);
    });

    it("Python: the generated package byte-compiles", async () => {
        const pkg = path.join(out, "python", "pulumi_kairos");
        await run(["python3", "-m", "compileall", "-q", pkg], { timeoutMs: 120000 });
        const compiled = fs.readdirSync(path.join(pkg, "__pycache__"));
        for (const m of ["signing_keys", "system_extension", "kairos_uki_image", "boot_media", "promoted_artifact"]) assert.ok(compiled.some((f) => f.startsWith(`${m}.`)), m);
    });
});

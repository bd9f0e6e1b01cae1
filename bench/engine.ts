// Benchmarks through the real Pulumi engine (prints numbers; not a test):
//   1. no-op `up` on a stack of keys + 10 extensions vs the same number of trivial dynamic resources
//   2. change 1 of 10 extensions: how many resources the engine rebuilt
// Usage: npx ts-node --transpile-only bench/engine.ts [RUNS]
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { openLocalStack } from "../scripts/lib/local-engine";
import { SigningKeys } from "../provider/signing-keys";
import { SystemExtension } from "../provider/system-extension";
import { median, timed } from "./timing";

const RUNS = Number(process.argv[2] ?? 3);
const COUNT = 10;

const trivialProvider: pulumi.dynamic.ResourceProvider = {
    async create(inputs: Record<string, unknown>) {
        return { id: String(inputs.n), outs: inputs };
    },
};

class Trivial extends pulumi.dynamic.Resource {
    constructor(name: string, n: number) {
        super(trivialProvider, name, { n }, {});
    }
}

async function main(): Promise<void> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-engine-"));
    for (let i = 0; i < COUNT; i++) {
        const dir = path.join(work, "src", `ext${i}`, "usr", "bin");
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, `tool${i}`), `tool ${i}\n`.repeat(1000), { mode: 0o755 });
    }
    const backendDir = path.join(work, "backend");
    const base = { backendDir, passphrase: "bench", projectName: "kairos-bench" };
    const kairos = await openLocalStack(async () => {
        const keys = new SigningKeys("keys", { name: "bench", outputDir: path.join(work, "keys") });
        for (let i = 0; i < COUNT; i++) {
            new SystemExtension(`ext${i}`, { name: `ext${i}`, outputDir: path.join(work, "out"), source: { dir: path.join(work, "src", `ext${i}`) }, signingKeys: keys });
        }
    }, { ...base, stackName: "extensions" });
    const trivial = await openLocalStack(async () => {
        for (let i = 0; i <= COUNT; i++) new Trivial(`trivial${i}`, i);
    }, { ...base, stackName: "trivial" });

    const firstUp = await timed(() => kairos.up({ color: "never" }));
    await trivial.up({ color: "never" });
    const noopKairos: number[] = [];
    const noopTrivial: number[] = [];
    for (let r = 0; r < RUNS; r++) {
        noopKairos.push(await timed(async () => assertNoChanges(await kairos.up({ color: "never" }))));
        noopTrivial.push(await timed(async () => assertNoChanges(await trivial.up({ color: "never" }))));
    }
    fs.writeFileSync(path.join(work, "src", "ext3", "usr", "bin", "tool3"), "changed\n");
    let changed = 0;
    const changeOne = await timed(async () => {
        const r = await kairos.up({ color: "never" });
        changed = (r.summary.resourceChanges?.update ?? 0) + (r.summary.resourceChanges?.create ?? 0) + (r.summary.resourceChanges?.replace ?? 0);
    });

    console.log(`first up (keys + ${COUNT} extensions, build everything): ${firstUp.toFixed(2)} s`);
    console.log(`no-op up, keys + ${COUNT} extensions:  median ${median(noopKairos).toFixed(2)} s over ${RUNS} runs`);
    console.log(`no-op up, ${COUNT + 1} trivial dynamic resources: median ${median(noopTrivial).toFixed(2)} s over ${RUNS} runs`);
    console.log(`ratio no-op kairos/trivial: ${(median(noopKairos) / median(noopTrivial)).toFixed(2)}`);
    console.log(`change 1 of ${COUNT} extension payloads: ${changed} resource(s) rebuilt, up took ${changeOne.toFixed(2)} s`);
    fs.rmSync(work, { recursive: true, force: true });
}

function assertNoChanges(r: { summary: { resourceChanges?: Record<string, number> } }): void {
    const ops = Object.keys(r.summary.resourceChanges ?? {}).filter((k) => k !== "same");
    if (ops.length > 0) throw new Error(`expected a no-op up, got ${JSON.stringify(r.summary.resourceChanges)}`);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});

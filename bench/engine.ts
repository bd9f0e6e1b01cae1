// Benchmarks through the real Pulumi engine (prints numbers; not a test):
//   1. no-op `up` on a stack of keys + N extensions vs the same number of trivial dynamic resources
//   2. change 1 of N extensions: how many resources the engine rebuilt
// Usage: npx ts-node --transpile-only bench/engine.ts [RUNS] [COUNTS, e.g. 10,50]
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { openLocalStack } from "../scripts/lib/local-engine";
import { SigningKeys } from "../provider/signing-keys";
import { SystemExtension } from "../provider/system-extension";
import { median, timed } from "./timing";

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

export interface NoopUpResult {
    count: number;
    firstUpSeconds: number;
    noopKairosSeconds: number;
    noopTrivialSeconds: number;
    changeOneRebuilt: number;
    changeOneSeconds: number;
}

/**
 * Keys + `count` extensions vs `count + 1` trivial dynamic resources, both through the engine with the
 * provider processes the stack would get: the compiled handlers when `npm run build` is fresh.
 */
export async function noopUpBench(count: number, runs: number): Promise<NoopUpResult> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-engine-"));
    try {
        for (let i = 0; i < count; i++) {
            const dir = path.join(work, "src", `ext${i}`, "usr", "bin");
            fs.mkdirSync(dir, { recursive: true });
            fs.writeFileSync(path.join(dir, `tool${i}`), `tool ${i}\n`.repeat(1000), { mode: 0o755 });
        }
        const backendDir = path.join(work, "backend");
        const base = { backendDir, passphrase: "bench", projectName: "kairos-bench" };
        const kairos = await openLocalStack(async () => {
            const keys = new SigningKeys("keys", { name: "bench", outputDir: path.join(work, "keys") });
            for (let i = 0; i < count; i++) {
                new SystemExtension(`ext${i}`, { name: `ext${i}`, outputDir: path.join(work, "out"), source: { dir: path.join(work, "src", `ext${i}`) }, signingKeys: keys });
            }
        }, { ...base, stackName: "extensions" });
        const trivial = await openLocalStack(async () => {
            for (let i = 0; i <= count; i++) new Trivial(`trivial${i}`, i);
        }, { ...base, stackName: "trivial" });

        const firstUpSeconds = await timed(() => kairos.up({ color: "never" }));
        await trivial.up({ color: "never" });
        const noopKairos: number[] = [];
        const noopTrivial: number[] = [];
        for (let r = 0; r < runs; r++) {
            noopKairos.push(await timed(async () => assertNoChanges(await kairos.up({ color: "never" }))));
            noopTrivial.push(await timed(async () => assertNoChanges(await trivial.up({ color: "never" }))));
        }
        fs.writeFileSync(path.join(work, "src", "ext3", "usr", "bin", "tool3"), "changed\n");
        let changeOneRebuilt = 0;
        const changeOneSeconds = await timed(async () => {
            const r = await kairos.up({ color: "never" });
            changeOneRebuilt = (r.summary.resourceChanges?.update ?? 0) + (r.summary.resourceChanges?.create ?? 0) + (r.summary.resourceChanges?.replace ?? 0);
        });
        return { count, firstUpSeconds, noopKairosSeconds: median(noopKairos), noopTrivialSeconds: median(noopTrivial), changeOneRebuilt, changeOneSeconds };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

async function main(): Promise<void> {
    const runs = Number(process.argv[2] ?? 3);
    for (const count of (process.argv[3] ?? "10").split(",").map(Number)) {
        const r = await noopUpBench(count, runs);
        console.log(`first up (keys + ${count} extensions, build everything): ${r.firstUpSeconds.toFixed(2)} s`);
        console.log(`no-op up, keys + ${count} extensions:  median ${r.noopKairosSeconds.toFixed(2)} s over ${runs} runs`);
        console.log(`no-op up, ${count + 1} trivial dynamic resources: median ${r.noopTrivialSeconds.toFixed(2)} s over ${runs} runs`);
        console.log(`ratio no-op kairos/trivial: ${(r.noopKairosSeconds / r.noopTrivialSeconds).toFixed(2)}`);
        console.log(`change 1 of ${count} extension payloads: ${r.changeOneRebuilt} resource(s) rebuilt, up took ${r.changeOneSeconds.toFixed(2)} s`);
    }
}

function assertNoChanges(r: { summary: { resourceChanges?: Record<string, number> } }): void {
    const ops = Object.keys(r.summary.resourceChanges ?? {}).filter((k) => k !== "same");
    if (ops.length > 0) throw new Error(`expected a no-op up, got ${JSON.stringify(r.summary.resourceChanges)}`);
}

if (require.main === module) {
    main().catch((e) => {
        console.error(e);
        process.exit(1);
    });
}

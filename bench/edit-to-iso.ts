// Benchmark: the wall time of `pulumi up`, through the real engine, from one edit to a new signed ISO on
// the bench OS (the ~300 MB UKI) with one 70 MB extension, wired by TrustedBootImage as a user would:
//   - one extension's payload changed: the sysext is rebuilt and the ISO made again around the UKI,
//     which is copied, not rebuilt (target <= 10 s);
//   - one file of the OS changed: a new initrd (its zstd pass is the floor), a new UKI, a new ISO.
// Each up must update exactly the resources the edit touches; anything else fails the benchmark.
// Usage: npx ts-node --transpile-only bench/edit-to-iso.ts  (needs scripts/build-bench-rootfs.sh)
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { TrustedBootImage } from "../constructs/trusted-boot-image";
import { openLocalStack } from "../scripts/lib/local-engine";
import { benchRootfsPath, kairosTree, replaceFile } from "./kairos-tree";
import { timed } from "./timing";

const PAYLOAD_BYTES = 70 * 1024 * 1024;

export interface EditToIsoBench {
    firstUpSeconds: number;
    extensionEditSeconds: number;
    osFileEditSeconds: number;
    isoBytes: number;
    ukiBytes: number;
    /** Each resource's build steps in the two edits' ups, "Type: step 1.2 s, …". */
    extensionEditSteps: string[];
    osFileEditSteps: string[];
}

type UpSummary = { summary: { resourceChanges?: Record<string, number> } };

export async function editToIsoBench(benchRootfs: string): Promise<EditToIsoBench> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-e2e-"));
    const savedCache = process.env.PULUMI_KAIROS_CACHE;
    process.env.PULUMI_KAIROS_CACHE = path.join(work, "cache"); // the first up starts cold
    try {
        const tree = kairosTree(benchRootfs, path.join(work, "os"));
        const payload = path.join(work, "k3s");
        const binary = path.join(payload, "usr", "local", "bin", "k3s");
        fs.mkdirSync(path.dirname(binary), { recursive: true });
        fs.writeFileSync(binary, fs.readFileSync(process.execPath).subarray(0, PAYLOAD_BYTES), { mode: 0o755 });
        fs.mkdirSync(path.join(payload, "usr", "lib", "extension-release.d"), { recursive: true });
        fs.writeFileSync(path.join(payload, "usr", "lib", "extension-release.d", "extension-release.k3s"), "ID=_any\nARCHITECTURE=x86-64\n");

        let outputs: Record<string, { value: unknown }> = {};
        const stack = await openLocalStack(async () => {
            const image = new TrustedBootImage("bench", {
                outputDir: path.join(work, "out"),
                keys: { name: "bench" },
                protectKeys: false,
                extensions: [{ name: "k3s", source: { dir: payload } }],
                os: { source: { dir: tree }, maxUkiSizeMB: 4000 },
                media: { name: "bench" },
            });
            return {
                iso: image.media.size, uki: image.uki.ukis,
                builds: { SystemExtension: image.extensions[0].lastBuild, KairosUkiImage: image.uki.lastBuild, BootMedia: image.media.lastBuild },
            };
        }, { backendDir: path.join(work, "backend"), passphrase: "bench", projectName: "kairos-bench-e2e", stackName: "e2e" });

        const up = async (expected: Record<string, number>): Promise<number> => {
            let result: UpSummary & { outputs: Record<string, { value: unknown }> } | undefined;
            const seconds = await timed(async () => (result = await stack.up({ color: "never" })));
            const changes = Object.fromEntries(Object.entries(result!.summary.resourceChanges ?? {}).filter(([op]) => op !== "same"));
            if (JSON.stringify(changes) !== JSON.stringify(expected)) throw new Error(`expected ${JSON.stringify(expected)}, the up did ${JSON.stringify(changes)}`);
            outputs = result!.outputs;
            return seconds;
        };
        const firstUpSeconds = await up({ create: 6 }); // stack, component, keys, sysext, UKI, ISO

        // One byte of the payload: a new sysext and a new ISO; the UKI stays.
        const bytes = fs.readFileSync(binary);
        bytes[bytes.length - 1] ^= 0xff;
        replaceFile(binary, bytes, 0o755);
        const extensionEditSeconds = await up({ update: 2 });
        const extensionEditSteps = buildSteps(outputs, ["SystemExtension", "BootMedia"]);

        replaceFile(path.join(tree, "etc", "hostname"), "bench-edited\n");
        const osFileEditSeconds = await up({ update: 2 });
        const osFileEditSteps = buildSteps(outputs, ["KairosUkiImage", "BootMedia"]);

        const ukis = outputs.uki.value as Array<{ size: number }>;
        return { firstUpSeconds, extensionEditSeconds, osFileEditSeconds, isoBytes: outputs.iso.value as number, ukiBytes: ukis[0].size, extensionEditSteps, osFileEditSteps };
    } finally {
        if (savedCache === undefined) delete process.env.PULUMI_KAIROS_CACHE;
        else process.env.PULUMI_KAIROS_CACHE = savedCache;
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/** The named resources' last builds from the stack outputs, one line each. */
function buildSteps(outputs: Record<string, { value: unknown }>, types: string[]): string[] {
    const builds = outputs.builds.value as Record<string, { seconds: number; steps: { step: string; seconds: number }[] }>;
    return types.map((t) => `${t} ${builds[t].seconds.toFixed(1)} s: ${builds[t].steps.map((st) => `${st.step} ${st.seconds.toFixed(1)} s`).join(", ")}`);
}

async function main(): Promise<void> {
    const r = await editToIsoBench(await benchRootfsPath());
    const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
    console.log(`first up (keys, 70 MB sysext, UKI ${mb(r.ukiBytes)}, ISO ${mb(r.isoBytes)}): ${r.firstUpSeconds.toFixed(1)} s`);
    console.log(`one extension payload edited -> new ISO: ${r.extensionEditSeconds.toFixed(1)} s\n  ${r.extensionEditSteps.join("\n  ")}`);
    console.log(`one OS file edited -> new ISO: ${r.osFileEditSeconds.toFixed(1)} s\n  ${r.osFileEditSteps.join("\n  ")}`);
}

if (require.main === module) {
    main().catch((e) => {
        console.error(e);
        process.exit(1);
    });
}

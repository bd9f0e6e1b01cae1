// Benchmark: a KairosUkiImage on the bench rootfs, built once, then rebuilt after
//   - a command-line-only change (the initrd is reused: its tree did not change),
//   - a kernel-only change (/boot is not in the initrd: reused again),
//   - one file of the OS tree changed (a new initrd: the full zstd pass).
// Each time check() + create/update through the handler, as the engine calls them, with a cache folder
// of its own (PULUMI_KAIROS_CACHE), so the first build starts cold.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { kairosUkiImageHandler as uki } from "../provider/kairos-uki-image";
import { signingKeysHandler as keysHandler } from "../provider/signing-keys";
import { withLogSink } from "../provider/build-log";
import { kairosTree, replaceFile } from "./kairos-tree";
import { timed } from "./timing";

export interface UkiRebuildBench {
    full: number;
    cmdlineOnly: number;
    kernelOnly: number;
    oneFile: number;
    ukiBytes: number;
    initrdReused: { cmdlineOnly: boolean; kernelOnly: boolean; oneFile: boolean };
}

export async function ukiRebuildBench(benchRootfs: string): Promise<UkiRebuildBench> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-uki-"));
    const savedCache = process.env.PULUMI_KAIROS_CACHE;
    process.env.PULUMI_KAIROS_CACHE = path.join(work, "cache");
    try {
        const tree = kairosTree(benchRootfs, path.join(work, "os"));
        const keyInputs = (await keysHandler.check({}, { name: "bench", outputDir: path.join(work, "keys") })).inputs;
        const keys = (await keysHandler.create(keyInputs)).outs;
        const base = { outputDir: path.join(work, "uki"), source: { dir: tree }, signing: { key: keys.files.db.key, certificate: keys.files.db.pem }, pcrKey: keys.tpmPcrKeyFile, maxUkiSizeMB: 4000 };

        let outs: any;
        let said: string[] = [];
        const sink = { info: (m: string) => void said.push(m), progress: () => {} };
        const step = async (news: Record<string, unknown>): Promise<number> => {
            said = [];
            return timed(() => withLogSink(sink, async () => {
                const checked = await uki.check(outs ?? {}, news);
                if (checked.failures?.length) throw new Error(`check failed: ${JSON.stringify(checked.failures)}`);
                outs = outs ? (await uki.update(outs.outputDir, outs, checked.inputs)).outs : (await uki.create(checked.inputs)).outs;
            }));
        };
        const reused = () => said.some((m) => m.includes("initrd reused"));

        const full = await step(base);
        const cmdlineOnly = await step({ ...base, extendCmdline: "console=ttyS0" });
        const cmdlineReused = reused();
        const kernel = fs.realpathSync(path.join(tree, "boot", "vmlinuz"));
        replaceFile(kernel, Buffer.concat([fs.readFileSync(kernel), Buffer.alloc(4096, 1)]));
        const kernelOnly = await step({ ...base, extendCmdline: "console=ttyS0" });
        const kernelReused = reused();
        replaceFile(path.join(tree, "etc", "hostname"), "bench-changed\n");
        const oneFile = await step({ ...base, extendCmdline: "console=ttyS0" });
        const oneFileReused = reused();
        return {
            full, cmdlineOnly, kernelOnly, oneFile,
            ukiBytes: outs.ukis[0].size,
            initrdReused: { cmdlineOnly: cmdlineReused, kernelOnly: kernelReused, oneFile: oneFileReused },
        };
    } finally {
        if (savedCache === undefined) delete process.env.PULUMI_KAIROS_CACHE;
        else process.env.PULUMI_KAIROS_CACHE = savedCache;
        fs.rmSync(work, { recursive: true, force: true });
    }
}

// `npm run bench`: every benchmark of issue 12 on this machine, one table. Each row's two sides are
// measured in this run, one after the other. Needs root (the systemd-repart 257 chroot) and the bench
// fixtures (npm run bench builds them first). BENCH_RUNS (default 3) runs of the quick rows, median.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../provider/toolkit/run";
import { sysextBench } from "./sysext";
import { initrdBench } from "./initrd";
import { ukiRebuildBench } from "./uki-rebuild";
import { ukifyBench } from "./ukify";
import { noopUpBench } from "./engine";
import { measurePeakRss } from "./peak-rss";
import { benchRootfsPath, kairosTree } from "./kairos-tree";
import { artifactStoreBench } from "./artifact-store";
import { editToIsoBench } from "./edit-to-iso";
import { dockerfileBench } from "./dockerfile";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MB = 1e6;

interface Row {
    what: string;
    ours: string;
    reference: string;
    ratio: string;
    target: string;
    met?: boolean;
}

const s = (seconds: number) => `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
const x = (r: number) => `${r.toFixed(2)}x`;

async function main(): Promise<void> {
    await run(["npm", "run", "--silent", "build"], { cwd: path.join(__dirname, ".."), timeoutMs: 600_000 }); // the engine rows' providers load bin/
    const rootfs = await benchRootfsPath();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-"));
    const rows: Row[] = [];
    const started = Date.now();
    const progress = (m: string) => process.stderr.write(`bench: ${m} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    try {
        const tree = kairosTree(rootfs, path.join(work, "os"));

        progress("sysext");
        const sx = await sysextBench(RUNS, rootfs);
        const sxRatio = sx.provider.none.seconds / sx.repart257.seconds;
        rows.push({ what: `sysext ${mb(sx.payloadBytes)} payload, no compression`, ours: `${s(sx.provider.none.seconds)}, ${mb(sx.provider.none.bytes)}`, reference: `${s(sx.repart257.seconds)}, ${mb(sx.repart257.bytes)} systemd-repart 257, AuroraBoot argv`, ratio: x(sxRatio), target: "<= 1.00x", met: sxRatio <= 1 });
        rows.push({ what: "  same, our bare tool chain (no check, no verify)", ours: s(sx.provider.none.seconds), reference: `${s(sx.bare.none.seconds)} bare`, ratio: x(sx.provider.none.seconds / sx.bare.none.seconds), target: "-" });
        rows.push({ what: "  lz4 instead of none", ours: `${s(sx.provider.lz4.seconds)}, ${mb(sx.provider.lz4.bytes)}`, reference: `${s(sx.bare.lz4.seconds)}, ${mb(sx.bare.lz4.bytes)} bare lz4`, ratio: `size ${x(sx.provider.lz4.bytes / sx.provider.none.bytes)} of none`, target: "-" });

        progress("initrd");
        const ir = await initrdBench(tree);
        const ours = ir.zstd.find((z) => z.ours)!;
        const faster = ours.seconds / ir.klauspost.seconds;
        const smaller = ours.bytes / ir.klauspost.bytes;
        rows.push({ what: `initrd of ${mb(ir.cpioBytes)} cpio: compress`, ours: `${s(ours.seconds)}, ${mb(ours.bytes)} (${ours.name})`, reference: `${s(ir.klauspost.seconds)}, ${mb(ir.klauspost.bytes)} ${ir.klauspost.name}`, ratio: `time ${x(faster)}, size ${x(smaller)}`, target: "faster, not bigger", met: faster < 1 && smaller <= 1 });
        rows.push({ what: "  our cpio writer (before compressing)", ours: s(ir.cpioSeconds), reference: "-", ratio: "-", target: "-" });

        progress("UKI rebuilds");
        const uk = await ukiRebuildBench(rootfs);
        rows.push({ what: `UKI of the bench OS (${mb(uk.ukiBytes)}): first build`, ours: s(uk.full), reference: "-", ratio: "-", target: "-" });
        rows.push({ what: "  rebuild after a command-line-only change", ours: `${s(uk.cmdlineOnly)}${uk.initrdReused.cmdlineOnly ? ", initrd reused" : ""}`, reference: s(uk.full), ratio: x(uk.cmdlineOnly / uk.full), target: "<= 5 s", met: uk.cmdlineOnly <= 5 && uk.initrdReused.cmdlineOnly });
        rows.push({ what: "  rebuild after a kernel-only change", ours: `${s(uk.kernelOnly)}${uk.initrdReused.kernelOnly ? ", initrd reused" : ""}`, reference: s(uk.full), ratio: x(uk.kernelOnly / uk.full), target: "<= 5 s", met: uk.kernelOnly <= 5 && uk.initrdReused.kernelOnly });
        rows.push({ what: "  rebuild after one file of the OS changed", ours: `${s(uk.oneFile)}${uk.initrdReused.oneFile ? ", initrd reused (wrong!)" : ", new initrd"}`, reference: s(uk.full), ratio: x(uk.oneFile / uk.full), target: "new initrd", met: !uk.initrdReused.oneFile });

        progress("UKI assembly: ukify 257");
        const uf = await ukifyBench(rootfs, 1);
        rows.push({ what: `  assemble + sign from the same ${mb(uf.initrdBytes)} initrd`, ours: `${s(uf.oursSeconds)}, ${mb(uf.ukiBytes)}`, reference: `${s(uf.ukifySeconds)}, ${mb(uf.ukifyBytes)} ${uf.ukifyVersion}`, ratio: x(uf.ratio), target: "<= 1.00x", met: uf.ratio <= 1 });
        rows.push({ what: "  our UKI checked by ukify inspect / systemd-measure calculate / sign", ours: `${uf.checks.inspect} / ${uf.checks.measure} / ${uf.checks.pcrsig}`, reference: "-", ratio: "-", target: "agree", met: Object.values(uf.checks).every((c) => c === "agree") });

        progress("edit to ISO through the engine");
        const e2e = await editToIsoBench(rootfs);
        rows.push({ what: `pulumi up, one extension payload edited -> new signed ISO (UKI ${mb(e2e.ukiBytes)} copied)`, ours: s(e2e.extensionEditSeconds), reference: `${s(e2e.firstUpSeconds)} first up`, ratio: x(e2e.extensionEditSeconds / e2e.firstUpSeconds), target: "<= 10 s", met: e2e.extensionEditSeconds <= 10 });
        rows.push({ what: "pulumi up, one OS file edited -> new initrd, UKI and ISO", ours: s(e2e.osFileEditSeconds), reference: `${s(e2e.firstUpSeconds)} first up`, ratio: x(e2e.osFileEditSeconds / e2e.firstUpSeconds), target: "report" });

        for (const count of [10, 50]) {
            progress(`no-op up, ${count} extensions`);
            const n = await noopUpBench(count, RUNS);
            const r = n.noopKairosSeconds / n.noopTrivialSeconds;
            rows.push({ what: `no-op up: keys + ${count} extensions`, ours: s(n.noopKairosSeconds), reference: `${s(n.noopTrivialSeconds)} ${count + 1} trivial dynamic resources`, ratio: x(r), target: "<= 1.20x", met: r <= 1.2 });
        }

        progress("peak RSS");
        const rss = await measurePeakRss(tree, path.join(work, "rss"));
        rows.push({ what: `provider peak RSS: keys + UKI (${mb(rss.ukiBytes)}) + ISO (${mb(rss.isoBytes)})`, ours: `${rss.peakRssMB.toFixed(0)} MB`, reference: "-", ratio: "-", target: "<= 300 MB", met: rss.peakRssMB <= 300 });

        progress("k3s Dockerfile on BuildKit");
        const df = await dockerfileBench();
        const cold = df[0].seconds;
        for (const r of df) {
            const sameContext = r !== df[df.length - 1];
            rows.push({ what: `k3s Dockerfile -> signed sysext: ${r.label}`, ours: `${s(r.seconds)}, ${r.cachedSteps}/${r.steps} steps cached`, reference: r === df[0] ? "-" : `${s(cold)} cold`, ratio: r === df[0] ? "-" : x(r.seconds / cold), target: sameContext ? "same sysext bytes" : "-", met: sameContext ? r.sha256 === df[0].sha256 : undefined });
        }

        progress("artifact store (SeaweedFS)");
        const st = await artifactStoreBench(RUNS);
        const rate = (sec: number) => `${(100 / sec).toFixed(0)} MB/s`;
        rows.push({ what: "artifact store: 100 MB upload / verified download", ours: `${s(st.uploadSeconds)} (${rate(st.uploadSeconds)}) / ${s(st.downloadSeconds)} (${rate(st.downloadSeconds)})`, reference: `${s(st.localCopySeconds)} local copy + sha256`, ratio: x(st.downloadSeconds / st.localCopySeconds), target: "-" });
        rows.push({ what: "  demo stack on a fresh runner: fetch vs build", ours: `${s(st.demo.fetchSeconds)}, ${st.demo.fetched.length} fetched, ${st.demo.built.length} built`, reference: `${s(st.demo.buildSeconds)} build + publish`, ratio: x(st.demo.fetchSeconds / st.demo.buildSeconds), target: "builds nothing", met: st.demo.built.length === 0 && st.demo.identical });

        print(rows, ir, rootfs);
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

function print(rows: Row[], ir: Awaited<ReturnType<typeof initrdBench>>, rootfs: string): void {
    const cpu = fs.readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
    console.log(`pulumi-kairos benchmarks, ${new Date().toISOString().slice(0, 10)}: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; median of ${RUNS} runs for sysext and no-op rows, 1 run otherwise`);
    console.log(`bench OS tree: ${rootfs}\n`);
    const cols: (keyof Row)[] = ["what", "ours", "reference", "ratio", "target"];
    const table = [["measurement", "ours", "reference", "ratio", "target", "met"], ...rows.map((r) => [...cols.map((c) => String(r[c])), r.met === undefined ? "" : r.met ? "yes" : "NO"])];
    const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
    for (const r of table) console.log(`| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`);
    console.log(`\ninitrd trade-offs (same ${mb(ir.cpioBytes)} cpio, all cores):`);
    for (const z of [ir.klauspost, ...ir.zstd]) console.log(`  ${z.name.padEnd(46)} ${s(z.seconds).padStart(8)}  ${mb(z.bytes).padStart(10)}${z.ours ? "  <- default" : ""}`);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});

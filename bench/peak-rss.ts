// Benchmark (issue 12): the peak RSS of the provider process while it builds a signed UKI from an OS tree
// and hybrid ISO boot media from that UKI. Target: at most 300 MB for an 800 MB-class UKI; no step may hold
// a whole artifact in memory.
//
// The build runs in a child node process on the compiled package (bin/, what users run, rebuilt first when
// a source is newer), through the handlers the provider serves (pulumi-kairos/handlers: check, then create,
// with the output locks): SigningKeys with fresh keys, KairosUkiImage, BootMedia (iso). The child reads its
// own peak (getrusage maxRSS) at the end, so nothing of this script, ts-node or the tools the build runs
// (zstd, objcopy, xorriso: processes of their own) is counted. MB here are 10^6 bytes, as maxUkiSizeMB's.
//
// Usage: npx ts-node --transpile-only bench/peak-rss.ts [ROOTFS]
//   ROOTFS: an OS tree; default the systemd test OS (what scripts/build-systemd-test-os.sh prints).
//   A tree that is not a Kairos rootfs yet (no KAIROS_RELEASE, no /usr/bin/immucore, no /boot/vmlinuz) is
//   copied and given the test OS's stand-ins for those. KEEP_WORK=1 keeps the scratch folder.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../provider/toolkit/run";
import { inspectKairosRootfs } from "../provider/toolkit/boot/kairos-rootfs";
import { systemdTestOsBase } from "../scripts/lib/systemd-test-os";
import { immucoreScript, kairosRelease, osRelease, testKernel, TEST_OS_MARKER } from "../scripts/lib/test-os";

const REPO = path.resolve(__dirname, "..");
const HANDLERS_JS = path.join(REPO, "bin/provider/handlers.js");
/** What the compiled package is built from (tsconfig.build.json). */
const SOURCES = ["index.ts", "provider", "constructs", "tsconfig.json", "tsconfig.build.json", "schema.json"];
const MB = 1_000_000;
/** Above the 800 MB default: the point is to build a UKI of that class, not to be stopped by the limit. */
const MAX_UKI_SIZE_MB = 4000;
/** zstd runs as a process of its own, so its level changes the time, not the provider's memory. */
const INITRD_LEVEL = 3;
const RESULT_PREFIX = "PEAK-RSS-RESULT ";

export interface PeakRss {
    /** Peak RSS of the provider process over the whole run, MB. */
    peakRssMB: number;
    ukiBytes: number;
    isoBytes: number;
    /** Wall time of the child (keys, UKI, ISO). */
    seconds: number;
    /** The peak so far after each resource (it only grows), MB: which resource set it. */
    peakAfterMB: { loaded: number; keys: number; uki: number; iso: number };
    /** The highest RSS sampled (every 20 ms) during each build step, MB, highest first. */
    stepsMB: { step: string; rssMB: number }[];
}

interface ChildResult {
    /** maxRSS (KiB) after loading the handlers, after the keys, after the UKI, after the ISO. */
    maxRssKiB: { loaded: number; keys: number; uki: number; iso: number };
    /** Highest sampled RSS per build step (the step's log line). */
    byStepBytes: Record<string, number>;
    ukiBytes: number;
    isoBytes: number;
    seconds: number;
}

/**
 * The child: plain JavaScript on the compiled handlers, so that its peak is the provider's alone. Its one
 * argument is a JSON { handlers, rootfs, work, maxUkiSizeMB, level }; it prints RESULT_PREFIX + JSON.
 */
const CHILD = `
const path = require("path");
const fs = require("fs");
const cfg = JSON.parse(process.argv[1]);
const { handlerFor } = require(cfg.handlers);
const kib = () => process.resourceUsage().maxRSS;
// Which build step the RSS was highest in: the step lines the handlers log go to stderr ("…: build initrd...");
// the current RSS is sampled every 20 ms and kept per step (a spike shorter than that can be missed).
const byStep = {};
let step = "load";
const write = process.stderr.write.bind(process.stderr);
process.stderr.write = (chunk, ...rest) => {
    const line = String(chunk).trimEnd();
    if (line.startsWith("[kairos] ") && line.endsWith("...")) step = line.slice("[kairos] ".length, -3);
    return write(chunk, ...rest);
};
const sample = () => (byStep[step] = Math.max(byStep[step] || 0, process.memoryUsage().rss));
setInterval(sample, 20).unref();
async function createVia(token, news) {
    const h = handlerFor(token);
    step = token.split(":").pop() + " check"; // check logs no step line of its own
    const { inputs, failures } = await h.check({}, news);
    if (failures && failures.length > 0) throw new Error(token + " check failed: " + JSON.stringify(failures));
    return (await h.create(inputs)).outs;
}
(async () => {
    const started = process.hrtime.bigint();
    const maxRssKiB = { loaded: kib() };
    const keys = await createVia("kairos:index:SigningKeys", { name: "bench", outputDir: path.join(cfg.work, "keys") });
    maxRssKiB.keys = kib();
    const uki = await createVia("kairos:index:KairosUkiImage", {
        outputDir: path.join(cfg.work, "uki"),
        source: { dir: cfg.rootfs },
        signing: { key: keys.files.db.key, certificate: keys.files.db.pem },
        pcrKey: keys.tpmPcrKeyFile,
        maxUkiSizeMB: cfg.maxUkiSizeMB,
        initrdCompressionLevel: cfg.level,
    });
    maxRssKiB.uki = kib();
    const media = await createVia("kairos:index:BootMedia", {
        name: "bench",
        outputDir: path.join(cfg.work, "media"),
        type: "iso",
        uki: uki.bootFiles,
        enrollKeys: { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth },
        // "if-safe" needs systemd-boot 253+; an older one from the host would be refused at check.
        secureBootEnroll: "force",
    });
    maxRssKiB.iso = kib();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    sample();
    const result = { maxRssKiB, byStepBytes: byStep, ukiBytes: fs.statSync(uki.ukis[0].path).size, isoBytes: fs.statSync(media.path).size, seconds };
    process.stdout.write(${JSON.stringify(RESULT_PREFIX)} + JSON.stringify(result) + "\\n");
})().catch((e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
});
`;

/** Peak RSS of the provider building a UKI from `rootfs` and an ISO from it; scratch goes into `workDir`. */
export async function measurePeakRss(rootfs: string, workDir: string): Promise<PeakRss> {
    await ensureCompiled();
    fs.mkdirSync(workDir, { recursive: true });
    const tree = await kairosRootfs(rootfs, path.join(workDir, "kairos-rootfs"));
    // A cache folder of its own, empty: every file is hashed and the initrd built (no digest or initrd cache
    // hit from an earlier run), the worst case, the same every run, and the user's caches stay untouched.
    const cache = path.join(workDir, "cache");
    fs.rmSync(cache, { recursive: true, force: true });
    const cfg = { handlers: HANDLERS_JS, rootfs: tree, work: path.join(workDir, "build"), maxUkiSizeMB: MAX_UKI_SIZE_MB, level: INITRD_LEVEL };
    const r = await runChild(cfg, { PULUMI_KAIROS_CACHE: cache });
    const mb = (kib: number) => round1((kib * 1024) / MB);
    const k = r.maxRssKiB;
    return {
        peakRssMB: mb(k.iso),
        ukiBytes: r.ukiBytes,
        isoBytes: r.isoBytes,
        seconds: round1(r.seconds),
        peakAfterMB: { loaded: mb(k.loaded), keys: mb(k.keys), uki: mb(k.uki), iso: mb(k.iso) },
        stepsMB: Object.entries(r.byStepBytes).map(([step, bytes]) => ({ step, rssMB: round1(bytes / MB) })).sort((a, b) => b.rssMB - a.rssMB),
    };
}

/** Rebuilds bin/ (npm run build) when it is missing or older than a source it is compiled from. */
async function ensureCompiled(): Promise<void> {
    const built = fs.existsSync(HANDLERS_JS) ? fs.statSync(HANDLERS_JS).mtimeMs : 0;
    if (built > 0 && SOURCES.every((s) => newestMtime(path.join(REPO, s)) <= built)) return;
    console.error("peak-rss: bin/ is missing or older than the sources; npm run build");
    await run(["npm", "run", "build"], { cwd: REPO, timeoutMs: 600000 });
}

function newestMtime(p: string): number {
    if (!fs.existsSync(p)) return 0;
    const st = fs.statSync(p);
    if (!st.isDirectory()) return st.mtimeMs;
    return fs.readdirSync(p).reduce((m, n) => Math.max(m, newestMtime(path.join(p, n))), st.mtimeMs);
}

/**
 * A tree KairosUkiImage accepts: `rootfs` itself when it is one; else a copy of it in `dir` with the test
 * OS's KAIROS_RELEASE, immucore stand-in and (if it has none) kernel.
 */
async function kairosRootfs(rootfs: string, dir: string): Promise<string> {
    try {
        inspectKairosRootfs(rootfs);
        return rootfs;
    } catch {
        /* made one below */
    }
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    await run(["cp", "-a", "--reflink=auto", `${path.resolve(rootfs)}/.`, dir], { timeoutMs: 1200000 });
    const put = (rel: string, content: string | Buffer, mode: number) => {
        const file = path.join(dir, rel);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.rmSync(file, { force: true }); // Debian's etc/os-release is a symlink into usr/lib
        fs.writeFileSync(file, content, { mode });
        fs.chmodSync(file, mode);
    };
    put("etc/kairos-release", kairosRelease(), 0o644);
    put("etc/os-release", osRelease(), 0o644);
    if (!fs.existsSync(path.join(dir, "usr/bin/immucore"))) put("usr/bin/immucore", immucoreScript(TEST_OS_MARKER), 0o755);
    if (!fs.existsSync(path.join(dir, "boot/vmlinuz"))) {
        const kernel = await testKernel();
        fs.mkdirSync(path.join(dir, "boot"), { recursive: true });
        fs.copyFileSync(kernel.path, path.join(dir, "boot/vmlinuz"));
    }
    inspectKairosRootfs(dir);
    return dir;
}

function runChild(cfg: Record<string, unknown>, env: Record<string, string>): Promise<ChildResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ["-e", CHILD, JSON.stringify(cfg)], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
        // The build's step lines, passed on so a long run shows where it is.
        child.stderr.on("data", (b: Buffer) => {
            stderr += b.toString();
            process.stderr.write(b);
        });
        child.on("error", reject);
        child.on("close", (code, signal) => {
            const line = stdout.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
            if (code !== 0 || !line) {
                reject(new Error(`the peak-rss child ${signal ? `was killed by ${signal}` : `exited with status ${code}`}:\n${stderr.trim().split("\n").slice(-20).join("\n")}`));
                return;
            }
            resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as ChildResult);
        });
    });
}

function round1(x: number): number {
    return Math.round(x * 10) / 10;
}

async function main(): Promise<void> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-rss-"));
    try {
        const rootfs = process.argv[2] ?? (await systemdTestOsBase());
        const r = await measurePeakRss(rootfs, work);
        console.log(`rootfs: ${rootfs}`);
        console.log(`UKI: ${(r.ukiBytes / MB).toFixed(1)} MB, ISO: ${(r.isoBytes / MB).toFixed(1)} MB, ${r.seconds.toFixed(1)} s`);
        console.log(`provider peak RSS: ${r.peakRssMB.toFixed(1)} MB (target <= 300 MB)`);
        const p = r.peakAfterMB;
        console.log(`  peak so far after loading ${p.loaded} MB, keys ${p.keys} MB, UKI ${p.uki} MB, ISO ${p.iso} MB`);
        console.log(`  highest sampled RSS by step: ${r.stepsMB.slice(0, 5).map((s) => `${s.step} ${s.rssMB} MB`).join("; ")}`);
    } finally {
        if (process.env.KEEP_WORK === "1") console.error(`peak-rss: scratch kept in ${work}`);
        else fs.rmSync(work, { recursive: true, force: true });
    }
}

if (require.main === module) {
    main().catch((e) => {
        console.error(e);
        process.exit(1);
    });
}

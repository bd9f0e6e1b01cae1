// Benchmark: a signed sysext from a 70 MB payload (an ELF binary, as k3s is), three ways:
//   provider  — the SystemExtension handler's check + create (digest, copy, build, verify)
//   bare      — the same tool chain with nothing around it (bench/sysext-bare.sh)
//   repart    — Debian's systemd-repart 252 (squashfs: 252 has no erofs; it cannot minimise, so the
//               partitions get fixed sizes), as root with loop devices
// Prints the median of RUNS runs each and the ratios. Usage: npx ts-node bench/sysext.ts [RUNS]
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { systemExtensionHandler as handler } from "../provider/system-extension";
import { run } from "../provider/toolkit/run";
import { median, timed } from "./timing";

const RUNS = Number(process.argv[2] ?? 3);
const PAYLOAD_BYTES = 70 * 1024 * 1024;

async function main(): Promise<void> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-sysext-"));
    const src = path.join(work, "src");
    fs.mkdirSync(path.join(src, "usr", "bin"), { recursive: true });
    const node = process.execPath;
    const payload = fs.readFileSync(node).subarray(0, PAYLOAD_BYTES);
    fs.writeFileSync(path.join(src, "usr", "bin", "k3s"), payload, { mode: 0o755 });
    fs.mkdirSync(path.join(src, "usr", "lib", "extension-release.d"), { recursive: true });
    fs.writeFileSync(path.join(src, "usr", "lib", "extension-release.d", "extension-release.k3s"), "ID=_any\nARCHITECTURE=x86-64\n");
    const key = path.join(work, "db.key");
    const cert = path.join(work, "db.pem");
    await run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30", "-subj", "/CN=bench-db/", "-keyout", key, "-out", cert], { env: { OPENSSL_CONF: "/dev/null" } });
    console.log(`payload: ${(payload.length / 1e6).toFixed(1)} MB from ${node}; ${RUNS} runs each, median wall time`);

    const results: Record<string, { seconds: number; size: number } | string> = {};
    for (const compression of ["none", "lz4"] as const) {
        const provider: number[] = [];
        let size = 0;
        for (let i = 0; i < RUNS; i++) {
            const out = path.join(work, `prov-${compression}-${i}`);
            provider.push(await timed(async () => {
                const { inputs } = await handler.check({}, { name: "k3s", outputDir: out, source: { dir: src }, compression, signing: { key, certificate: cert } });
                size = (await handler.create(inputs)).outs.size;
            }));
        }
        results[`provider ${compression}`] = { seconds: median(provider), size };
        const bare: number[] = [];
        for (let i = 0; i < RUNS; i++) {
            const out = path.join(work, `bare-${compression}-${i}.raw`);
            bare.push(await timed(() => run(["bash", path.join(__dirname, "sysext-bare.sh"), src, out, key, cert, compression])));
            size = fs.statSync(out).size;
        }
        results[`bare ${compression}`] = { seconds: median(bare), size };
    }
    results["repart-252 squashfs"] = await repart(work, src, key, cert);

    for (const [name, r] of Object.entries(results)) {
        console.log(typeof r === "string" ? `${name.padEnd(22)} unavailable: ${r}` : `${name.padEnd(22)} ${r.seconds.toFixed(2)} s  ${(r.size / 1e6).toFixed(1)} MB`);
    }
    const s = (k: string) => (typeof results[k] === "string" ? NaN : (results[k] as { seconds: number }).seconds);
    console.log(`ratio provider/bare (none): ${(s("provider none") / s("bare none")).toFixed(2)}`);
    console.log(`ratio provider/bare (lz4):  ${(s("provider lz4") / s("bare lz4")).toFixed(2)}`);
    if (!Number.isNaN(s("repart-252 squashfs"))) console.log(`ratio provider(lz4)/repart-252: ${(s("provider lz4") / s("repart-252 squashfs")).toFixed(2)}`);
    fs.rmSync(work, { recursive: true, force: true });
}

async function repart(work: string, src: string, key: string, cert: string): Promise<{ seconds: number; size: number } | string> {
    const defs = path.join(work, "repart.d");
    fs.mkdirSync(defs);
    fs.writeFileSync(path.join(defs, "10-root.conf"), `[Partition]\nType=root\nFormat=squashfs\nCopyFiles=${src}:/\nVerity=data\nVerityMatchKey=root\nSizeMinBytes=96M\n`);
    fs.writeFileSync(path.join(defs, "20-verity.conf"), "[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=root\nSizeMinBytes=8M\n");
    fs.writeFileSync(path.join(defs, "30-sig.conf"), "[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=root\n");
    const times: number[] = [];
    let size = 0;
    try {
        for (let i = 0; i < RUNS; i++) {
            const out = path.join(work, `repart-${i}.raw`);
            times.push(await timed(() => run(["systemd-repart", "--empty=create", "--size=auto", `--definitions=${defs}`, `--private-key=${key}`, `--certificate=${cert}`, "--seed=f1a7e405-5d08-57b1-a49f-eadfb05abf11", "--dry-run=no", out])));
            size = fs.statSync(out).size;
        }
    } catch (e) {
        return (e as Error).message.split("\n").slice(-2).join(" ").trim();
    }
    return { seconds: median(times), size };
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});

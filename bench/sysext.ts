// Benchmark: a signed sysext from a 70 MB payload (an ELF binary, as k3s is), three ways:
//   provider  — the SystemExtension handler's check + create (digest, mirror, build, verify)
//   bare      — the same tool chain with nothing around it (bench/sysext-bare.sh): no check, no verify
//   repart    — what AuroraBoot runs: systemd-repart 257 with its sysext argv (bench/repart-chroot.ts),
//               inside the bench rootfs as a chroot; stock definitions, so no erofs compression
// Usage: npx ts-node --transpile-only bench/sysext.ts [RUNS] [elf|many]  (needs root and scripts/build-bench-rootfs.sh)
//   elf (default): one 70 MB ELF; many: 4,100 files of ~15 KB (60 MB) in 40 folders, slices of the same bytes
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { systemExtensionHandler as handler } from "../provider/system-extension";
import { run } from "../provider/toolkit/run";
import { repartSysext } from "./repart-chroot";
import { median, timed } from "./timing";

const PAYLOAD_BYTES = 70 * 1024 * 1024;
const MANY_FILES = 4100;

export interface Measured {
    seconds: number;
    bytes: number;
}

export interface SysextBench {
    payloadBytes: number;
    runs: number;
    provider: { none: Measured; lz4: Measured };
    bare: { none: Measured; lz4: Measured };
    repart257: Measured;
}

export type SysextPayload = "elf" | "many";

/** Writes the payload under src/usr; returns its size in bytes. */
function writePayload(src: string, kind: SysextPayload): number {
    const bytes = fs.readFileSync(process.execPath);
    if (kind === "elf") {
        fs.mkdirSync(path.join(src, "usr", "bin"), { recursive: true });
        fs.writeFileSync(path.join(src, "usr", "bin", "k3s"), bytes.subarray(0, PAYLOAD_BYTES), { mode: 0o755 });
        return Math.min(PAYLOAD_BYTES, bytes.length);
    }
    const per = Math.floor(60e6 / MANY_FILES);
    let total = 0;
    for (let i = 0; i < MANY_FILES; i++) {
        const dir = path.join(src, "usr", "lib", "many", String(i % 40));
        fs.mkdirSync(dir, { recursive: true });
        const size = per + ((i * 7919) % 2000) - 1000;
        const at = total % (bytes.length - 20000);
        fs.writeFileSync(path.join(dir, `f${i}`), bytes.subarray(at, at + size), { mode: i % 3 ? 0o644 : 0o755 });
        total += size;
    }
    return total;
}

export async function sysextBench(runs: number, benchRootfs: string, payloadKind: SysextPayload = "elf"): Promise<SysextBench> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-sysext-"));
    try {
        const src = path.join(work, "src");
        const payloadBytes = writePayload(src, payloadKind);
        fs.mkdirSync(path.join(src, "usr", "lib", "extension-release.d"), { recursive: true });
        fs.writeFileSync(path.join(src, "usr", "lib", "extension-release.d", "extension-release.k3s"), "ID=_any\nARCHITECTURE=x86-64\n");
        const key = path.join(work, "db.key");
        const cert = path.join(work, "db.pem");
        await run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30", "-subj", "/CN=bench-db/", "-keyout", key, "-out", cert], { env: { OPENSSL_CONF: "/dev/null" } });

        const measure = async (build: (i: number) => Promise<string>): Promise<Measured> => {
            const times: number[] = [];
            let bytes = 0;
            for (let i = 0; i < runs; i++) {
                let out = "";
                times.push(await timed(async () => (out = await build(i))));
                bytes = fs.statSync(out).size;
                fs.rmSync(out, { force: true });
            }
            return { seconds: median(times), bytes };
        };
        const provider = (compression: "none" | "lz4") => measure(async (i) => {
            const { inputs } = await handler.check({}, { name: "k3s", outputDir: path.join(work, `prov-${compression}-${i}`), source: { dir: src }, compression, signing: { key, certificate: cert } });
            return (await handler.create(inputs)).outs.path;
        });
        const bare = (compression: "none" | "lz4") => measure(async (i) => {
            const out = path.join(work, `bare-${compression}-${i}.raw`);
            await run(["bash", path.join(__dirname, "sysext-bare.sh"), src, out, key, cert, compression]);
            return out;
        });
        const repart257 = await measure(async (i) => {
            const out = path.join(work, `repart-${i}.raw`);
            await repartSysext({ rootfs: benchRootfs, sourceDir: src, outFile: out, key, certificate: cert });
            return out;
        });
        return {
            payloadBytes,
            runs,
            provider: { none: await provider("none"), lz4: await provider("lz4") },
            bare: { none: await bare("none"), lz4: await bare("lz4") },
            repart257,
        };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

async function main(): Promise<void> {
    const runs = Number(process.argv[2] ?? 3);
    const rootfs = (await run(["bash", path.join(__dirname, "..", "scripts", "build-bench-rootfs.sh")], { timeoutMs: 3600_000 })).stdout.trim();
    const kind = (process.argv[3] ?? "elf") as SysextPayload;
    if (kind !== "elf" && kind !== "many") throw new Error(`payload '${kind}': elf or many`);
    const r = await sysextBench(runs, rootfs, kind);
    const row = (name: string, m: Measured) => console.log(`${name.padEnd(26)} ${m.seconds.toFixed(2)} s  ${(m.bytes / 1e6).toFixed(1)} MB`);
    console.log(`payload ${kind}, ${(r.payloadBytes / 1e6).toFixed(1)} MB; median of ${runs} runs`);
    row("provider, none", r.provider.none);
    row("provider, lz4", r.provider.lz4);
    row("bare tools, none", r.bare.none);
    row("bare tools, lz4", r.bare.lz4);
    row("systemd-repart 257 (AuroraBoot)", r.repart257);
    console.log(`ratio provider(none)/repart-257: ${(r.provider.none.seconds / r.repart257.seconds).toFixed(2)}`);
}

if (require.main === module) {
    main().catch((e) => {
        console.error(e);
        process.exit(1);
    });
}

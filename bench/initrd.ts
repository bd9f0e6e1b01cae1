// Benchmark: the initrd of the bench rootfs (the UKI's cpio of a real-size OS), compressed by
//   - AuroraBoot's encoder: klauspost/compress zstd SpeedBestCompression (scripts/build-klauspost-zstd.sh),
//   - the zstd CLI at several levels, with and without a long-distance window, all cores,
// each from the same cpio file, so the rows compare compressors only; plus our own cpio writer's time.
// The level-19 rows take many minutes on 2 cores and run only with BENCH_SLOW=1.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../provider/toolkit/run";
import { DEFAULT_INITRD_LEVEL, DEFAULT_INITRD_WINDOW_LOG, writeCpio } from "../provider/toolkit/boot/initrd";
import { timed } from "./timing";

export interface Compressed {
    name: string;
    seconds: number;
    bytes: number;
    /** The default buildInitrd uses. */
    ours?: boolean;
}

export interface InitrdBench {
    cpioBytes: number;
    cpioSeconds: number;
    klauspost: Compressed;
    zstd: Compressed[];
}

const HOUR_MS = 3600_000;

export async function initrdBench(kairosTree: string): Promise<InitrdBench> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-initrd-"));
    try {
        const cpio = path.join(work, "rootfs.cpio");
        const cpioSeconds = await timed(() => writeCpio(kairosTree, cpio));
        const encoder = (await run(["bash", path.join(__dirname, "..", "scripts", "build-klauspost-zstd.sh")], { timeoutMs: HOUR_MS })).stdout.trim();
        const compress = async (name: string, argv: string[], ours = false): Promise<Compressed> => {
            const out = path.join(work, "out.zst");
            const seconds = await timed(() => run([...argv, out], { timeoutMs: HOUR_MS }));
            const bytes = fs.statSync(out).size;
            fs.rmSync(out);
            return { name, seconds, bytes, ...(ours ? { ours } : {}) };
        };
        const klauspost = await compress("klauspost SpeedBestCompression (AuroraBoot)", [encoder, cpio]);
        const levels: [number, number][] = [[3, 0], [9, 0], [12, 0], [DEFAULT_INITRD_LEVEL, DEFAULT_INITRD_WINDOW_LOG], [15, DEFAULT_INITRD_WINDOW_LOG]];
        if (process.env.BENCH_SLOW === "1") levels.push([19, 0], [19, DEFAULT_INITRD_WINDOW_LOG]);
        const zstd: Compressed[] = [];
        for (const [level, windowLog] of levels) {
            const long = windowLog ? [`--long=${windowLog}`] : [];
            const ours = level === DEFAULT_INITRD_LEVEL && windowLog === DEFAULT_INITRD_WINDOW_LOG;
            zstd.push(await compress(`zstd -${level}${windowLog ? ` --long=${windowLog}` : ""} -T0`, ["zstd", "-q", "-f", `-${level}`, ...long, "-T0", cpio, "-o"], ours));
        }
        return { cpioBytes: fs.statSync(cpio).size, cpioSeconds, klauspost, zstd };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

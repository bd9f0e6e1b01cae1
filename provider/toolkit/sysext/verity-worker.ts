// Level-0 dm-verity digests of part of a file on a second thread: hashing 4 KiB blocks one by one is
// the build's biggest CPU cost after mkfs.erofs, and on two cores half of it runs beside the copy.
// One thread per process, started by the first build and kept (unref'd, idle between builds): its
// start-up (a V8 isolate, tens of ms of CPU) would otherwise compete with mkfs.erofs in every build.
// Its digests are sha256(salt || block) as VerityHasher's; the tests compare the two.
import * as os from "os";
import { Worker } from "worker_threads";
import { VERITY_BLOCK_SIZE } from "./verity-tree";

// Plain JavaScript, evaluated: the same code whether the provider runs compiled or under ts-node.
const SOURCE = `
const { parentPort } = require("worker_threads");
const { createHash, hash: oneShot } = require("crypto");
const fs = require("fs");
parentPort.on("message", ({ file, start, end, salt, blockSize }) => {
    let fd;
    try {
        const s = Buffer.from(salt, "hex");
        const salted = Buffer.alloc(s.length + blockSize);
        s.copy(salted);
        const out = Buffer.from(new ArrayBuffer(((end - start) / blockSize) * 32));
        const buf = Buffer.allocUnsafe(1 << 20);
        fd = fs.openSync(file, "r");
        let o = 0;
        for (let pos = start; pos < end; ) {
            let n = 0;
            const want = Math.min(buf.length, end - pos);
            while (n < want) {
                const got = fs.readSync(fd, buf, n, want - n, pos + n);
                if (got === 0) throw new Error(file + " ends at " + (pos + n) + ", before " + end);
                n += got;
            }
            for (let i = 0; i < n; i += blockSize, o += 32) {
                // As VerityHasher: crypto.hash over salt || block where there is one (Node 20.12+).
                if (oneShot) {
                    buf.copy(salted, s.length, i, i + blockSize);
                    oneShot("sha256", salted, "buffer").copy(out, o);
                } else createHash("sha256").update(s).update(buf.subarray(i, i + blockSize)).digest().copy(out, o);
            }
            pos += n;
        }
        parentPort.postMessage({ digests: out }, [out.buffer]);
    } catch (e) {
        parentPort.postMessage({ error: String((e && e.message) || e) });
    } finally {
        if (fd !== undefined) fs.closeSync(fd);
    }
});`;

let shared: DigestWorker | undefined;

export class DigestWorker {
    /** Set once the thread failed or exited: later calls reject at once. */
    private broken?: Error;
    private pending?: (e: Error) => void;
    private inUse = false;

    private constructor(private readonly worker: Worker) {
        worker.unref(); // idle between builds: never what keeps the process alive
        // Listened to from the start: an 'error' with no listener would be thrown in the main thread.
        const fail = (e: Error) => {
            this.broken ??= e;
            this.pending?.(e);
        };
        worker.on("error", fail);
        worker.on("exit", (code) => fail(new Error(`the verity digest thread exited (${code})`)));
    }

    /**
     * The process's helper thread for one build, or undefined on a single core (where it would only
     * compete with the main thread) or while another build has it. Give it back with release().
     */
    static acquire(): DigestWorker | undefined {
        if (os.availableParallelism() < 2) return undefined;
        if (shared?.broken) shared = undefined;
        shared ??= new DigestWorker(new Worker(SOURCE, { eval: true }));
        if (shared.inUse) return undefined;
        shared.inUse = true;
        return shared;
    }

    /** Hands the thread back for the next build (a thread that failed is replaced then). */
    release(): void {
        this.inUse = false;
    }

    /** The level-0 digests of blocks [start, end) of `file`, both multiples of the block size. One call at a time. */
    digests(file: string, start: number, end: number, salt: string): Promise<Buffer> {
        if (start % VERITY_BLOCK_SIZE !== 0 || end % VERITY_BLOCK_SIZE !== 0 || end < start) throw new Error(`internal: block range ${start}-${end}`);
        if (this.pending) throw new Error("internal: one digests() call at a time");
        return new Promise<Buffer>((resolve, reject) => {
            if (this.broken) return reject(this.broken);
            this.pending = reject;
            this.worker.ref(); // while it works for a caller, it keeps the process alive as any I/O would
            this.worker.once("message", (m: { digests?: Uint8Array; error?: string }) => {
                if (m.error !== undefined || !m.digests) reject(new Error(`verity digests of ${file}: ${m.error}`));
                else resolve(Buffer.from(m.digests.buffer, m.digests.byteOffset, m.digests.byteLength));
            });
            this.worker.postMessage({ file, start, end, salt, blockSize: VERITY_BLOCK_SIZE });
        }).finally(() => {
            this.pending = undefined;
            this.worker.unref();
        });
    }

    /** Ends the thread (the next acquire() starts another). */
    async stop(): Promise<void> {
        this.broken ??= new Error("the verity digest thread was stopped");
        if (shared === this) shared = undefined;
        await this.worker.terminate();
    }
}

// Shared memory between a fuzzing worker and its watchdog: an execution counter and a copy of the input
// being run, so a hang or a worker that dies (out of memory, an unhandled rejection) still names its input.

const HEADER_INTS = 2;
/** Inputs longer than this are recorded only in part. */
export const HEARTBEAT_INPUT_BYTES = 1 << 20;

export class Heartbeat {
    private readonly ints: Int32Array;
    private readonly bytes: Uint8Array;

    constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(HEADER_INTS * 4 + HEARTBEAT_INPUT_BYTES)) {
        this.ints = new Int32Array(buffer, 0, HEADER_INTS);
        this.bytes = new Uint8Array(buffer, HEADER_INTS * 4);
    }

    beat(input: Buffer): void {
        const length = Math.min(input.length, this.bytes.length);
        this.bytes.set(input.subarray(0, length));
        Atomics.store(this.ints, 1, length);
        Atomics.add(this.ints, 0, 1);
    }

    get count(): number {
        return Atomics.load(this.ints, 0);
    }

    currentInput(): Buffer {
        return Buffer.from(this.bytes.slice(0, Atomics.load(this.ints, 1)));
    }
}

// Makes "allocates absurd memory because of a length field" a crash the fuzzer can see: while a target
// runs, a Buffer allocation above the limit throws instead of reserving gigabytes (or succeeding on a big
// machine and going unnoticed). Node's own modules allocate through the same Buffer object, so reads the
// parsers ask fs for are covered too.

export class AllocationLimitError extends Error {
    constructor(readonly requested: number, readonly limit: number) {
        super(`allocation of ${requested} bytes exceeds the fuzzing limit of ${limit} bytes (a length field trusted without a bound?)`);
    }
}

type Allocator = (size: number, ...rest: never[]) => Buffer;

const METHODS = ["alloc", "allocUnsafe", "allocUnsafeSlow"] as const;

/** Installs the guard for the life of the process (a fuzzing worker). */
export function limitBufferAllocations(limit: number): void {
    const target = Buffer as unknown as Record<(typeof METHODS)[number], Allocator>;
    for (const method of METHODS) {
        const original = target[method];
        target[method] = function guarded(this: unknown, size: number, ...rest: never[]): Buffer {
            if (typeof size === "number" && size > limit) throw new AllocationLimitError(size, limit);
            return original.call(this, size, ...rest);
        } as Allocator;
    }
}

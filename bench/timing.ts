// Timing helpers shared by the benchmark scripts.

/** Wall time of `fn` in seconds. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
    const t = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t) / 1e9;
}

export function median(xs: number[]): number {
    return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

// A small seeded generator (xorshift128+ over 32-bit halves): the same seed gives the same campaign, so a
// bounded run in `npm test` is reproducible and a crash can be replayed from its seed as well as its bytes.

export class Random {
    private s0: number;
    private s1: number;
    private s2: number;
    private s3: number;

    constructor(seed: number) {
        // splitmix32 spreads a small integer seed over the whole state.
        let x = seed >>> 0;
        const next = () => {
            x = (x + 0x9e3779b9) >>> 0;
            let z = x;
            z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
            z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
            return (z ^ (z >>> 16)) >>> 0;
        };
        this.s0 = next();
        this.s1 = next();
        this.s2 = next();
        this.s3 = next() | 1;
    }

    /** A uniform 32-bit unsigned integer (xoshiro128**). */
    u32(): number {
        const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
        const t = this.s1 << 9;
        this.s2 ^= this.s0;
        this.s3 ^= this.s1;
        this.s1 ^= this.s2;
        this.s0 ^= this.s3;
        this.s2 ^= t;
        this.s3 = rotl(this.s3, 11);
        return result;
    }

    /** An integer in [0, n). */
    below(n: number): number {
        return n <= 1 ? 0 : this.u32() % n;
    }

    /** An integer in [lo, hi]. */
    between(lo: number, hi: number): number {
        return lo + this.below(hi - lo + 1);
    }

    chance(p: number): boolean {
        return this.u32() / 0x1_0000_0000 < p;
    }

    pick<T>(items: readonly T[]): T {
        return items[this.below(items.length)];
    }
}

function rotl(x: number, k: number): number {
    return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A stable 32-bit seed from a name (FNV-1a), so each target gets its own stream from one run seed. */
export function seedFor(name: string, runSeed: number): number {
    let h = 0x811c9dc5 ^ runSeed;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    return h >>> 0;
}

// Random bytes for generators. fast-check builds uint8Array values element by element (each with its own
// shrinker), which costs milliseconds for a few hundred bytes; a length and a seed are enough here, since
// the coverage-guided mutator, not shrinking, explores byte content.
import * as fc from "fast-check";

export function bytes(maxLength: number, minLength = 0): fc.Arbitrary<Buffer> {
    return fc.record({ length: fc.integer({ min: minLength, max: maxLength }), seed: fc.integer({ min: 0, max: 0x7fffffff }) }).map(({ length, seed }) => noiseBytes(length, seed));
}

/** `length` pseudo-random bytes (xorshift), the same for the same seed. */
export function noiseBytes(length: number, seed: number): Buffer {
    const out = Buffer.alloc(length);
    let x = seed | 1;
    for (let i = 0; i < length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out[i] = x & 0xff;
    }
    return out;
}

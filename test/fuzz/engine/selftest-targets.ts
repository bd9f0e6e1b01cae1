// Broken targets for the engine's own tests (engine.test.ts): each has the kind of bug the engine claims
// to catch, so a test fails if the engine stops catching it.
import * as fc from "fast-check";
import { FuzzTarget } from "./target";

class ToyFormatError extends Error {}

/**
 * Crashes only when four bytes each fall in a narrow range: one input in 65536 from scratch, and far rarer
 * by mutating "AAAA" blindly (all four bytes must change together), but a few thousand runs when each
 * passed comparison is new coverage that keeps the input.
 */
function parseToy(data: Buffer): number {
    if (data.length < 4) throw new ToyFormatError("short");
    if (data[0] >= 0xf0) {
        if (data[1] <= 0x0f) {
            if (data[2] >= 0x40 && data[2] <= 0x4f) {
                if (data[3] >= 0x60 && data[3] <= 0x6f) {
                    const missing = undefined as unknown as { field: number };
                    return missing.field; // the TypeError a parser bug would raise
                }
            }
        }
    }
    return data[0];
}

const plain = fc.constant(Buffer.from("AAAA"));

export const SELFTEST_TARGETS: FuzzTarget[] = [
    { name: "magic-bytes", describe: "TypeError behind four nested byte comparisons", expected: [ToyFormatError], generator: plain, maxLength: 16, run: (input) => void parseToy(input) },
    {
        name: "hangs",
        describe: "never returns",
        expected: [],
        generator: plain,
        maxLength: 16,
        run: () => {
            for (;;);
        },
    },
    { name: "allocates", describe: "trusts a length field", expected: [], generator: plain, maxLength: 16, run: (input) => void Buffer.alloc(input.readUInt32LE(0) * 16) },
    {
        name: "rejects-later",
        describe: "an unhandled rejection outside the awaited promise",
        expected: [],
        generator: plain,
        maxLength: 16,
        run: () => {
            void Promise.reject(new RangeError("stray promise"));
        },
    },
];

export function targetByName(name: string): FuzzTarget {
    const target = SELFTEST_TARGETS.find((t) => t.name === name);
    if (!target) throw new Error(`no self-test target ${name}`);
    return target;
}

// What a fuzz target is: a parser entry point, the error classes that are its documented way of refusing
// input, a structure-aware generator, and a run function that also checks what an accepted result
// promises. Anything else a run throws (TypeError, RangeError, an InvariantError) is a crash.
import type * as fc from "fast-check";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ErrorClass = abstract new (...args: any[]) => Error;

/** A per-worker folder for targets whose parser reads files; a run cleans up what it made. */
export interface Scratch {
    readonly dir: string;
    /** A fresh path inside dir (not created). */
    fresh(name: string): string;
}

export interface FuzzTarget {
    readonly name: string;
    /** One line for the report: the entry points it drives. */
    readonly describe: string;
    readonly expected: readonly ErrorClass[];
    /** Structure-aware inputs (valid structure, hostile fields); the mutator covers the raw bytes. */
    readonly generator: fc.Arbitrary<Buffer>;
    /** Format tokens for the mutator. */
    readonly dictionary?: readonly Buffer[];
    readonly maxLength: number;
    run(input: Buffer, scratch: Scratch): Promise<void> | void;
}

/** A promise an accepted result broke (an entry outside the archive, a file written outside the target). */
export class InvariantError extends Error {}

export function invariant(condition: unknown, message: string): asserts condition {
    if (!condition) throw new InvariantError(message);
}

export function isExpected(target: FuzzTarget, error: unknown): boolean {
    return target.expected.some((cls) => error instanceof cls);
}

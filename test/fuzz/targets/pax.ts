// parsePax alone: the extended-header record syntax, fast enough for hundreds of thousands of runs.
import * as fc from "fast-check";
import { TarFormatError, parsePax } from "../../../provider/toolkit/source/tar-reader";
import { FuzzTarget, invariant } from "../engine/target";

const record = fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 20 }), fc.integer({ min: -3, max: 3 })).map(([k, v, skew]) => {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
    return `${len + (skew === 0 ? 0 : skew)}${rest}`;
});

export const paxTarget: FuzzTarget = {
    name: "pax",
    describe: "parsePax on extended-header bodies",
    expected: [TarFormatError],
    generator: fc.array(record, { maxLength: 4 }).map((r) => Buffer.from(r.join(""))),
    dictionary: ["path=", "size=", "linkpath=", " ", "\n", "="].map((s) => Buffer.from(s)),
    maxLength: 4096,
    run(input: Buffer) {
        const records = parsePax(input);
        for (const [k, v] of records) {
            invariant(k.length > 0, "a record with an empty key was accepted");
            invariant(typeof v === "string", "a value is not a string");
        }
    },
};

// parseSignatureLists: .esl files and exported db/KEK variables users hand in to be appended to the key set.
import { describeSignatureLists, parseSignatureLists, SignatureListFormatError } from "../../../provider/toolkit/keys/efi-signature-list";
import { ESL_DICTIONARY, eslInput } from "../generators/esl";
import { FuzzTarget, invariant } from "../engine/target";

export const eslTarget: FuzzTarget = {
    name: "esl",
    describe: "parseSignatureLists + describeSignatureLists",
    expected: [SignatureListFormatError],
    generator: eslInput,
    dictionary: ESL_DICTIONARY,
    maxLength: 16 * 1024,
    run(input: Buffer) {
        const lists = parseSignatureLists(input);
        invariant(lists.length > 0, "no lists, yet no error");
        let bytes = 0;
        for (const l of lists) {
            const sizes = new Set(l.entries.map((e) => e.data.length));
            invariant(sizes.size <= 1, `entries of one list differ in size: ${[...sizes].join(", ")}`);
            bytes += 28 + l.entries.reduce((n, e) => n + 16 + e.data.length, 0);
        }
        // Headers may carry extra bytes, but entries can never add up to more than the input holds.
        invariant(bytes <= input.length, `the lists describe ${bytes} bytes of a ${input.length}-byte input`);
        for (const line of describeSignatureLists(lists)) invariant(typeof line === "string", "a description is not a string");
    },
};

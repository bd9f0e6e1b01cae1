// The header of a signed EFI variable update (.auth): the timestamp and the payload a key folder's
// PK/KEK/db.auth carry, read when an existing key set is adopted.
import * as fc from "fast-check";
import { ExistingKeySetError, authPayload, authTimestampOf } from "../../../provider/toolkit/keys/key-set-reader";
import { FuzzTarget, invariant } from "../engine/target";

const authInput = fc
    .record({
        time: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        certLength: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(0x7fffffff, 0xffffffff)),
        rest: fc.uint8Array({ maxLength: 96 }),
        cut: fc.integer({ min: 0, max: 140 }),
    })
    .map(({ time, certLength, rest, cut }) => {
        const length = Buffer.alloc(4);
        length.writeUInt32LE(certLength >>> 0);
        return Buffer.concat([Buffer.from(time), length, Buffer.from(rest)]).subarray(0, cut);
    });

export const efiAuthTarget: FuzzTarget = {
    name: "efi-auth",
    describe: "authTimestampOf, authPayload",
    expected: [ExistingKeySetError],
    generator: authInput,
    maxLength: 1024,
    run(input: Buffer) {
        const payload = authPayload(input);
        invariant(payload.length <= input.length, "payload longer than the file");
        // Out-of-range EFI_TIME fields are shown as they are (tools write all-zero times); only the shape is promised.
        invariant(/^\d{4,5}-\d{2,3}-\d{2,3}T\d{2,3}:\d{2,3}:\d{2,3}Z$/.test(authTimestampOf(input)), "timestamp shape");
    },
};

// imageDigestOfSignature: reads the image digest out of a PKCS#7 Authenticode signature (one sbsign wrote,
// or one found in an image), walking DER with readTlv/children.
import { AuthenticodeError, children, imageDigestOfSignature, readTlv } from "../../../provider/toolkit/boot/authenticode";
import { DER_DICTIONARY, derInput } from "../generators/der";
import { FuzzTarget, invariant } from "../engine/target";

export const authenticodeTarget: FuzzTarget = {
    name: "authenticode",
    describe: "imageDigestOfSignature, readTlv and children over DER",
    expected: [AuthenticodeError],
    generator: derInput,
    dictionary: DER_DICTIONARY,
    maxLength: 8 * 1024,
    run(input: Buffer) {
        const top = readTlv(input, 0);
        invariant(top.contentStart <= top.end && top.end <= input.length, `TLV ${top.contentStart}..${top.end} of ${input.length} bytes`);
        for (const child of children(input, top)) {
            invariant(child.start >= top.contentStart && child.end <= top.end, `child ${child.start}..${child.end} outside its parent ${top.contentStart}..${top.end}`);
        }
        const digest = imageDigestOfSignature(input);
        invariant(Buffer.isBuffer(digest) && digest.length <= input.length, "digest");
    },
};

// DER for the Authenticode reader: random TLV trees with lengths that are sometimes wrong (long form,
// indefinite, past the end), and the shape of a PKCS#7 ContentInfo(SignedData) with random pieces in it,
// so inputs reach the seventh level where the image digest sits.
import * as fc from "fast-check";
import { bytes } from "./bytes";

type Node = { tag: number; body: Buffer; length: LengthForm } | { tag: number; children: Node[]; length: LengthForm };
type LengthForm = "short" | "long" | "indefinite" | { lie: number };

const lengthForm: fc.Arbitrary<LengthForm> = fc.oneof(
    { weight: 12, arbitrary: fc.constant<LengthForm>("short") },
    { weight: 2, arbitrary: fc.constant<LengthForm>("long") },
    { weight: 1, arbitrary: fc.constant<LengthForm>("indefinite") },
    { weight: 1, arbitrary: fc.integer({ min: -3, max: 300 }).map((lie) => ({ lie })) },
);

const tag = fc.constantFrom(0x02, 0x04, 0x05, 0x06, 0x30, 0x31, 0xa0, 0xa2, 0x80, 0x1f, 0xff);

const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.record({ tag, body: bytes(40), length: lengthForm }),
        fc.record({ tag: fc.constantFrom(0x30, 0x31, 0xa0), children: fc.array(tie("tree") as fc.Arbitrary<Node>, { maxLength: 4 }), length: lengthForm }),
    ),
}));

export function encode(node: Node): Buffer {
    const body = "body" in node ? node.body : Buffer.concat(node.children.map(encode));
    return Buffer.concat([Buffer.from([node.tag]), lengthBytes(body.length, node.length), body]);
}

function lengthBytes(n: number, form: LengthForm): Buffer {
    if (form === "indefinite") return Buffer.from([0x80]);
    const value = typeof form === "object" ? Math.max(0, n + form.lie) : n;
    if (form === "short" && value < 0x80) return Buffer.from([value]);
    const bytes: number[] = [];
    for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    if (bytes.length === 0) bytes.push(0);
    return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const leaf = (t: number, body: Buffer): Node => ({ tag: t, body, length: "short" });
const cons = (t: number, ...children: Node[]): Node => ({ tag: t, children, length: "short" });

/** ContentInfo → [0] → SignedData → contentInfo → [0] → SpcIndirectDataContent → DigestInfo → OCTET STRING, with one level swapped for a random tree. */
const shaped: fc.Arbitrary<Buffer> = fc
    .record({ digest: bytes(40, 0), level: fc.integer({ min: 0, max: 7 }), swap: tree, form: lengthForm })
    .map(({ digest, level, swap, form }) => {
        const oid = leaf(0x06, Buffer.from([0x2a, 0x86, 0x48]));
        let node: Node = leaf(0x04, digest);
        const wrappers = [
            (n: Node) => cons(0x30, cons(0x30, oid), n),
            (n: Node) => cons(0x30, cons(0x30, oid), n),
            (n: Node) => cons(0xa0, n),
            (n: Node) => cons(0x30, oid, n),
            (n: Node) => cons(0x30, leaf(0x02, Buffer.from([1])), cons(0x31), n, cons(0xa0)),
            (n: Node) => cons(0xa0, n),
            (n: Node) => cons(0x30, oid, n),
        ];
        wrappers.forEach((wrap, i) => {
            node = i === level ? wrap(swap) : wrap(node);
        });
        return encode({ ...node, length: form });
    });

export const derInput: fc.Arbitrary<Buffer> = fc.oneof(shaped, tree.map(encode));

export const DER_DICTIONARY = [Buffer.from([0x30, 0x82]), Buffer.from([0x30, 0x80]), Buffer.from([0xa0, 0x82]), Buffer.from([0x04, 0x20]), Buffer.from([0x84, 0xff, 0xff, 0xff, 0xff]), Buffer.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02])];

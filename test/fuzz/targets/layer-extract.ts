// extractLayers over hostile layers: whatever the entries say (names with "..", absolute names, links out,
// hardlinks to anything, whiteouts, a directory replaced by a link), nothing outside the target may be
// created, changed or removed, and no link left in the target may point out of it.
import * as fc from "fast-check";
import * as fs from "fs";
import * as path from "path";
import { gzipSync } from "zlib";
import { ExtractOptions, extractLayers } from "../../../provider/toolkit/source/layer-extract";
import { FilterViolationError, UnsafeEntryError } from "../../../provider/toolkit/source/tree-writer";
import { ImageFormatError } from "../../../provider/toolkit/source/image-store";
import { TarFormatError } from "../../../provider/toolkit/source/tar-reader";
import { resolveLinkTarget } from "../../../provider/toolkit/tree-path";
import { TAR_DICTIONARY, rawTar } from "../generators/tar";
import { FuzzTarget, Scratch, invariant } from "../engine/target";

const CANARY = "canary: extraction must never touch this";

const MODES: Array<Pick<ExtractOptions, "mode" | "filter"> & { layers: 1 | 2 }> = [
    { mode: "last", layers: 1 },
    { mode: "all", layers: 2 },
    { mode: "all", layers: 1, filter: { allow: ["usr"], onViolation: "drop" } },
    { mode: "last", layers: 1, filter: { allow: ["usr", "etc/a"], onViolation: "error" } },
];

export const layerExtractTarget: FuzzTarget = {
    name: "layer-extract",
    describe: "extractLayers (last / all layers with whiteouts / prefix filters) into a sandbox with a canary",
    // ImageFormatError: an empty layer file is refused before it is read as a tar.
    expected: [TarFormatError, UnsafeEntryError, FilterViolationError, ImageFormatError],
    // Layers are mostly gzip blobs: some samples are compressed, and some of those cut short or bit-flipped.
    generator: fc.oneof(
        { weight: 3, arbitrary: rawTar },
        { weight: 1, arbitrary: fc.tuple(rawTar, fc.constantFrom("whole", "cut", "flip"), fc.nat()).map(([tar, how, at]) => damagedGzip(tar, how, at)) },
    ),
    dictionary: [...TAR_DICTIONARY, Buffer.from([0x1f, 0x8b, 0x08])],
    maxLength: 32 * 1024,
    async run(input: Buffer, scratch: Scratch) {
        const sandbox = scratch.fresh("sandbox");
        const outside = path.join(sandbox, "outside");
        const target = path.join(sandbox, "target");
        const layer = path.join(outside, "layer.tar");
        fs.mkdirSync(outside, { recursive: true });
        fs.writeFileSync(path.join(outside, "canary"), CANARY);
        fs.writeFileSync(layer, input);
        const before = snapshot(outside);
        const mode = MODES[input.length % MODES.length];
        try {
            await extractLayers(Array(mode.layers).fill(layer), target, { mode: mode.mode, filter: mode.filter });
        } finally {
            // Checked whether the extraction succeeded or refused part-way through.
            const after = snapshot(outside);
            invariant(after === before, `extraction changed files outside the target:\n${before}\n---\n${after}`);
            invariant(fs.readdirSync(sandbox).sort().join(",") === "outside,target" || fs.readdirSync(sandbox).join(",") === "outside", `extraction created ${fs.readdirSync(sandbox).join(", ")} beside the target`);
            if (fs.existsSync(target)) checkLinksStayInside(target);
            fs.rmSync(sandbox, { recursive: true, force: true });
        }
    },
};

function damagedGzip(tar: Buffer, how: string, at: number): Buffer {
    const gz = gzipSync(tar);
    if (how === "cut") return gz.subarray(0, at % gz.length);
    if (how === "flip") gz[10 + (at % Math.max(1, gz.length - 18))] ^= 0x55;
    return gz;
}

/** Names, sizes, link counts and contents of the folder outside the target. */
function snapshot(dir: string): string {
    return fs.readdirSync(dir).sort().map((name) => {
        const file = path.join(dir, name);
        const st = fs.lstatSync(file);
        return `${name} ${st.mode.toString(8)} nlink=${st.nlink} ${st.isFile() ? fs.readFileSync(file).toString("base64").slice(0, 64) : ""}`;
    }).join("\n");
}

/** Every symlink in the tree resolves (lexically, as the image would see it) inside the tree. */
function checkLinksStayInside(root: string, rel: string[] = []): void {
    for (const name of fs.readdirSync(path.join(root, ...rel))) {
        const parts = [...rel, name];
        const file = path.join(root, ...parts);
        const st = fs.lstatSync(file);
        if (st.isSymbolicLink()) {
            const target = fs.readlinkSync(file);
            invariant(resolveLinkTarget(parts, target) !== undefined, `${parts.join("/")} -> ${target} points outside the tree`);
        } else if (st.isDirectory()) {
            // Extraction may leave directories unreadable (mode 000); the test process runs as root, so it can still look.
            checkLinksStayInside(root, parts);
        } else if (st.isFile()) {
            invariant(st.nlink <= 64, `${parts.join("/")} has ${st.nlink} links`);
        }
    }
}

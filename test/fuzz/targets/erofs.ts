// The erofs reader: lists the extension-release folder of an image without mounting it (what
// `pulumi preview` does with sysext images it is given).
import * as fs from "fs";
import { ErofsError, extensionReleaseNames, listErofsDirectory } from "../../../provider/toolkit/sysext/erofs-reader";
import { EROFS_DICTIONARY, erofsImage } from "../generators/erofs";
import { FuzzTarget, Scratch, invariant } from "../engine/target";

export const erofsTarget: FuzzTarget = {
    name: "erofs",
    describe: "listErofsDirectory, extensionReleaseNames",
    expected: [ErofsError],
    generator: erofsImage,
    dictionary: EROFS_DICTIONARY,
    maxLength: 64 * 1024,
    async run(input: Buffer, scratch: Scratch) {
        const file = scratch.fresh("image.erofs");
        fs.writeFileSync(file, input);
        try {
            for (const dir of ["", "usr/lib/extension-release.d", "usr/share/many"]) {
                const entries = await listErofsDirectory(file, 0, dir);
                if (!entries) continue;
                for (const e of entries) invariant(e.name !== "" && !e.name.includes("/") && !e.name.includes("\0"), `entry name ${JSON.stringify(e.name)}`);
                const names = entries.map((e) => e.name);
                invariant(names.every((n, i) => i === 0 || names[i - 1] <= n), "entries are not sorted");
            }
            const releases = await extensionReleaseNames(file, 0, "sysext");
            invariant(releases.every((n) => n.length > 0), "an empty extension name");
        } finally {
            fs.rmSync(file, { force: true });
        }
    },
};

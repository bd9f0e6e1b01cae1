// The PE reader over a file: headers and section table, section data, the Authenticode digest regions and
// the digest itself, and the PE checksum; what uki.ts runs over stubs and UKIs it is handed.
import * as fs from "fs";
import { PeError, authenticodeDigest, authenticodeRegions, peChecksum, readPeSections, readSectionData } from "../../../provider/toolkit/boot/pe";
import { PE_DICTIONARY, peImage } from "../generators/pe";
import { FuzzTarget, Scratch, invariant } from "../engine/target";

export const peTarget: FuzzTarget = {
    name: "pe",
    describe: "readPeSections, readSectionData, authenticodeRegions/authenticodeDigest, peChecksum",
    expected: [PeError],
    generator: peImage,
    dictionary: PE_DICTIONARY,
    maxLength: 16 * 1024,
    async run(input: Buffer, scratch: Scratch) {
        const file = scratch.fresh("image.efi");
        fs.writeFileSync(file, input);
        try {
            const info = readPeSections(file);
            invariant(info.fileSize === input.length, "file size");
            for (const name of new Set(info.sections.map((s) => s.name))) {
                const s = info.sections.find((x) => x.name === name)!;
                const data = readSectionData(file, info, name);
                invariant(data !== undefined && data.length === s.virtualSize, `section ${s.name}: ${data?.length} bytes read, VirtualSize ${s.virtualSize}`);
            }
            await peChecksum(file, info.offsets.checksum);
            if (info.certificateTable.size !== 0) {
                await authenticodeDigest(file).then(
                    () => invariant(false, "a signed image was digested as if unsigned"),
                    (e) => invariant(e instanceof PeError, `signed image: ${String(e)}`),
                );
                return;
            }
            const { regions, dataSize } = authenticodeRegions(info);
            for (const r of regions) {
                invariant(r.size >= 0 && r.offset >= 0, `digest region ${r.offset}+${r.size} is negative`);
                // Not "within dataSize": sbsign takes dataSize from the region that starts last, and a section
                // overlapping the headers may end later; matching sbsign matters more than tidiness there.
                const end = Math.max(dataSize, info.fileSize);
                invariant(r.offset + r.size <= end, `digest region ${r.offset}+${r.size} ends past the ${end}-byte padded image`);
            }
            const { digest } = await authenticodeDigest(file);
            invariant(digest.length === 32, "digest length");
        } finally {
            fs.rmSync(file, { force: true });
        }
    },
};

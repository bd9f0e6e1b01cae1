// A property over generated PE images (test/fuzz/generators/pe.ts) that the Authenticode code accepts:
// each is written to one file, parsed, and skipped when it is signed or refused before any hashing.
import * as fc from "fast-check";
import * as fs from "fs";
import { PeInfo, authenticodeRegions, readPeSections } from "../../provider/toolkit/boot/pe";
import { peImage } from "../fuzz/generators/pe";

export interface GeneratedImageRun {
    numRuns: number;
    seed: number;
    /** A further refusal (it throws) for the image's regions, as the code under test would refuse them. */
    accept?: (regions: ReturnType<typeof authenticodeRegions>) => void;
}

/** Runs `check` on accepted unsigned generated images written to `file`, each with a chunk size of 1–64 bytes. */
export async function forGeneratedUnsignedImages(file: string, o: GeneratedImageRun, check: (info: PeInfo, chunk: number) => Promise<void>): Promise<void> {
    await fc.assert(
        fc.asyncProperty(peImage, fc.integer({ min: 1, max: 64 }), async (image, chunk) => {
            fs.writeFileSync(file, image);
            let info: PeInfo;
            try {
                info = readPeSections(file);
                if (info.certificateTable.size !== 0) return;
                const regions = authenticodeRegions(info);
                o.accept?.(regions);
            } catch {
                return; // refused before any hashing; the fuzz target covers those errors
            }
            await check(info, chunk);
        }),
        { numRuns: o.numRuns, seed: o.seed },
    );
}

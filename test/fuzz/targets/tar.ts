// readTar over both byte sources: a stream in odd-sized chunks (how layers arrive) and a file read by
// offset (how image archives are indexed). The two must see the same entries and refuse the same inputs.
import * as fs from "fs";
import { FileSource, StreamSource, TarEntry, TarFormatError, readTar } from "../../../provider/toolkit/source/tar-reader";
import { TAR_DICTIONARY, rawTar } from "../generators/tar";
import { FuzzTarget, Scratch, invariant } from "../engine/target";

const CHUNK_SIZES = [1, 7, 511, 512, 4096, 1 << 20];

interface Seen {
    entries: string[];
    error?: unknown;
}

export const tarTarget: FuzzTarget = {
    name: "tar",
    describe: "readTar (StreamSource in odd chunks, FileSource) with every second body read",
    expected: [TarFormatError],
    generator: rawTar,
    dictionary: TAR_DICTIONARY,
    maxLength: 64 * 1024,
    async run(input: Buffer, scratch: Scratch) {
        const chunk = CHUNK_SIZES[input.length % CHUNK_SIZES.length];
        const streamed = await collect(new StreamSource(chunks(input, chunk)), input.length);
        const file = scratch.fresh("archive.tar");
        fs.writeFileSync(file, input);
        const source = await FileSource.open(file);
        let indexed: Seen;
        try {
            indexed = await collect(source, input.length);
        } finally {
            await source.close();
            fs.rmSync(file);
        }
        invariant(streamed.entries.join("\n") === indexed.entries.join("\n"), `the stream and the file reader disagree:\n${streamed.entries.join("\n")}\n---\n${indexed.entries.join("\n")}`);
        invariant((streamed.error === undefined) === (indexed.error === undefined), `only one reader refused the archive: ${String(streamed.error ?? indexed.error)}`);
        if (streamed.error) throw streamed.error;
    },
};

/** Reads every entry (bodies of every second one), checking what an entry promises about its data. */
async function collect(src: StreamSource | FileSource, inputLength: number): Promise<Seen> {
    const entries: string[] = [];
    try {
        let i = 0;
        for await (const entry of readTar(src)) {
            checkEntry(entry, inputLength);
            let read = -1;
            if (i++ % 2 === 0) {
                read = 0;
                for await (const part of entry.body()) read += part.length;
                invariant(read === entry.size, `entry ${entry.name}: body gave ${read} bytes, size says ${entry.size}`);
            }
            entries.push(`${JSON.stringify(entry.name)} ${entry.type} ${entry.typeflag} ${entry.mode} ${entry.size} @${entry.dataOffset} -> ${JSON.stringify(entry.linkname)}`);
        }
    } catch (error) {
        return { entries, error };
    }
    return { entries };
}

function checkEntry(entry: TarEntry, inputLength: number): void {
    invariant(Number.isSafeInteger(entry.size) && entry.size >= 0, `entry size ${entry.size}`);
    invariant(entry.dataOffset % 512 === 0 && entry.dataOffset >= 512, `data offset ${entry.dataOffset} is not after a header block`);
    invariant(entry.mode >= 0 && entry.mode <= 0o7777, `mode ${entry.mode}`);
    invariant(typeof entry.name === "string" && typeof entry.linkname === "string", "name or linkname is not a string");
    // A reader that hands out bytes past the end of the input invented them.
    invariant(entry.dataOffset <= inputLength, `data offset ${entry.dataOffset} is past the end of a ${inputLength}-byte input`);
}

async function* chunks(input: Buffer, size: number): AsyncGenerator<Buffer> {
    for (let at = 0; at < input.length; at += size) yield input.subarray(at, at + size);
}

// Puts the oras the set-up built (its path is in .oras-bin, written by scripts/setup.sh) first on
// PATH, so `npx mocha test/toolkit/release/x.test.ts` finds it as scripts/run-tests.sh does. Imported
// for its side effect by the release tests; a no-op when .oras-bin is absent (oras must be on PATH).
import * as fs from "fs";
import * as path from "path";

const marker = path.join(__dirname, "..", "..", ".oras-bin");
if (fs.existsSync(marker)) {
    const dir = path.dirname(fs.readFileSync(marker, "utf8").trim());
    const parts = (process.env.PATH ?? "").split(path.delimiter);
    if (!parts.includes(dir)) process.env.PATH = [dir, ...parts].join(path.delimiter);
}

// Registering this package's resources with the Pulumi runtime (mock engine): the program-side cost of
// a no-op `up`. Pulumi formats a stack trace for every output property's promise, which only its
// promise-leak report reads; with twenty-odd outputs a resource and source maps under ts-node, that was
// most of the program's time at 50 extensions (bench/engine.ts). The resources register with the trace
// limit at 0 and put the caller's limit back, whatever happens.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { SystemExtension } from "../../provider/system-extension";
import { tempDir } from "../helpers/temp";
import { installMocks, promiseOf, realSigningKeys } from "./harness";

/** Counts the stack traces formatted with at least one frame while `body` runs. */
function tracesFormattedDuring(body: () => void): number {
    const original = Error.prepareStackTrace;
    let formatted = 0;
    Error.prepareStackTrace = (error, frames) => {
        if (frames.length > 0) formatted++;
        return original ? original(error, frames) : `${error}\n${frames.map((f) => `    at ${f}`).join("\n")}`;
    };
    try {
        body();
    } finally {
        Error.prepareStackTrace = original;
    }
    return formatted;
}

describe("registering this package's resources", () => {
    before(() => installMocks());

    it("formats no stack trace per output property (the source position's own trace stays), and puts the caller's limit back, also when registration throws", async () => {
        const saved = Error.stackTraceLimit;
        Error.stackTraceLimit = 17;
        try {
            const keys = realSigningKeys("registration-keys");
            const src = tempDir("registration-src");
            fs.mkdirSync(path.join(src, "usr/lib/extension-release.d"), { recursive: true });
            fs.writeFileSync(path.join(src, "usr/lib/extension-release.d/extension-release.alpha"), "ID=_any\n");
            const args = { name: "alpha", outputDir: path.join(tempDir("registration"), "out"), source: { dir: src }, signingKeys: keys };
            let ext: SystemExtension | undefined;
            const formatted = tracesFormattedDuring(() => (ext = new SystemExtension("registration-alpha", args)));
            // Resource.callsites (the source position) is the one trace left; there used to be one per output too.
            assert.ok(formatted <= 2, `${formatted} stack traces formatted for one resource`);
            assert.equal(Error.stackTraceLimit, 17);
            assert.throws(() => new SystemExtension(undefined as unknown as string, args), /Missing resource name/);
            assert.equal(Error.stackTraceLimit, 17, "a registration that threw left the limit changed");
            assert.match(await promiseOf(ext!.sha256), /^[0-9a-f]{64}$/, "the resource still registers and builds");
        } finally {
            Error.stackTraceLimit = saved;
        }
    });
});

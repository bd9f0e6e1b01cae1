// isInside: the one "is this path under that root" check (artifact store placement, media copies).
import * as assert from "assert";
import { isInside } from "../../provider/toolkit/files";

describe("isInside", () => {
    it("takes the root and anything under it, including names that start with two dots", () => {
        for (const p of ["/r", "/r/", "/r/a", "/r/..data", "/r/..d/x", "/r/a/../b", "/r/...", "/r/a/.."]) assert.strictEqual(isInside("/r", p), true, p);
    });
    it("refuses what a '..' component or another root takes outside", () => {
        for (const p of ["/", "/r/..", "/r/../x", "/r/a/../../x", "/rx", "/r2/a", "/other"]) assert.strictEqual(isInside("/r", p), false, p);
    });
});

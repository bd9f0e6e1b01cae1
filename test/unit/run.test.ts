import * as assert from "assert";
import { run, ToolFailedError, ToolNotFoundError, quoteArgv } from "../../provider/toolkit/run";

describe("process runner", () => {
    it("passes argv without a shell", async () => {
        const r = await run(["printf", "%s|", "a b", "$HOME", ";rm"]);
        assert.strictEqual(r.stdout, "a b|$HOME|;rm|");
    });

    it("fails with the command line, exit status and stderr tail", async () => {
        const err = await run(["sh", "-c", "for i in $(seq 1 30); do echo line$i >&2; done; exit 3"]).catch((e) => e);
        assert.ok(err instanceof ToolFailedError);
        assert.strictEqual(err.exitCode, 3);
        assert.match(err.message, /`sh` exited with status 3/);
        assert.match(err.message, /command: sh -c 'for i in/);
        assert.match(err.message, /line30/);
        assert.doesNotMatch(err.message, /line10\n/); // only the tail
    });

    it("names the Debian package of a missing tool", async () => {
        const err = await run(["veritysetup-not-here"]).catch((e) => e);
        assert.ok(err instanceof ToolNotFoundError);
        const known = new ToolNotFoundError("mkfs.erofs");
        assert.match(known.message, /install the Debian package 'erofs-utils'/);
    });

    it("quotes arguments so the printed command can be pasted", () => {
        assert.strictEqual(quoteArgv(["openssl", "req", "-subj", "/CN=a b/", "it's"]), `openssl req -subj '/CN=a b/' 'it'\\''s'`);
    });
});

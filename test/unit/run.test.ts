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

    it("names the Debian and Fedora packages of a missing tool, and the doctor", async () => {
        const err = await run(["veritysetup-not-here"]).catch((e) => e);
        assert.ok(err instanceof ToolNotFoundError);
        assert.match(err.message, /could not find `veritysetup-not-here` on PATH\. `npx pulumi-kairos doctor` checks/);
        const known = new ToolNotFoundError("veritysetup");
        assert.match(known.message, /install it with `apt-get install cryptsetup-bin` \(Debian, Ubuntu\) or `dnf install cryptsetup` \(Fedora\)/);
    });

    it("quotes arguments so the printed command can be pasted", () => {
        assert.strictEqual(quoteArgv(["openssl", "req", "-subj", "/CN=a b/", "it's"]), `openssl req -subj '/CN=a b/' 'it'\\''s'`);
    });

    it("kills a tool that outlives timeoutMs, and leaves no timer behind when the tool is missing", async () => {
        await assert.rejects(run(["sleep", "30"], { timeoutMs: 200 }), /was killed by SIGTERM/);
        const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
        const before = timers();
        await assert.rejects(run(["no-such-tool-for-this-test"], { timeoutMs: 600000 }), /no-such-tool-for-this-test/);
        assert.equal(timers(), before, "a failed spawn must not keep a ten-minute timer (and so the process) alive");
    });
});

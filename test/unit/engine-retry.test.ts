// The test harness's one retry (test/helpers/engine.ts): only the engine-link failure seen in CI, once.
import { strict as assert } from "assert";
import { isLostEngineLink, retryLostEngineLink } from "../helpers/engine";

const LOST = `Command failed with exit code 1: pulumi up --yes --skip-preview --client=127.0.0.1:41791 --exec-kind auto.inline --stack dev
Updating (dev):

    pulumi:pulumi:Stack kairos-test-dev  error: One or more errors occurred: 14 UNAVAILABLE: No connection established. Last error: null. Resolution note: 
    pulumi:pulumi:Stack kairos-test-dev **failed** 1 error

Resources:
    1 errored

Duration: 1s
`;

describe("retryLostEngineLink", () => {
    it("recognises only the lost engine link, not a provider's own failure or one after changes", () => {
        assert.equal(isLostEngineLink(new Error(LOST)), true);
        assert.equal(isLostEngineLink(new Error(LOST.replace("14 UNAVAILABLE", "2 UNKNOWN"))), false);
        assert.equal(isLostEngineLink(new Error(LOST.replace("    1 errored", "    + 1 created\n    1 errored"))), false);
        assert.equal(isLostEngineLink(new Error("SigningKeys keys: outputDir holds other keys")), false);
    });

    it("runs the operation once more after a lost link, and never a third time", async () => {
        let calls = 0;
        assert.equal(await retryLostEngineLink(async () => (++calls === 1 ? Promise.reject(new Error(LOST)) : "ok")), "ok");
        assert.equal(calls, 2);
        calls = 0;
        await assert.rejects(retryLostEngineLink(async () => {
            calls++;
            throw new Error(LOST);
        }), /14 UNAVAILABLE/);
        assert.equal(calls, 2);
        calls = 0;
        await assert.rejects(retryLostEngineLink(async () => {
            calls++;
            throw new Error("other");
        }), /other/);
        assert.equal(calls, 1);
    });
});

// The state-version rules every resource's handler runs under (provider/handlers.ts). The inner handler
// here records its calls and answers "no changes", so what is asserted is the wrapper's own decision.
import { strict as assert } from "assert";
import { RESOURCE_TOKENS, STATE_VERSION, handlerFor, stateVersionOf, versionedHandler } from "../../provider/handlers";
import type { Handler } from "../../provider/artifact-contract";
import { loadPackageSchema } from "../../provider/validation/schema-validator";

function recordingHandler(calls: string[]): Handler {
    return {
        check: async (_olds, news) => (calls.push("check"), { inputs: news }),
        diff: async () => (calls.push("diff"), { changes: false, replaces: [] }),
        create: async (inputs) => (calls.push("create"), { id: "x", outs: { ...inputs, built: true } }),
        read: async (id, props) => (calls.push("read"), { id, props }),
        update: async (_id, _olds, news) => (calls.push("update"), { outs: { ...news, built: true } }),
        delete: async () => void calls.push("delete"),
    };
}

describe("handler registry and state versions", () => {
    it("has a handler for each of the nine resource tokens, and names them when asked for another", () => {
        const tokens = ["BootMedia", "ExtensionCatalog", "KairosUkiImage", "OsRelease", "PromotedArtifact", "PromotedRelease", "SigningKeys", "SysextRelease", "SystemExtension"];
        assert.deepEqual([...RESOURCE_TOKENS].sort(), tokens.map((t) => `kairos:index:${t}`));
        assert.throws(() => handlerFor("kairos:index:Nope"), /no resource type kairos:index:Nope; it knows kairos:index:SigningKeys/);
    });

    it("each token's handler is that resource's own (its check asks for that resource's required inputs), under the state-version rules", async () => {
        const schema = loadPackageSchema();
        for (const t of RESOURCE_TOKENS) {
            const h = handlerFor(t);
            const { failures = [] } = await h.check({}, {});
            const required = failures.filter((p) => p.reason === "is required").map((p) => p.property).sort();
            assert.deepEqual(required, [...schema.resources[t].requiredInputs].sort(), `${t}: check of empty inputs`);
            await assert.rejects(h.diff("x", { stateVersion: STATE_VERSION + 1 }, {}), new RegExp(`^Error: ${t}: this state was written by a newer pulumi-kairos`));
        }
    });

    it("state without stateVersion is version 1 (pulumi-kairos 0.1.x)", () => {
        assert.equal(stateVersionOf({ path: "x" }), 1);
        assert.equal(stateVersionOf({ stateVersion: 2 }), 2);
    });

    it("create and update stamp the current version on what they write", async () => {
        const h = versionedHandler("kairos:index:Test", recordingHandler([]));
        assert.equal((await h.create({ a: 1 })).outs.stateVersion, STATE_VERSION);
        assert.equal((await h.update("x", { stateVersion: 1 }, { a: 1 })).outs?.stateVersion, STATE_VERSION);
    });

    it("diff turns 'no changes' into an update for older state, and leaves current state alone", async () => {
        const calls: string[] = [];
        const h = versionedHandler("kairos:index:Test", recordingHandler(calls));
        assert.equal((await h.diff("x", { path: "p" }, {})).changes, true);
        assert.equal((await h.diff("x", { stateVersion: STATE_VERSION }, {})).changes, false);
        assert.deepEqual(calls, ["diff", "diff"]);
    });

    it("refresh keeps the version it found (only an update rewrites the stored provider)", async () => {
        const h = versionedHandler("kairos:index:Test", recordingHandler([]));
        assert.equal((await h.read("x", { path: "p" })).props?.stateVersion, undefined);
    });

    it("an import (a read with no props) goes to adopt, stamped with this version; a type without adopt is refused", async () => {
        const calls: string[] = [];
        const adopting = { ...recordingHandler(calls), adopt: async (id: string) => ({ id, props: { found: id }, inputs: { outputDir: id } }) };
        const r = await versionedHandler("kairos:index:SigningKeys", adopting).read("keys", {});
        assert.deepEqual(r, { id: "keys", props: { found: "keys", stateVersion: STATE_VERSION }, inputs: { outputDir: "keys" } });
        await assert.rejects(versionedHandler("kairos:index:BootMedia", recordingHandler(calls)).read("media", {}), /kairos:index:BootMedia cannot be imported/);
        assert.deepEqual(calls, []);
    });

    it("refuses state from a newer package before touching anything", async () => {
        const calls: string[] = [];
        const h = versionedHandler("kairos:index:Test", recordingHandler(calls));
        const newer = { stateVersion: STATE_VERSION + 1 };
        for (const attempt of [() => h.diff("x", newer, {}), () => h.read("x", newer), () => h.update("x", newer, {}), () => h.delete("x", newer)]) {
            await assert.rejects(attempt, new RegExp(`written by a newer pulumi-kairos \\(state version ${STATE_VERSION + 1}\\); the installed one knows up to ${STATE_VERSION}`));
        }
        assert.deepEqual(calls, []);
    });
});

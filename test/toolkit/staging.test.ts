// Staging-then-rename leaves nothing behind even when a build was killed: its folders carry the
// builder's pid, and the next build beside the same target removes those whose process is gone.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { restoreInterruptedSwap, stageThenMove, sweepDeadLeftovers, withScratch } from "../../provider/output/staging";
import { startTimeOf } from "../../provider/toolkit/process-alive";
import { tempDir } from "../helpers/temp";

/** The pid of a process that has exited. */
function deadPid(): number {
    const child = spawnSync("true");
    assert.ok(child.pid);
    return child.pid!;
}

describe("staging leftovers of killed builds", () => {
    it("the next build removes a dead build's staging folder (private keys included) and keeps a live one's", async () => {
        const root = tempDir("staging");
        const target = path.join(root, "keys");
        const dead = path.join(root, `.keys.staging-${deadPid()}-AbCdEf`);
        const live = path.join(root, `.keys.staging-${process.ppid}-GhIjKl`); // the test runner's parent: alive
        for (const d of [dead, live]) {
            fs.mkdirSync(d);
            fs.writeFileSync(path.join(d, "PK.key"), "-----BEGIN PRIVATE KEY-----\n", { mode: 0o600 });
        }
        await stageThenMove(target, async (staging) => {
            assert.match(path.basename(staging), new RegExp(`^\\.keys\\.staging-${process.pid}-${startTimeOf(process.pid)}-`));
            fs.writeFileSync(path.join(staging, "PK.key"), "new", { mode: 0o600 });
        });
        assert.ok(!fs.existsSync(dead), "the dead build's staging folder is gone");
        assert.ok(fs.existsSync(live), "a running build's staging folder is left alone");
        assert.deepEqual(fs.readdirSync(target), ["PK.key"]);
    });

    it("scratch folders and a replaced tree's .old copy count too", async () => {
        const root = tempDir("scratch");
        const pid = deadPid();
        for (const n of [`.k3s.work-${pid}-a1b2c3`, `.media.staging-${pid}-d4e5f6.old`]) fs.mkdirSync(path.join(root, n));
        await withScratch(path.join(root, "out"), "k3s", async (work) => assert.ok(path.isAbsolute(work)));
        assert.deepEqual(sweepDeadLeftovers(root, ".media.staging-"), [`.media.staging-${pid}-d4e5f6.old`]);
        assert.deepEqual(fs.readdirSync(root), []);
    });

    it("a folder swap killed between its renames: the tree set aside comes back, unless its builder still runs", () => {
        const root = tempDir("swap");
        const target = path.join(root, "uki");
        const aside = path.join(root, `.uki.staging-${deadPid()}-AbCdEf.old`);
        fs.mkdirSync(aside);
        fs.writeFileSync(path.join(aside, "norole.efi"), "recorded");
        const running = path.join(root, `.media.staging-${process.ppid}-GhIjKl.old`);
        fs.mkdirSync(running);
        assert.equal(restoreInterruptedSwap(target), true);
        assert.equal(fs.readFileSync(path.join(target, "norole.efi"), "utf8"), "recorded");
        assert.equal(restoreInterruptedSwap(target), false, "a target that exists is left alone");
        assert.equal(restoreInterruptedSwap(path.join(root, "media")), false, "a live build's swap is its own business");
        assert.ok(fs.existsSync(running));
    });

    it("a live pid is not taken for the builder when it names another process now (pid reuse)", async () => {
        const root = tempDir("reuse");
        const started = Number(startTimeOf(process.pid));
        assert.ok(started > 0);
        // Same pid, another start time: the builder that made it died and its pid went to this process.
        const reused = path.join(root, `.keys.staging-${process.pid}-${started + 1}-AbCdEf`);
        const ours = path.join(root, `.keys.staging-${process.pid}-${started}-GhIjKl`);
        // An older version's name (pid only) written long before this process started: not this process's.
        const oldReused = path.join(root, `.keys.staging-${process.pid}-MnOpQr`);
        const oldLive = path.join(root, `.keys.staging-${process.ppid}-StUvWx`); // written just now by a live pid: kept
        for (const d of [reused, ours, oldReused, oldLive]) fs.mkdirSync(d);
        const longAgo = new Date(Date.now() - 30 * 24 * 3600 * 1000);
        fs.utimesSync(oldReused, longAgo, longAgo);
        assert.deepEqual(sweepDeadLeftovers(root, ".keys.staging-").sort(), [path.basename(oldReused), path.basename(reused)].sort());
        assert.deepEqual(fs.readdirSync(root).sort(), [path.basename(ours), path.basename(oldLive)].sort());
    });
});

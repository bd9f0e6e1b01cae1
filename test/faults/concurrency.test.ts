// Two builds writing the same artifact (two stacks on one output folder): the second waits for the
// first and says whom it waits for, or fails naming it; artifacts are never interleaved; a lock whose
// holder was killed does not block anyone.
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SYSTEM_EXTENSION_TOKEN } from "../../provider/system-extension";
import { handlerFor } from "../../provider/handlers";
import { holderAlive, lockPathFor, LOCK_TIMEOUT_ENV, withOutputLock } from "../../provider/output/output-lock";
import { withLogSink } from "../../provider/build-log";
import { PAUSE_AT_ENV } from "../../provider/fault-points";
import { sha256File } from "../../provider/toolkit/files";
import { makeCertificate } from "../helpers/pki";
import { tempDir } from "../helpers/temp";
import { veritySignatureVerifies } from "../helpers/ddi-inspect";

const CHILD = path.join(__dirname, "lock-child.ts");

function child(args: string[], env: Record<string, string> = {}): { proc: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
    const proc = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", CHILD, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout!.on("data", (d) => (stdout += d));
    proc.stderr!.on("data", (d) => (stderr += d));
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => proc.on("close", (code) => resolve({ code, stdout, stderr })));
    return { proc, done };
}

function waitForLine(proc: ChildProcess, line: string, stream: "stdout" | "stderr" = "stdout"): Promise<void> {
    return new Promise((resolve, reject) => {
        let seen = "";
        proc[stream]!.on("data", (d) => {
            seen += d;
            if (seen.includes(line)) resolve();
        });
        proc.on("close", (code) => reject(new Error(`child exited (${code}) before saying "${line}"`)));
    });
}

/** The first of `lines` the child prints. */
function firstOf(proc: ChildProcess, lines: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
        let seen = "";
        proc.stdout!.on("data", (d) => {
            seen += d;
            const first = lines.map((l) => ({ l, at: seen.indexOf(`${l}\n`) })).filter((x) => x.at >= 0).sort((a, b) => a.at - b.at)[0];
            if (first) resolve(first.l);
        });
        proc.on("close", (code) => reject(new Error(`child exited (${code}) before saying any of ${lines.join(", ")}`)));
    });
}

describe("two builds of one artifact", function () {
    this.timeout(240000);
    let work: string;
    let signer: { key: string; certificate: string };
    const inputs = (payload: string) => ({ name: "shared", outputDir: path.join(work, "out"), source: { dir: path.join(work, payload) }, signing: signer });

    before(async () => {
        work = tempDir("lock");
        signer = await makeCertificate(work, "lock-db");
        for (const [name, size] of [["payload-a", 3], ["payload-b", 4]] as const) {
            fs.mkdirSync(path.join(work, name, "usr", "lib"), { recursive: true });
            // a few MB of distinct bytes, so each build takes long enough for the other to meet it
            fs.writeFileSync(path.join(work, name, "usr", "lib", "blob"), Buffer.alloc(size << 20, name));
        }
    });

    it("the second waits for the first, names it, and the result is one whole artifact, never a mix", async () => {
        // A stops half-way through its build, holding the lock, until B says it is waiting.
        const release = path.join(work, "release-a");
        const a = child(["build", SYSTEM_EXTENSION_TOKEN, JSON.stringify(inputs("payload-a"))], { [PAUSE_AT_ENV]: `SystemExtension shared: build and verify image (start)=${release}` });
        await waitForLine(a.proc, "build and verify image...", "stderr");
        const b = child(["build", SYSTEM_EXTENSION_TOKEN, JSON.stringify(inputs("payload-b"))]);
        await waitForLine(b.proc, "waiting for", "stderr");
        fs.writeFileSync(release, "");
        const [ra, rb] = await Promise.all([a.done, b.done]);
        assert.strictEqual(ra.code, 0, ra.stderr);
        assert.strictEqual(rb.code, 0, rb.stderr);
        const [oa, ob] = [JSON.parse(ra.stdout), JSON.parse(rb.stdout)];
        assert.match(rb.stderr, new RegExp(`waiting for SystemExtension shared \\(pid ${a.proc.pid} on ${os.hostname()}`), rb.stderr);
        assert.notStrictEqual(oa.outs.sha256, ob.outs.sha256);
        const artifact = path.join(work, "out", "shared.sysext.raw");
        // B waited for A's lock, so B wrote last: the artifact is B's whole image, not A's nor a mix.
        assert.strictEqual(await sha256File(artifact), ob.outs.sha256, "the artifact is the one the waiting build recorded");
        assert.ok((await veritySignatureVerifies(artifact, signer.certificate, tempDir("lock-verify"))).ok);
        assert.deepStrictEqual(fs.readdirSync(path.join(work, "out")), ["shared.sysext.raw"]);
        assert.ok(!fs.existsSync(lockPathFor(path.join(work, "out", "shared"))));
    });

    it("a build that cannot get the lock in time fails naming the holder, and writes nothing", async () => {
        const out = path.join(work, "held");
        const holder = child(["hold", path.join(out, "shared"), "SystemExtension shared (stack prod)"]);
        try {
            await waitForLine(holder.proc, "held");
            const saved = process.env[LOCK_TIMEOUT_ENV];
            process.env[LOCK_TIMEOUT_ENV] = "1";
            const lines: string[] = [];
            try {
                const h = handlerFor(SYSTEM_EXTENSION_TOKEN);
                const { inputs: checked } = await h.check({}, { ...inputs("payload-a"), outputDir: out });
                await assert.rejects(
                    withLogSink({ info: (m) => lines.push(m), progress: () => undefined }, () => h.create(checked)),
                    new RegExp(`being written by another build: SystemExtension shared \\(stack prod\\) \\(pid ${holder.proc.pid} on ${os.hostname()}, since .*waited 1 s.*Nothing was changed`),
                );
            } finally {
                saved === undefined ? delete process.env[LOCK_TIMEOUT_ENV] : (process.env[LOCK_TIMEOUT_ENV] = saved);
            }
            assert.ok(lines.some((l) => l.includes(`waiting for SystemExtension shared (stack prod) (pid ${holder.proc.pid}`)), lines.join("\n"));
            assert.deepStrictEqual(fs.readdirSync(out), [".shared.lock"], "only the holder's lock is there");
        } finally {
            holder.proc.kill("SIGKILL");
            await holder.done;
        }
    });

    it("the lock dies with its process: a killed holder's lock is taken over at once", async () => {
        const out = path.join(work, "orphan");
        const holder = child(["hold", path.join(out, "shared"), "SystemExtension shared"]);
        await waitForLine(holder.proc, "held");
        holder.proc.kill("SIGKILL");
        await holder.done;
        assert.ok(fs.existsSync(lockPathFor(path.join(out, "shared"))), "the killed holder's lock folder is still there");
        const saved = process.env[LOCK_TIMEOUT_ENV];
        process.env[LOCK_TIMEOUT_ENV] = "0"; // no waiting at all: only a lock recognised as dead lets this through
        try {
            const h = handlerFor(SYSTEM_EXTENSION_TOKEN);
            const { inputs: checked } = await h.check({}, { ...inputs("payload-a"), outputDir: out });
            const { outs } = await h.create(checked);
            assert.strictEqual(await sha256File(outs.path), outs.sha256);
        } finally {
            saved === undefined ? delete process.env[LOCK_TIMEOUT_ENV] : (process.env[LOCK_TIMEOUT_ENV] = saved);
        }
        assert.deepStrictEqual(fs.readdirSync(out), ["shared.sysext.raw"]);
    });

    it("builds that find one stale lock at once take it over one at a time: exactly one holds it", async function () {
        this.timeout(600000); // six provider processes starting at once on a busy machine
        const BREAKERS = 6;
        const out = path.join(work, "stale-race");
        const target = path.join(out, "shared");
        for (let round = 0; round < 2; round++) {
            const dead = child(["hold", target, "killed build"]);
            await waitForLine(dead.proc, "held");
            dead.proc.kill("SIGKILL");
            await dead.done;
            const breakers = Array.from({ length: BREAKERS }, (_, k) => child(["hold", target, `breaker ${k}`]));
            try {
                // each says "held" when it has the lock, or "waiting" once it has seen a live holder
                const said = await Promise.all(breakers.map((b) => firstOf(b.proc, ["held", "waiting"])));
                const holders = breakers.filter((_, k) => said[k] === "held");
                assert.strictEqual(holders.length, 1, `round ${round}: ${said.join(", ")}`);
                const holder = JSON.parse(fs.readFileSync(path.join(lockPathFor(target), "holder.json"), "utf8"));
                assert.strictEqual(holder.pid, holders[0].proc.pid);
                assert.match(holder.nonce, /^[0-9a-f]{32}$/);
                // (the waiting builds' own half-made locks, .shared.lock.new-*, come and go as they poll)
                assert.deepStrictEqual(fs.readdirSync(out).filter((n) => !n.startsWith(".shared.lock.new-")), [".shared.lock"], "no mutex, tombstone or moved-aside lock left behind");
            } finally {
                for (const b of breakers) b.proc.kill("SIGKILL");
                await Promise.all(breakers.map((b) => b.done));
            }
        }
    });

    it("a release removes only the lock with its own nonce, not one another acquisition of the same process took over", async () => {
        const target = path.join(work, "takeover", "shared");
        const lock = lockPathFor(target);
        let bHolds!: () => void;
        const bHeld = new Promise<void>((r) => (bHolds = r));
        let letBGo!: () => void;
        let b: Promise<void> | undefined;
        await withOutputLock([target], "build A", async () => {
            // A's lock is judged dead (a start time that is not this process's, as after pid reuse): B, in the same process, takes it over.
            const a = JSON.parse(fs.readFileSync(path.join(lock, "holder.json"), "utf8"));
            fs.writeFileSync(path.join(lock, "holder.json"), JSON.stringify({ ...a, started: "1" }));
            b = withOutputLock([target], "build B", () => {
                bHolds();
                return new Promise<void>((r) => (letBGo = r));
            });
            await bHeld;
        });
        // A has released: B's lock, same pid, is still there
        const holder = JSON.parse(fs.readFileSync(path.join(lock, "holder.json"), "utf8"));
        assert.strictEqual(holder.owner, "build B");
        assert.strictEqual(holder.pid, process.pid);
        letBGo();
        await b;
        assert.ok(!fs.existsSync(lock), "B released its own lock");
    });

    it("a live process with the holder's pid but another start time is not the holder (pid reuse)", () => {
        const stat = fs.readFileSync(`/proc/${process.pid}/stat`, "utf8");
        const started = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
        assert.strictEqual(holderAlive({ pid: process.pid, started, host: os.hostname() }), true);
        assert.strictEqual(holderAlive({ pid: process.pid, started: String(Number(started) + 1), host: os.hostname() }), false);
        assert.strictEqual(holderAlive({ pid: 2 ** 22 + 1, started, host: os.hostname() }), false);
        assert.strictEqual(holderAlive({ pid: 2 ** 22 + 1, started, host: "another-machine" }), true, "another host's holder cannot be judged, so it is respected");
    });
});

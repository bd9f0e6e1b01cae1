// Crash safety through the real engine: the provider process is killed (SIGKILL) at every named point
// a real build passes (each build step's start and end, each rename into place), in create and in
// update. After each kill the state points at no missing or half-written artifact, and the next `up`
// converges to artifacts byte-identical to an undisturbed build, leaving no staging, scratch or lock
// folder behind. Each up and refresh runs in a process of its own (kill-driver.ts says why); this process
// only reads the state.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { KILL_AT_ENV, RECORD_POINTS_ENV } from "../../provider/fault-points";
import { sha256File } from "../../provider/toolkit/files";
import { digestKeySet } from "../../provider/toolkit/keys/secure-boot-keyset";
import { spawn } from "child_process";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { killProgram } from "./kill-driver";
import { treeSnapshot } from "../helpers/tree";
import { makeGenkeyFolder } from "../helpers/genkey";
import { buildTestOsRootfs, packTestOsImage } from "../helpers/test-os";

/** Everything a build may leave behind when killed; none of it may survive the next up. */
const DEBRIS = /\.(staging|work)-|\.lock($|\.)/;

describe("killed builds through the Pulumi engine", function () {
    this.timeout(1800000);
    let shared: string;

    const DRIVER = path.join(__dirname, "kill-driver.ts");

    /** Runs `up` or `refresh` in a fresh process; resolves with its stdout, rejects with its stderr. */
    const drive = (stack: EngineStack, op: "up" | "refresh", env: Record<string, string>) =>
        new Promise<string>((resolve, reject) => {
            const child = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", DRIVER, op], { env: { ...process.env, ...env, KAIROS_KILL_BACKEND: stack.backendDir }, stdio: ["ignore", "pipe", "pipe"] });
            let out = "";
            let err = "";
            child.stdout.on("data", (d) => (out += d));
            child.stderr.on("data", (d) => (err += d));
            child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(err.slice(-4000)))));
        });
    /** A stack this process only reads (exports); operations go through `drive`. */
    const readOnlyStack = () => engineStack(killProgram);
    interface Variant {
        payload: string;
        cmdline: string;
    }
    const V1: Variant = { payload: "payload-1", cmdline: "rd.debug" };
    const V2: Variant = { payload: "payload-2", cmdline: "rd.debug quiet" };

    /** The pipeline program's environment for one up (kill-program.js reads it). */
    const pipeline = (work: string, v: Variant) => ({ KAIROS_KILL_PROGRAM: "pipeline", KAIROS_KILL_WORK: work, KAIROS_KILL_SHARED: shared, KAIROS_KILL_PAYLOAD: v.payload, KAIROS_KILL_CMDLINE: v.cmdline });

    before(async function () {
        this.timeout(300000);
        shared = tempDir("kill-shared");
        await makeGenkeyFolder(path.join(shared, "genkey"), "kill", { microsoftLists: false });
        for (const [name, text] of [["payload-1", "alpha 1\n"], ["payload-2", "alpha 2\n"]]) {
            fs.mkdirSync(path.join(shared, name, "usr", "bin"), { recursive: true });
            fs.writeFileSync(path.join(shared, name, "usr", "bin", "alpha"), text, { mode: 0o755 });
        }
        const rootfs = path.join(shared, "test-os");
        await buildTestOsRootfs(rootfs);
        await packTestOsImage(rootfs, path.join(shared, "test-os.oci"));
    });

    /** Every file under `dir` with its sha256, by relative path; the key-set stamp names its folder, so it differs between work folders. */
    function treeDigests(dir: string): Record<string, string> {
        const files = Object.entries(treeSnapshot(dir, (name) => name === ".kairos-keyset.json")).filter(([rel]) => !rel.endsWith("/"));
        return Object.fromEntries(files);
    }

    function debrisUnder(dir: string): string[] {
        const found: string[] = [];
        const walk = (d: string) => {
            for (const e of fs.readdirSync(d, { withFileTypes: true })) {
                if (DEBRIS.test(e.name)) found.push(path.join(d, e.name));
                else if (e.isDirectory()) walk(path.join(d, e.name));
            }
        };
        walk(dir);
        return found;
    }

    /**
     * Every artifact the state records ({path, sha256} anywhere in a resource's outputs, and key files)
     * is there, whole: either as recorded, or (a build killed after its rename, before the engine
     * recorded it) exactly the artifact that build was making, as the undisturbed reference made it.
     */
    async function assertStateTrue(stack: EngineStack, where: string, work: string, making: Record<string, string>): Promise<number> {
        const deployment = (await stack.stack.exportStack()).deployment;
        let checked = 0;
        const visit = async (v: any): Promise<void> => {
            if (Array.isArray(v)) for (const x of v) await visit(x);
            else if (v && typeof v === "object") {
                if (typeof v.path === "string" && typeof v.sha256 === "string") {
                    assert.ok(fs.existsSync(v.path), `${where}: the state records ${v.path}, which is missing`);
                    const now = await sha256File(v.path);
                    const wholeNew = making[path.relative(work, v.path)];
                    assert.ok(now === v.sha256 || now === wholeNew, `${where}: ${v.path} is neither the recorded artifact nor the complete new one`);
                    checked++;
                }
                for (const x of Object.values(v)) await visit(x);
            }
        };
        for (const r of deployment.resources ?? []) {
            if (!r.custom || !r.outputs) continue;
            await visit(r.outputs);
            if (r.outputs.fileDigests) {
                // Key material stays as recorded whatever the kill; the .auth/.esl may be the re-signed ones.
                const now = await digestKeySet(r.outputs.keyDir);
                for (const [name, digest] of Object.entries<string>(r.outputs.fileDigests)) {
                    const wholeNew = making[path.join(path.relative(work, r.outputs.keyDir), name)];
                    assert.ok(now[name] === digest || (wholeNew !== undefined && !name.endsWith(".key") && now[name] === wholeNew), `${where}: key file ${name} is neither recorded nor the complete new one`);
                }
                checked++;
            }
        }
        return checked;
    }

    /**
     * The points to kill at: every recorded point except a step's end that is directly followed by the
     * same resource's next step start (between the two only the scratch folder changes, so a kill there
     * leaves what a kill at the next start leaves; the suite's time goes to points that differ).
     */
    function distinctPoints(points: string[]): string[] {
        const labelOf = (p: string) => p.slice(0, p.indexOf(": "));
        return points.filter((p, k) => !(p.endsWith(" (end)") && points[k + 1]?.endsWith(" (start)") && labelOf(points[k + 1]) === labelOf(p)));
    }

    /** The ids of the fault points an undisturbed up passes, in order. */
    async function recordPoints(stack: EngineStack, file: string, env: Record<string, string>): Promise<string[]> {
        fs.rmSync(file, { force: true });
        await drive(stack, "up", { ...env, [RECORD_POINTS_ENV]: file });
        return fs.readFileSync(file, "utf8").trim().split("\n");
    }

    /**
     * Kills an up at each point in turn (each next up restarts the killed build and runs into the next
     * point), checks the state after each kill, then lets one up finish.
     */
    async function killAtEach(stack: EngineStack, points: string[], where: string, work: string, making: Record<string, string>, env: Record<string, string>): Promise<void> {
        for (const point of points) {
            let finished: string | undefined;
            await drive(stack, "up", { ...env, [KILL_AT_ENV]: point })
                .then((changes) => (finished = changes))
                .catch((e: Error) => assert.match(e.message, /error reading from server: EOF|transport is closing|connection refused|Unavailable/, `${where} ${point}: ${e.message.slice(-800)}`));
            assert.ok(finished === undefined, `${where}: the up finished without reaching "${point}": ${finished}`);
            if (point.startsWith("set aside ")) {
                // Killed between a folder swap's two renames: the recorded folder is aside, under a
                // staging name; the next operation's read puts it back (output/staging.ts).
                await drive(stack, "refresh", env);
            }
            await assertStateTrue(stack, `${where}, killed at "${point}"`, work, making);
        }
        await drive(stack, "up", env);
    }

    it("create and update, killed at every build step and rename: state stays true, the next up converges byte-identical, no debris", async () => {
        const ref = tempDir("kill-ref");
        const work = tempDir("kill-work");
        const reference = await readOnlyStack();
        const killed = await readOnlyStack();
        try {
            const createPoints = await recordPoints(reference, path.join(shared, "create-points"), pipeline(ref, V1));
            const refCreated = treeDigests(ref);
            const updatePoints = await recordPoints(reference, path.join(shared, "update-points"), pipeline(ref, V2));
            const refUpdated = treeDigests(ref);
            for (const [points, kinds] of [[createPoints, ["SigningKeys", "SystemExtension", "KairosUkiImage", "BootMedia", "PromotedArtifact"]], [updatePoints, ["SystemExtension", "KairosUkiImage", "BootMedia", "PromotedArtifact"]]] as const) {
                for (const kind of kinds) assert.ok(points.some((p) => p.startsWith(kind)), `no fault point of ${kind} recorded: ${points.join(" | ")}`);
            }
            const [createKills, updateKills] = [distinctPoints(createPoints), distinctPoints(updatePoints)];
            console.log(`      kill points: ${createKills.length} of ${createPoints.length} recorded in create, ${updateKills.length} of ${updatePoints.length} in update`);

            await killAtEach(killed, createKills, "create", work, refCreated, pipeline(work, V1));
            assert.deepStrictEqual(treeDigests(work), refCreated);
            assert.deepStrictEqual(debrisUnder(work), []);

            await killAtEach(killed, updateKills, "update", work, refUpdated, pipeline(work, V2));
            assert.deepStrictEqual(treeDigests(work), refUpdated);
            assert.deepStrictEqual(debrisUnder(work), []);
            assert.deepStrictEqual(JSON.parse(await drive(killed, "up", pipeline(work, V2))), { same: 6 });
        } finally {
            await reference.dispose();
            await killed.dispose();
        }
    });

    it("a key rotation killed at any step or rename leaves the recorded key set complete; the next up rotates", async () => {
        const work = tempDir("kill-rotate");
        const keysAt = (rotation: number) => ({ KAIROS_KILL_PROGRAM: "keys", KAIROS_KILL_WORK: work, KAIROS_KILL_ROTATION: String(rotation) });
        const recorder = await readOnlyStack();
        let recorded: string[];
        try {
            await drive(recorder, "up", keysAt(0));
            recorded = await recordPoints(recorder, path.join(work, "points"), keysAt(1));
        } finally {
            await recorder.dispose();
        }
        // Recording rotated those keys; a fresh stack rotates again from rotation 0 under the kills.
        fs.rmSync(path.join(work, "keys"), { recursive: true });
        const killed = await readOnlyStack();
        try {
            await drive(killed, "up", keysAt(0));
            const old = await killed.resourceOutputs("keys");
            const pick = (prefix: string) => recorded.filter((p) => p.startsWith(prefix));
            const spread = (xs: string[]) => [...new Set([xs[0], xs[Math.floor(xs.length / 2)], xs[xs.length - 1]])].filter(Boolean);
            const points = [...pick("SigningKeys"), ...spread(pick("retired ")), ...spread(pick("moved into keys: "))];
            assert.ok(pick("retired ").length >= 16 && pick("moved into keys: ").length >= 16, `rotation points: ${recorded.join(" | ")}`);
            for (const point of points) {
                await assert.rejects(drive(killed, "up", { ...keysAt(1), [KILL_AT_ENV]: point }), `the up finished without reaching "${point}"`);
                await drive(killed, "refresh", keysAt(1));
                const now = await killed.resourceOutputs("keys");
                assert.deepStrictEqual(now.drift, [], `killed at "${point}": the refresh found ${now.drift}`);
                assert.deepStrictEqual(await digestKeySet(old.keyDir), old.fileDigests, `killed at "${point}": the key folder is not the recorded set`);
                assert.ok(!fs.existsSync(path.join(old.keyDir, "retired")), `killed at "${point}": a retired folder was left`);
            }
            // Killed half-way, then the rotation is called off: a plain up (no refresh) still puts the recorded set back.
            await assert.rejects(drive(killed, "up", { ...keysAt(1), [KILL_AT_ENV]: spread(pick("retired "))[1] }));
            await drive(killed, "up", keysAt(0));
            assert.deepStrictEqual(await digestKeySet(old.keyDir), old.fileDigests, "a called-off rotation left the key folder mixed");
            assert.ok(!fs.existsSync(path.join(old.keyDir, "retired")));
            await drive(killed, "up", keysAt(1));
            const rotated = await killed.resourceOutputs("keys");
            assert.strictEqual(rotated.rotation, 1);
            assert.notStrictEqual(rotated.certificates.db.sha256Fingerprint, old.certificates.db.sha256Fingerprint);
            assert.deepStrictEqual(await digestKeySet(rotated.keyDir), rotated.fileDigests);
            assert.deepStrictEqual(await digestKeySet(path.join(work, "keys", "retired", "rotation-0")), old.fileDigests, "the old set is retired whole");
            assert.deepStrictEqual(debrisUnder(work), []);
        } finally {
            await killed.dispose();
        }
    });
});

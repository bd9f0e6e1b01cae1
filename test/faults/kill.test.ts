// Crash safety through the real engine: the provider process is killed (SIGKILL) at every named point
// a real build passes (each build step's start and end, each rename into place), in create and in
// update. After each kill the state points at no missing or altered artifact, and the next `up`
// converges to artifacts byte-identical to an undisturbed build, leaving no staging, scratch or lock
// folder behind.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { SigningKeys } from "../../provider/signing-keys";
import { SystemExtension } from "../../provider/system-extension";
import { KairosUkiImage } from "../../provider/kairos-uki-image";
import { BootMedia } from "../../provider/boot-media";
import { PromotedArtifact } from "../../provider/promoted-artifact";
import { KILL_AT_ENV, RECORD_POINTS_ENV } from "../../provider/fault-points";
import { sha256File } from "../../provider/toolkit/files";
import { digestKeySet } from "../../provider/toolkit/secure-boot-keyset";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { fileDigests } from "../helpers/packed";
import { makeGenkeyFolder } from "../helpers/genkey";
import { buildTestOsRootfs, packTestOsImage } from "../helpers/test-os";

/** Everything a build may leave behind when killed; none of it may survive the next up. */
const DEBRIS = /\.(staging|work)-|\.lock($|\.)/;

describe("killed builds through the Pulumi engine", function () {
    this.timeout(1800000);
    let shared: string;

    /** Keys (imported, so everything downstream is reproducible) + extension + UKI + ISO + a promoted copy, built one after another. */
    const program = (work: string, variant: () => { payload: string; cmdline: string }) => async () => {
        const { payload, cmdline } = variant();
        const keys = new SigningKeys("keys", {
            name: "kill",
            outputDir: path.join(work, "keys"),
            import: { dir: path.join(shared, "genkey") },
            ownerGuid: "11111111-2222-3333-4444-555555555555",
            authTimestamp: "2026-01-01T00:00:00Z",
        });
        const ext = new SystemExtension("alpha", { name: "alpha", outputDir: path.join(work, "extensions"), source: { dir: path.join(shared, payload) }, signingKeys: keys });
        // dependsOn orders the builds, so the fault points come in one order every run.
        const uki = new KairosUkiImage("os", { outputDir: path.join(work, "uki"), source: { ociLayout: path.join(shared, "test-os.oci") }, signingKeys: keys, extendCmdline: cmdline }, { dependsOn: [ext] });
        const iso = new BootMedia("iso", { name: "kairos", outputDir: path.join(work, "media"), ukiImage: uki, signingKeys: keys, extensions: [ext], secureBootEnroll: "force" });
        const promoted = new PromotedArtifact("prod-alpha", { source: ext.path, expectedSha256: ext.sha256, outputDir: path.join(work, "prod"), kind: "sysext" }, { dependsOn: [iso] });
        return { iso: iso.path, promoted: promoted.path };
    };

    async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
        const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
        Object.assign(process.env, env);
        try {
            return await fn();
        } finally {
            for (const [k, v] of Object.entries(saved)) v === undefined ? delete process.env[k] : (process.env[k] = v);
        }
    }

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

    /** Every file under `dir` with its sha256, by relative path (walks the whole tree). */
    async function treeDigests(dir: string): Promise<Record<string, string>> {
        const files: string[] = [];
        const walk = (rel: string) => {
            for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
                const r = path.join(rel, e.name);
                if (e.isDirectory()) walk(r);
                else if (e.name !== ".kairos-keyset.json") files.push(r); // names its folder: differs between the two work folders

            }
        };
        walk("");
        return fileDigests(dir, files.sort());
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

    /** The ids of the fault points an undisturbed up passes, in order. */
    async function recordPoints(stack: EngineStack, file: string): Promise<string[]> {
        fs.rmSync(file, { force: true });
        await withEnv({ [RECORD_POINTS_ENV]: file }, () => stack.up());
        return fs.readFileSync(file, "utf8").trim().split("\n");
    }

    /**
     * Kills an up at each point in turn (each next up restarts the killed build and runs into the next
     * point), checks the state after each kill, then lets one up finish.
     */
    async function killAtEach(stack: EngineStack, points: string[], where: string, work: string, making: Record<string, string>): Promise<void> {
        for (const point of points) {
            let finished: string | undefined;
            await withEnv({ [KILL_AT_ENV]: point }, () => stack.up())
                .then((r) => (finished = `${JSON.stringify(r.summary.resourceChanges)}\n${r.stdout.slice(-3000)}`))
                .catch((e: Error) => assert.match(e.message, /error reading from server: EOF|transport is closing|connection refused|Unavailable/, `${where} ${point}: ${e.message.slice(-800)}`));
            assert.ok(finished === undefined, `${where}: the up finished without reaching "${point}": ${finished}`);
            if (point.startsWith("set aside ")) {
                // Killed between a folder swap's two renames: the recorded folder is aside, under a
                // staging name; the next operation's read puts it back (store/staging.ts).
                await stack.refresh();
            }
            await assertStateTrue(stack, `${where}, killed at "${point}"`, work, making);
        }
        await stack.up();
    }

    it("create and update, killed at every build step and rename: state stays true, the next up converges byte-identical, no debris", async () => {
        const ref = tempDir("kill-ref");
        const work = tempDir("kill-work");
        let variant = { payload: "payload-1", cmdline: "rd.debug" };
        const reference = await engineStack(program(ref, () => variant));
        const killed = await engineStack(program(work, () => variant));
        try {
            const createPoints = await recordPoints(reference, path.join(shared, "create-points"));
            const refCreated = await treeDigests(ref);
            variant = { payload: "payload-2", cmdline: "rd.debug quiet" };
            const updatePoints = await recordPoints(reference, path.join(shared, "update-points"));
            const refUpdated = await treeDigests(ref);
            for (const [points, kinds] of [[createPoints, ["SigningKeys", "SystemExtension", "KairosUkiImage", "BootMedia", "PromotedArtifact"]], [updatePoints, ["SystemExtension", "KairosUkiImage", "BootMedia", "PromotedArtifact"]]] as const) {
                for (const kind of kinds) assert.ok(points.some((p) => p.startsWith(kind)), `no fault point of ${kind} recorded: ${points.join(" | ")}`);
            }
            console.log(`      kill points: ${createPoints.length} in create, ${updatePoints.length} in update`);

            variant = { payload: "payload-1", cmdline: "rd.debug" };
            await killAtEach(killed, createPoints, "create", work, refCreated);
            assert.deepStrictEqual(await treeDigests(work), refCreated);
            assert.deepStrictEqual(debrisUnder(work), []);

            variant = { payload: "payload-2", cmdline: "rd.debug quiet" };
            await killAtEach(killed, updatePoints, "update", work, refUpdated);
            assert.deepStrictEqual(await treeDigests(work), refUpdated);
            assert.deepStrictEqual(debrisUnder(work), []);
            const again = await killed.up();
            assert.deepStrictEqual(again.summary.resourceChanges, { same: 6 });
        } finally {
            await reference.dispose();
            await killed.dispose();
        }
    });

    it("a key rotation killed at any step or rename leaves the recorded key set complete; the next up rotates", async () => {
        const work = tempDir("kill-rotate");
        let rotation = 0;
        const keysOnly = async () => {
            const keys = new SigningKeys("keys", { name: "rotate", outputDir: path.join(work, "keys"), rotation });
            return { fingerprint: keys.certificates.apply((c) => c.db.sha256Fingerprint) };
        };
        const stack = await engineStack(keysOnly);
        try {
            await stack.up();
            const before = await stack.resourceOutputs("keys");
            rotation = 1;
            const recorded = await recordPoints(stack, path.join(work, "points"));
            // Recording rotated the keys; a fresh stack rotates again from rotation 0 under the kills.
            await stack.dispose();
            fs.rmSync(path.join(work, "keys"), { recursive: true });
            rotation = 0;
            const killed = await engineStack(keysOnly);
            await killed.up();
            const old = await killed.resourceOutputs("keys");
            rotation = 1;
            const pick = (prefix: string) => recorded.filter((p) => p.startsWith(prefix));
            const spread = (xs: string[]) => [...new Set([xs[0], xs[Math.floor(xs.length / 2)], xs[xs.length - 1]])].filter(Boolean);
            const points = [...pick("SigningKeys"), ...spread(pick("retired ")), ...spread(pick("moved into keys: "))];
            assert.ok(pick("retired ").length >= 16 && pick("moved into keys: ").length >= 16, `rotation points: ${recorded.join(" | ")}`);
            for (const point of points) {
                await assert.rejects(withEnv({ [KILL_AT_ENV]: point }, () => killed.up()), `the up finished without reaching "${point}"`);
                await killed.refresh();
                const now = await killed.resourceOutputs("keys");
                assert.deepStrictEqual(now.drift, [], `killed at "${point}": the refresh found ${now.drift}`);
                assert.deepStrictEqual(await digestKeySet(old.keyDir), old.fileDigests, `killed at "${point}": the key folder is not the recorded set`);
                assert.ok(!fs.existsSync(path.join(old.keyDir, "retired")), `killed at "${point}": a retired folder was left`);
            }
            // Killed half-way, then the rotation is called off: a plain up (no refresh) still puts the recorded set back.
            await assert.rejects(withEnv({ [KILL_AT_ENV]: spread(pick("retired "))[1] }, () => killed.up()));
            rotation = 0;
            await killed.up();
            assert.deepStrictEqual(await digestKeySet(old.keyDir), old.fileDigests, "a called-off rotation left the key folder mixed");
            assert.ok(!fs.existsSync(path.join(old.keyDir, "retired")));
            rotation = 1;
            await killed.up();
            const rotated = await killed.resourceOutputs("keys");
            assert.strictEqual(rotated.rotation, 1);
            assert.notStrictEqual(rotated.certificates.db.sha256Fingerprint, old.certificates.db.sha256Fingerprint);
            assert.deepStrictEqual(await digestKeySet(rotated.keyDir), rotated.fileDigests);
            assert.deepStrictEqual(await digestKeySet(path.join(work, "keys", "retired", "rotation-0")), old.fileDigests, "the old set is retired whole");
            assert.deepStrictEqual(debrisUnder(work), []);
            assert.notStrictEqual(before.certificates.db.sha256Fingerprint, old.certificates.db.sha256Fingerprint);
            await killed.dispose();
        } finally {
            await stack.dispose();
        }
    });
});

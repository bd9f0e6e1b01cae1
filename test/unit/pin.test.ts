// The token PIN reaches only the processes that need it, never an input, a message or a leftover file:
// tools run through the process runner do not inherit KAIROS_PKCS11_PIN, every key input that carries a
// PIN in its URI is refused with the PIN redacted, and a killed signer's PIN file is swept by the next
// signing run.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { run } from "../../provider/toolkit/run";
import { PIN_ENV, explainTokenFailure, tokenKeyProblem, withPin } from "../../provider/toolkit/keys/pkcs11";
import { OWNERLESS_PIN_FOLDER_AGE_MS, pinCarryingInputs, pinEnv, pinFolderParent, redactPin, sweepStalePinFolders } from "../../provider/toolkit/pin";
import { startTimeOf } from "../../provider/toolkit/process-alive";
import { signingKeysHandler } from "../../provider/signing-keys";
import { systemExtensionHandler } from "../../provider/system-extension";
import { kairosUkiImageHandler } from "../../provider/kairos-uki-image";
import { promotedArtifactHandler } from "../../provider/promoted-artifact";
import { bootMediaHandler } from "../../provider/boot-media";
import type { Handler } from "../../provider/artifact-contract";

const PIN = "4711-not-for-your-eyes";

describe("the token PIN", () => {
    const before = process.env[PIN_ENV];
    beforeEach(() => {
        process.env[PIN_ENV] = PIN;
    });
    afterEach(() => {
        if (before === undefined) delete process.env[PIN_ENV];
        else process.env[PIN_ENV] = before;
    });

    describe("the process runner", () => {
        it("starts tools without KAIROS_PKCS11_PIN, though the provider's environment has it", async () => {
            const { stdout } = await run(["env"]);
            assert.ok(stdout.includes("PATH="), "the tool gets the rest of the environment");
            assert.ok(!stdout.includes(PIN_ENV), stdout);
            assert.ok(!stdout.includes(PIN));
        });

        it("passes it to a call that names it (pkcs11-tool --pin env:), and only to that call", async () => {
            assert.match((await run(["env"], { env: pinEnv() })).stdout, new RegExp(`^${PIN_ENV}=${PIN}$`, "m"));
            assert.ok(!(await run(["env"], { env: { OTHER: "1" } })).stdout.includes(PIN));
        });
    });

    describe("a key URI with a PIN in it", () => {
        const uris = [`pkcs11:token=prod;object=db;pin-value=${PIN}`, `pkcs11:token=prod;object=db?pin-value=${PIN}`, `pkcs11:token=prod;object=db;pin-source=file:/run/${PIN}`];
        const cert = "/nonexistent/db.pem";
        const cases: [string, Handler, (uri: string) => Record<string, unknown>, string][] = [
            ["SigningKeys.token", signingKeysHandler, (u) => ({ name: "k", outputDir: "/nonexistent/keys", token: u.replace(";object=db", "") }), "token"],
            ["SigningKeys.import.PK.key", signingKeysHandler, (u) => ({ name: "k", outputDir: "/nonexistent/keys", import: { PK: { key: u, certificate: cert }, KEK: { key: u, certificate: cert }, db: { key: u, certificate: cert } } }), "import.PK.key"],
            ["SigningKeys.import.tpmPcrKey", signingKeysHandler, (u) => ({ name: "k", outputDir: "/nonexistent/keys", import: { dir: "/nonexistent/import", tpmPcrKey: u } }), "import.tpmPcrKey"],
            ["SystemExtension.signing.key", systemExtensionHandler, (u) => ({ name: "x", outputDir: "/nonexistent/out", source: { dir: "/nonexistent/src" }, signing: { key: u, certificate: cert } }), "signing.key"],
            ["KairosUkiImage.signing.key", kairosUkiImageHandler, (u) => ({ outputDir: "/nonexistent/uki", source: { dir: "/nonexistent/os" }, signing: { key: u, certificate: cert }, pcrKey: "/nonexistent/pcr.pem" }), "signing.key"],
            ["KairosUkiImage.pcrKey", kairosUkiImageHandler, (u) => ({ outputDir: "/nonexistent/uki", source: { dir: "/nonexistent/os" }, signing: { key: "/nonexistent/db.key", certificate: cert }, pcrKey: u }), "pcrKey"],
            ["PromotedArtifact.resign.key", promotedArtifactHandler, (u) => ({ source: "/nonexistent/x.sysext.raw", expectedSha256: "0".repeat(64), outputDir: "/nonexistent/prod", kind: "sysext", resign: { key: u, certificate: cert } }), "resign.key"],
        ];
        for (const [what, handler, inputs, property] of cases) {
            it(`${what}: refused by check, naming the property, the PIN shown as ***, not in the inputs handed back`, async () => {
                for (const uri of uris) {
                    const { inputs: back, failures } = await handler.check({}, inputs(uri));
                    const here = (failures ?? []).filter((p) => p.property === property);
                    assert.equal(here.length, 1, `${uri}: ${JSON.stringify(failures)}`);
                    assert.match(here[0].reason, /carries a PIN.*give the PIN in KAIROS_PKCS11_PIN/);
                    assert.match(here[0].reason, /pin-(value|source)=\*\*\*/);
                    assert.ok(!JSON.stringify(failures).includes(PIN), JSON.stringify(failures));
                    assert.ok(!JSON.stringify(back).includes(PIN), "the inputs handed back hold no PIN");
                }
            });
        }

        it("BootMedia (no key inputs) is refused the same way wherever such a URI turns up", async () => {
            const { failures } = await bootMediaHandler.check({}, { name: "m", outputDir: "/nonexistent/m", uki: { efiFiles: [uris[0]], loaderEntries: [], systemdBoot: "/x" }, enrollKeys: { PK: "/a", KEK: "/b", db: "/c" } });
            assert.deepEqual(failures?.map((p) => p.property).filter((p) => p.startsWith("uki")), ["uki.efiFiles[0]"]);
            assert.ok(!JSON.stringify(failures).includes(PIN));
        });

        it("the toolkit's own refusals and token failure messages redact it", () => {
            for (const uri of uris) {
                const problem = tokenKeyProblem(uri)!;
                assert.match(problem, /carries a PIN/);
                assert.ok(!problem.includes(PIN), problem);
                const failure = explainTokenFailure(uri, new Error(`openssl: cannot load ${uri}: PIN incorrect`)).message;
                assert.ok(!failure.includes(PIN), failure);
            }
            assert.equal(redactPin(`pkcs11:token=a;pin-value=${PIN};object=b`), "pkcs11:token=a;pin-value=***;object=b");
            // the toolkit and check apply one rule: any case, in the path or after other query attributes
            for (const uri of [`pkcs11:token=a;object=b;PIN-VALUE=${PIN}`, `pkcs11:token=a;object=b?module-name=p11-kit-proxy.so&Pin-Source=file:/run/${PIN}`]) {
                assert.match(tokenKeyProblem(uri)!, /carries a PIN/, uri);
                assert.ok(!tokenKeyProblem(uri)!.includes(PIN));
                assert.deepEqual(pinCarryingInputs({ key: uri }).map((p) => p.property), ["key"], uri);
            }
        });
    });

    describe("PIN files of a killed signer", () => {
        it("are removed by the next signing run; a live process's PIN folder is left alone; the run's own is named with its pid and gone after", async () => {
            const dead = spawnSync("true").pid!;
            assert.ok(dead > 0);
            const parent = pinFolderParent();
            const stale = path.join(parent, `kairos-pin-${dead}-planted`);
            const others = path.join(parent, `kairos-pin-${process.pid}-planted-live`);
            for (const dir of [stale, others]) {
                fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
                fs.writeFileSync(path.join(dir, "pin"), PIN, { mode: 0o600 });
            }
            let during: string | undefined;
            try {
                await withPin("pkcs11:token=prod;object=db", async (uriWithPin) => {
                    during = /pin-source=file:(.*)\/pin$/.exec(uriWithPin)?.[1];
                    assert.ok(during && fs.existsSync(path.join(during, "pin")), uriWithPin);
                    assert.equal(fs.readFileSync(path.join(during, "pin"), "utf8"), PIN);
                    assert.equal(fs.statSync(path.join(during, "pin")).mode & 0o777, 0o600);
                });
                assert.ok(!fs.existsSync(stale), "the dead signer's PIN folder was swept");
                assert.ok(fs.existsSync(others), "a live process's PIN folder stays");
                assert.match(path.basename(during!), new RegExp(`^kairos-pin-${process.pid}-${startTimeOf(process.pid)}-`));
                assert.ok(!fs.existsSync(during!), "the run's own PIN folder is removed when it ends");
            } finally {
                fs.rmSync(stale, { recursive: true, force: true });
                fs.rmSync(others, { recursive: true, force: true });
            }
        });

        it("a reused pid does not keep a dead signer's folder, and an older version's folders (no start time, or no pid at all) are swept too", () => {
            const parent = pinFolderParent();
            const started = Number(startTimeOf(process.pid));
            assert.ok(started > 0);
            const longAgo = new Date(Date.now() - 2 * OWNERLESS_PIN_FOLDER_AGE_MS);
            const recently = new Date(Date.now() - OWNERLESS_PIN_FOLDER_AGE_MS / 2);
            const planted = {
                // this process's pid, another start time: a dead signer whose pid went to us
                reused: { name: `kairos-pin-${process.pid}-${started + 1}-Rz8kQ2`, at: undefined, swept: true },
                ours: { name: `kairos-pin-${process.pid}-${started}-Lv3nP0`, at: undefined, swept: false },
                // pid-only name written long before this process started: its signer is gone
                pidOnlyReused: { name: `kairos-pin-${process.pid}-Hx1yT7`, at: longAgo, swept: true },
                pidOnlyLive: { name: `kairos-pin-${process.ppid}-Wq4eR5`, at: undefined, swept: false },
                // no pid at all (mkdtemp's six characters): by age
                ownerlessOld: { name: "kairos-pin-Ab3dEf", at: longAgo, swept: true },
                ownerlessRecent: { name: "kairos-pin-Gh6jKl", at: recently, swept: false },
            };
            try {
                for (const { name, at } of Object.values(planted)) {
                    const dir = path.join(parent, name);
                    fs.mkdirSync(dir, { mode: 0o700 });
                    fs.writeFileSync(path.join(dir, "pin"), PIN, { mode: 0o600 });
                    if (at) fs.utimesSync(dir, at, at);
                }
                const removed = sweepStalePinFolders(parent);
                for (const [what, { name, swept }] of Object.entries(planted)) {
                    assert.equal(removed.includes(name), swept, `${what}: ${name} ${swept ? "swept" : "kept"}`);
                    assert.equal(fs.existsSync(path.join(parent, name)), !swept, `${what}: ${name}`);
                }
            } finally {
                for (const { name } of Object.values(planted)) fs.rmSync(path.join(parent, name), { recursive: true, force: true });
            }
        });
    });
});

// The artifact store under attack, against the real S3 server (SeaweedFS on 127.0.0.1): runner A builds
// and publishes honestly; then the test, as another writer of the bucket (raw S3 credentials, no
// publisher key unless it says so), rewrites manifests and objects, and runner B — a fresh project
// folder with the same inputs — must refuse what a build would not accept, write nothing outside its
// staging folders, delete nothing, and never upload a private key. The handlers are the ones the
// provider serves (store-wrapped), called as the engine calls them; a chain across resources passes
// one resource's outputs to the next as the engine would.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { handlerFor } from "../../provider/handlers";
import { SYSTEM_EXTENSION_TOKEN, systemExtensionHandler } from "../../provider/system-extension";
import { KAIROS_UKI_IMAGE_TOKEN } from "../../provider/kairos-uki-image";
import { BOOT_MEDIA_TOKEN } from "../../provider/boot-media";
import { PROMOTED_ARTIFACT_TOKEN } from "../../provider/promoted-artifact";
import { ArtifactStore } from "../../provider/store/artifact-store";
import { MAX_MANIFEST_BYTES, OUTPUT_ROOT } from "../../provider/store/manifest";
import { listIso, xorrisoArgs } from "../../provider/toolkit/boot/iso";
import { listEsp } from "../../provider/toolkit/boot/esp";
import { run } from "../../provider/toolkit/run";
import { signEfi } from "../../provider/toolkit/boot/uki";
import { HOST_EFI_DIR } from "../../provider/toolkit/tools";
import { sha256File } from "../../provider/toolkit/files";
import { checkVia, createVia } from "../helpers/handlers";
import { S3Server, startS3Server } from "../helpers/s3-server";
import { envelopePayload, handMadeManifest, s3Objects } from "../helpers/s3-objects";
import { makeCertificate } from "../helpers/pki";
import { makeGenkeyFolder } from "../helpers/genkey";
import { TEST_OS_RELEASE, buildTestOsRootfs } from "../helpers/test-os";
import { tempDir } from "../helpers/temp";
import { treeWithModes } from "../helpers/tree";
import { freshProjectFolder, runnerInputs } from "../helpers/hostile-runner";

const BUCKET = "hostile";
const PRIVATE = ["PK.key", "KEK.key", "db.key", "tpm2-pcr-private.pem"];

type Signer = { key: string; certificate: string };

describe("a hostile artifact store: nothing fetched is trusted until it passes a build's checks (SeaweedFS)", function () {
    this.timeout(600000);
    let s3: S3Server;
    let objects: ReturnType<typeof s3Objects>;
    let savedEnv: NodeJS.ProcessEnv;
    let shared: string;
    let publisher: Signer;
    let foreign: Signer;
    let probe: ArtifactStore;
    let runnerA: string;
    let n = 0;
    const honest = new Map<string, Buffer>(); // manifest key -> runner A's signed manifest
    const hashes: Record<string, string> = {};
    const handler = { ext: handlerFor(SYSTEM_EXTENSION_TOKEN), uki: handlerFor(KAIROS_UKI_IMAGE_TOKEN), media: handlerFor(BOOT_MEDIA_TOKEN), promoted: handlerFor(PROMOTED_ARTIFACT_TOKEN) };

    const spec = (extra: Record<string, unknown> = {}) => ({ bucket: BUCKET, endpoint: s3.endpoint, publisher, ...extra });
    const { extInputs, ukiInputs, mediaInputs, promotedInputs } = runnerInputs({ spec, shared: () => shared, hashes });
    const freshRunner = () => freshProjectFolder(shared, `hostile-runner-b-${++n}`);

    const manifestKeyOf = (token: string) => probe.manifestKey(token, hashes[token]);
    const manifestUriOf = (token: string) => probe.manifestUri(token, hashes[token]);
    /** Runner A's manifest for `token`, changed by `edit`, written back signed by `signer` (null: unsigned). */
    const forge = async (token: string, edit: (m: Record<string, any>) => void, signer: Signer | null = publisher) => {
        const m = envelopePayload(honest.get(manifestKeyOf(token))!);
        edit(m);
        await objects.put(BUCKET, manifestKeyOf(token), handMadeManifest(m, signer ?? undefined));
    };
    const restore = async () => {
        for (const [key, body] of honest) await objects.put(BUCKET, key, body);
    };
    const privateKeyDigests = async () => Promise.all(PRIVATE.map((f) => sha256File(path.join(shared, "keys", f))));
    const assertNoPrivateKeyUploaded = async () => {
        const stored = new Set(await objects.keys(BUCKET, "kairos/sha256/"));
        for (const d of await privateKeyDigests()) assert.ok(!stored.has(`kairos/sha256/${d}`), `a private key (sha256 ${d}) was uploaded`);
    };
    /** `attempt` must fail with a store refusal naming `uri` and matching `why`; the runner's folder is as it was. */
    const assertRefused = async (runner: string, attempt: () => Promise<unknown>, uri: string, why: RegExp) => {
        const before = treeWithModes(runner);
        const err = await attempt().then(() => undefined, (e) => e as Error);
        assert.ok(err instanceof Error, `refused (${why})`);
        assert.ok(err.message.includes(uri), `the refusal names ${uri}: ${err.message}`);
        assert.match(err.message, why);
        assert.deepStrictEqual(treeWithModes(runner), before, "nothing written, nothing deleted");
        await assertNoPrivateKeyUploaded();
    };
    const checked = checkVia;

    before(async function () {
        this.timeout(600000);
        s3 = await startS3Server({ buckets: [BUCKET] });
        objects = s3Objects(s3);
        savedEnv = { ...process.env };
        Object.assign(process.env, s3.env());
        shared = tempDir("hostile-shared");
        await makeGenkeyFolder(path.join(shared, "keys"), "hostile", { microsoftLists: false });
        publisher = { key: path.join(shared, "keys", "db.key"), certificate: path.join(shared, "keys", "db.pem") };
        fs.mkdirSync(path.join(shared, "foreign"));
        foreign = await makeCertificate(path.join(shared, "foreign"), "foreign");
        fs.mkdirSync(path.join(shared, "src", "tool", "usr", "bin"), { recursive: true });
        fs.writeFileSync(path.join(shared, "src", "tool", "usr", "bin", "tool"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
        fs.mkdirSync(path.join(shared, "release"));
        fs.writeFileSync(path.join(shared, "release", "notes.txt"), "tested in staging\n");
        hashes.notes = await sha256File(path.join(shared, "release", "notes.txt"));
        await buildTestOsRootfs(path.join(shared, "rootfs"));
        probe = new ArtifactStore(spec());

        // Runner A builds everything honestly and publishes it.
        runnerA = freshRunner();
        const ext = await createVia(handler.ext, extInputs(runnerA));
        const uki = await createVia(handler.uki, ukiInputs(runnerA));
        const media = await createVia(handler.media, mediaInputs(runnerA, uki.bootFiles, ext.path));
        const promoted = await createVia(handler.promoted, promotedInputs(runnerA));
        for (const [token, outs] of [[SYSTEM_EXTENSION_TOKEN, ext], [KAIROS_UKI_IMAGE_TOKEN, uki], [BOOT_MEDIA_TOKEN, media], [PROMOTED_ARTIFACT_TOKEN, promoted]] as const) {
            assert.strictEqual(outs.lastBuild.action, "created", token);
            hashes[token] = outs.inputHash;
            honest.set(probe.manifestKey(token, outs.inputHash), await objects.get(BUCKET, probe.manifestKey(token, outs.inputHash)));
        }
    });
    after(async () => {
        process.env = savedEnv;
        await s3?.stop();
    });
    afterEach(restore);

    it("runner A's manifests are signed envelopes that bind the resource and its input hash; an honest fetch on B is byte-identical", async () => {
        for (const [key, body] of honest) {
            const env = JSON.parse(body.toString());
            assert.strictEqual(env.format, "pulumi-kairos-signed-manifest/1", key);
            assert.strictEqual(envelopePayload(body).inputHash, key.split("/").pop()!.replace(/\.json$/, ""));
        }
        const b = freshRunner();
        const ext = await createVia(handler.ext, extInputs(b));
        assert.strictEqual(ext.lastBuild.action, "fetched");
        assert.strictEqual(await sha256File(ext.path), await sha256File(path.join(runnerA, "extensions", "tool.sysext.raw")));
        await assertNoPrivateKeyUploaded();
    });

    it("a manifest overriding inputs (outputDir, name, inputHash, path) changes none of them: outputs come from B's inputs and B's files", async () => {
        const elsewhere = tempDir("hostile-elsewhere");
        await forge(SYSTEM_EXTENSION_TOKEN, (m) => {
            Object.assign(m.outputs, { outputDir: elsewhere, name: "evil", inputHash: "0".repeat(64), path: `${OUTPUT_ROOT}/../../escaped.sysext.raw`, sha256: "f".repeat(64), rootHash: "0".repeat(64) });
        });
        const b = freshRunner();
        const inputs = await checked(handler.ext, extInputs(b));
        const outs = (await handler.ext.create(inputs)).outs;
        assert.strictEqual(outs.lastBuild.action, "fetched");
        assert.strictEqual(outs.outputDir, path.join(b, "extensions"));
        assert.strictEqual(outs.name, "tool");
        assert.strictEqual(outs.inputHash, inputs.inputHash);
        assert.strictEqual(outs.path, path.join(b, "extensions", "tool.sysext.raw"));
        assert.strictEqual(outs.sha256, await sha256File(outs.path));
        assert.notStrictEqual(outs.rootHash, "0".repeat(64));
        assert.deepStrictEqual(fs.readdirSync(elsewhere), []);
        assert.ok(!fs.existsSync(path.join(path.dirname(b), "escaped.sysext.raw")));
    });

    it("the key-exfiltration chain: a UKI manifest adding keys/db.key to bootFiles.efiFiles, then BootMedia: no key on the media, none uploaded", async () => {
        await forge(KAIROS_UKI_IMAGE_TOKEN, (m) => {
            m.outputs.bootFiles.efiFiles.push(`${OUTPUT_ROOT}/../keys/db.key`);
            m.outputs.bootFiles.efiFiles.push(`${OUTPUT_ROOT}/../keys/tpm2-pcr-private.pem`);
        });
        await objects.delete(BUCKET, manifestKeyOf(BOOT_MEDIA_TOKEN)); // B must build the media, and publish them
        const b = freshRunner();
        const ext = await createVia(handler.ext, extInputs(b));
        const uki = await createVia(handler.uki, ukiInputs(b));
        assert.strictEqual(uki.lastBuild.action, "fetched");
        assert.deepStrictEqual(uki.bootFiles.efiFiles, [path.join(b, "uki", "norole.efi")]);
        const media = await createVia(handler.media, mediaInputs(b, uki.bootFiles, ext.path));
        const esp = path.join(b, "esp.img");
        await run(["xorriso", "-osirrox", "on", "-indev", media.path, "-extract", "/efiboot.img", esp]);
        const onEsp = await listEsp(esp);
        fs.rmSync(esp);
        assert.ok(onEsp.includes("EFI/kairos/norole.efi"), onEsp.join(" "));
        assert.deepStrictEqual(onEsp.filter((f) => /db\.key|tpm2-pcr-private|\.key$|\.pem$/.test(f)), [], "no key file on the ESP");
        assert.deepStrictEqual((await listIso(media.path)).filter((f) => /\.key$|\.pem$/.test(f)), []);
        await assertNoPrivateKeyUploaded();
    });

    it("the destroy-deletes-the-project chain: a media manifest whose path is the project folder; delete removes the ISO only", async () => {
        await forge(BOOT_MEDIA_TOKEN, (m) => {
            m.outputs.path = `${OUTPUT_ROOT}/..`;
        });
        const b = freshRunner();
        const ext = await createVia(handler.ext, extInputs(b));
        const uki = await createVia(handler.uki, ukiInputs(b));
        const inputs = await checked(handler.media, mediaInputs(b, uki.bootFiles, ext.path));
        assert.strictEqual(inputs.inputHash, hashes[BOOT_MEDIA_TOKEN], "B's media inputs are A's");
        const made = await handler.media.create(inputs);
        assert.strictEqual(made.outs.lastBuild.action, "fetched");
        assert.strictEqual(made.outs.path, path.join(b, "media", "kairos.iso"));
        assert.strictEqual(made.id, made.outs.path);
        await handler.media.delete(made.id, made.outs);
        assert.ok(fs.existsSync(path.join(b, "Pulumi.yaml")), "the project folder survives");
        assert.ok(fs.existsSync(path.join(b, "keys", "db.key")), "and its keys");
        assert.ok(!fs.existsSync(path.join(b, "media", "kairos.iso")));
    });

    it("a forged ISO is refused: a hidden file in efiboot.img, or a second ESP partition appended for USB boots", async () => {
        const dir = tempDir("hostile-forged-iso");
        const honestIso = path.join(runnerA, "media", "kairos.iso");
        const espImg = path.join(dir, "efiboot.img");
        await run(["xorriso", "-osirrox", "on", "-indev", honestIso, "-extract", "/efiboot.img", espImg]);
        fs.chmodSync(espImg, 0o644);
        const rootFiles = [];
        for (const f of (await listIso(honestIso)).filter((f) => f !== "efiboot.img" && f !== "boot.catalog")) {
            const out = path.join(dir, "root", f);
            fs.mkdirSync(path.dirname(out), { recursive: true });
            await run(["xorriso", "-osirrox", "on", "-indev", honestIso, "-extract", `/${f}`, out]);
            rootFiles.push({ isoPath: f, source: out });
        }
        const mtools = { env: { MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null" } };
        const hiddenEsp = path.join(dir, "hidden-efiboot.img");
        fs.copyFileSync(espImg, hiddenEsp);
        fs.writeFileSync(path.join(dir, "payload.efi"), "a foreign binary\n");
        await run(["mcopy", "-i", hiddenEsp, path.join(dir, "payload.efi"), "::/EFI/BOOT/PAYLOAD.EFI"], mtools);
        await run(["mattrib", "-i", hiddenEsp, "+h", "+s", "::/EFI/BOOT/PAYLOAD.EFI"], mtools);
        const forgedIsos = {
            hidden: { args: xorrisoArgs({ espImage: hiddenEsp, rootFiles, volumeId: "UKI_ISO_INSTALL", out: path.join(dir, "hidden.iso"), epoch: 0, hybrid: true }), why: /it holds efiboot\.img:EFI\/BOOT\/PAYLOAD\.EFI, which no input puts there/ },
            appended: { args: [...xorrisoArgs({ espImage: espImg, rootFiles, volumeId: "UKI_ISO_INSTALL", out: path.join(dir, "appended.iso"), epoch: 0, hybrid: true }), "-append_partition", "3", "0xef", hiddenEsp], why: /its GPT has 2 EFI system partitions, not one/ },
        };
        for (const [name, forged] of Object.entries(forgedIsos)) {
            const iso = path.join(dir, `${name}.iso`);
            await run(["xorriso", ...forged.args]);
            const sha = await sha256File(iso);
            await objects.put(BUCKET, `kairos/sha256/${sha}`, fs.readFileSync(iso));
            await forge(BOOT_MEDIA_TOKEN, (m) => {
                m.entries = [{ path: "kairos.iso", sha256: sha, size: fs.statSync(iso).size, mode: 0o644 }];
            });
            const b = freshRunner();
            const ext = await createVia(handler.ext, extInputs(b));
            const uki = await createVia(handler.uki, ukiInputs(b));
            const inputs = await checked(handler.media, mediaInputs(b, uki.bootFiles, ext.path));
            await assertRefused(b, () => handler.media.create(inputs), manifestUriOf(BOOT_MEDIA_TOKEN), forged.why);
            await restore();
        }
    });

    it("a fetch never replaces a folder holding files the resource did not make (the build refuses it too)", async () => {
        const b = freshRunner();
        // An owned folder (its marker passes check) where someone has since put a file of their own.
        fs.copyFileSync(path.join(runnerA, "uki", ".kairos-uki-image"), path.join(b, "uki", ".kairos-uki-image"));
        fs.writeFileSync(path.join(b, "uki", "notes.txt"), "someone else's\n");
        const inputs = await checked(handler.uki, ukiInputs(b));
        await assert.rejects(handler.uki.create(inputs), /outputDir .*uki holds files KairosUkiImage did not make \(notes\.txt\)/);
        assert.deepStrictEqual(fs.readdirSync(path.join(b, "uki")).sort(), [".kairos-uki-image", "notes.txt"]);
        assert.strictEqual(fs.readFileSync(path.join(b, "uki", "notes.txt"), "utf8"), "someone else's\n");
    });

    it("an unsigned manifest is not used", async () => {
        await forge(SYSTEM_EXTENSION_TOKEN, () => undefined, null);
        const b = freshRunner();
        const inputs = await checked(handler.ext, extInputs(b));
        await assertRefused(b, () => handler.ext.create(inputs), manifestUriOf(SYSTEM_EXTENSION_TOKEN), /is not a signed manifest .*unsigned manifests are never read/);
    });

    it("a manifest signed by a foreign key is not used; with onCorrupt: rebuild the runner builds and overwrites it with a signed one", async () => {
        await forge(SYSTEM_EXTENSION_TOKEN, () => undefined, foreign);
        const b = freshRunner();
        const inputs = await checked(handler.ext, extInputs(b));
        await assertRefused(b, () => handler.ext.create(inputs), manifestUriOf(SYSTEM_EXTENSION_TOKEN), /is signed by another certificate .* not by the publisher certificate/);
        const rebuild = await checked(handler.ext, extInputs(b, { onCorrupt: "rebuild" }));
        const outs = (await handler.ext.create(rebuild)).outs;
        assert.strictEqual(outs.lastBuild.action, "created");
        const m = await probe.getManifest(SYSTEM_EXTENSION_TOKEN, hashes[SYSTEM_EXTENSION_TOKEN]);
        assert.strictEqual(m!.entries[0].sha256, outs.sha256, "the foreign manifest was overwritten by B's signed one");
    });

    it("a forged extension (honest-looking manifest signed by the publisher, image signed by a foreign key) is refused", async () => {
        const forgedDir = tempDir("hostile-forged-ext");
        const forged = await createVia(systemExtensionHandler, { name: "tool", outputDir: forgedDir, source: { dir: path.join(shared, "src", "tool") }, signing: foreign });
        await objects.put(BUCKET, `kairos/sha256/${forged.sha256}`, fs.readFileSync(forged.path));
        await forge(SYSTEM_EXTENSION_TOKEN, (m) => {
            m.entries = [{ path: "tool.sysext.raw", sha256: forged.sha256, size: forged.size, mode: 0o644 }];
            Object.assign(m.outputs, { sha256: forged.sha256, size: forged.size, rootHash: forged.rootHash, certificateFingerprint: forged.certificateFingerprint });
        });
        const b = freshRunner();
        const inputs = await checked(handler.ext, extInputs(b));
        await assertRefused(b, () => handler.ext.create(inputs), manifestUriOf(SYSTEM_EXTENSION_TOKEN), /not an image a build would accept/);
    });

    it("a forged systemd-boot (signed by a foreign key) in a publisher-signed UKI manifest is refused", async () => {
        const forged = path.join(tempDir("hostile-forged-efi"), "BOOTX64.EFI");
        await signEfi(path.join(HOST_EFI_DIR, "systemd-bootx64.efi"), forged, foreign.key, foreign.certificate);
        const sha = await sha256File(forged);
        await objects.put(BUCKET, `kairos/sha256/${sha}`, fs.readFileSync(forged));
        await forge(KAIROS_UKI_IMAGE_TOKEN, (m) => {
            m.entries = m.entries.map((e: { path: string }) => (e.path === "BOOTX64.EFI" ? { ...e, sha256: sha, size: fs.statSync(forged).size } : e));
        });
        const b = freshRunner();
        const inputs = await checked(handler.uki, ukiInputs(b));
        await assertRefused(b, () => handler.uki.create(inputs), manifestUriOf(KAIROS_UKI_IMAGE_TOKEN), /BOOTX64\.EFI does not verify against the db certificate .* \(untrusted-signer\)/);
    });

    it("an older db-signed UKI (another build: another command line) under the current input hash is refused; kairosRelease comes from the UKIs' .osrel, not the manifest", async () => {
        const olderDir = tempDir("hostile-older-uki");
        const older = await createVia(handler.uki, { ...ukiInputs(runnerA), outputDir: olderDir, extendCmdline: "console=ttyS0 rd.older.build", artifactStore: undefined });
        const swapped = older.ukis[0] as { fileName: string; path: string; sha256: string; size: number };
        await objects.put(BUCKET, `kairos/sha256/${swapped.sha256}`, fs.readFileSync(swapped.path));
        await forge(KAIROS_UKI_IMAGE_TOKEN, (m) => {
            m.entries = m.entries.map((e: { path: string }) => (e.path === `${swapped.fileName}.efi` ? { ...e, sha256: swapped.sha256, size: swapped.size } : e));
        });
        const b = freshRunner();
        const inputs = await checked(handler.uki, ukiInputs(b));
        await assertRefused(b, () => handler.uki.create(inputs), manifestUriOf(KAIROS_UKI_IMAGE_TOKEN), new RegExp(`${swapped.fileName}\\.efi carries the command line ".*rd\\.older\\.build.*", not .*: a UKI of another build`));

        await restore();
        await forge(KAIROS_UKI_IMAGE_TOKEN, (m) => {
            m.outputs.kairosRelease = "v9.9.9-forged";
        });
        const c = freshRunner();
        const outs = await createVia(handler.uki, ukiInputs(c));
        assert.strictEqual(outs.lastBuild.action, "fetched");
        assert.strictEqual(outs.kairosRelease, TEST_OS_RELEASE);
    });

    it("a runner without the publisher key records published: false; given the key later, diff asks for an update and the update publishes", async () => {
        const later = path.join(tempDir("hostile-later"), "later.txt");
        fs.writeFileSync(later, "published once the key is here\n");
        const b = freshRunner();
        const base = { ...promotedInputs(b), source: later, expectedSha256: await sha256File(later) };
        const keyless = await checked(handler.promoted, { ...base, artifactStore: spec({ publisher: { certificate: publisher.certificate } }) });
        const built = (await handler.promoted.create(keyless)).outs;
        assert.strictEqual(built.store.published, false);
        assert.strictEqual(await probe.getManifest(PROMOTED_ARTIFACT_TOKEN, built.inputHash), undefined);
        const withKey = await checked(handler.promoted, base);
        assert.strictEqual(withKey.inputHash, built.inputHash, "the publisher is not part of the input hash");
        assert.strictEqual((await handler.promoted.diff(built.path, built, withKey)).changes, true);
        const updated = (await handler.promoted.update(built.path, built, withKey)).outs;
        assert.strictEqual(updated.store.published, true);
        assert.strictEqual(updated.lastBuild.action, "published");
        assert.ok(await probe.getManifest(PROMOTED_ARTIFACT_TOKEN, built.inputHash), "the manifest is written now");
        assert.strictEqual((await handler.promoted.diff(built.path, updated, withKey)).changes, false);
    });

    it("a promoted artifact whose stored bytes are not expectedSha256 is refused", async () => {
        const other = path.join(tempDir("hostile-other"), "notes.txt");
        fs.writeFileSync(other, "never tested\n");
        const sha = await sha256File(other);
        await objects.put(BUCKET, `kairos/sha256/${sha}`, fs.readFileSync(other));
        await forge(PROMOTED_ARTIFACT_TOKEN, (m) => {
            m.entries = [{ path: "notes.txt", sha256: sha, size: fs.statSync(other).size, mode: 0o644 }];
            Object.assign(m.outputs, { sha256: sha });
        });
        const b = freshRunner();
        const inputs = await checked(handler.promoted, promotedInputs(b));
        await assertRefused(b, () => handler.promoted.create(inputs), manifestUriOf(PROMOTED_ARTIFACT_TOKEN), new RegExp(`its sha256 is ${sha}`));
    });

    it("a setuid mode in a manifest is masked: the image is placed 0755 at most", async () => {
        await forge(SYSTEM_EXTENSION_TOKEN, (m) => {
            m.entries[0].mode = 0o6755;
        });
        const b = freshRunner();
        const outs = await createVia(handler.ext, extInputs(b));
        assert.strictEqual(outs.lastBuild.action, "fetched");
        assert.strictEqual(fs.statSync(outs.path).mode & 0o7777, 0o755);
    });

    it("a sibling's file name, a planted lock folder and a staging leftover in a manifest are refused", async () => {
        const blob = envelopePayload(honest.get(manifestKeyOf(SYSTEM_EXTENSION_TOKEN))!).entries[0];
        const b = freshRunner();
        fs.writeFileSync(path.join(b, "extensions", "other.sysext.raw"), "another resource's image\n");
        const inputs = await checked(handler.ext, extInputs(b));
        const uri = manifestUriOf(SYSTEM_EXTENSION_TOKEN);
        await forge(SYSTEM_EXTENSION_TOKEN, (m) => m.entries.push({ ...blob, path: "other.sysext.raw" }));
        await assertRefused(b, () => handler.ext.create(inputs), uri, /not ours: other\.sysext\.raw/);
        await forge(SYSTEM_EXTENSION_TOKEN, (m) => m.entries.push({ ...blob, path: ".tool.sysext.raw.lock/holder" }));
        await assertRefused(b, () => handler.ext.create(inputs), uri, /\.tool\.sysext\.raw\.lock\/holder, a lock or staging name/);
        const ukiBlob = envelopePayload(honest.get(manifestKeyOf(KAIROS_UKI_IMAGE_TOKEN))!).entries.find((e: { path: string }) => e.path === "norole.efi");
        await forge(KAIROS_UKI_IMAGE_TOKEN, (m) => m.entries.push({ ...ukiBlob, path: ".uki.staging-1-abcdef.old/norole.efi" }));
        const ukiChecked = await checked(handler.uki, ukiInputs(b));
        await assertRefused(b, () => handler.uki.create(ukiChecked), manifestUriOf(KAIROS_UKI_IMAGE_TOKEN), /a lock or staging name/);
    });

    it("a file entry without a size, with a size that lies, or for an object larger than its size is refused before the download", async () => {
        const b = freshRunner();
        const inputs = await checked(handler.ext, extInputs(b));
        const uri = manifestUriOf(SYSTEM_EXTENSION_TOKEN);
        await forge(SYSTEM_EXTENSION_TOKEN, (m) => delete m.entries[0].size);
        await assertRefused(b, () => handler.ext.create(inputs), uri, /gives tool\.sysext\.raw no size/);
        await forge(SYSTEM_EXTENSION_TOKEN, (m) => (m.entries[0].size = 4096));
        await assertRefused(b, () => handler.ext.create(inputs), uri, /is damaged: the server holds \d+ bytes, but its name and manifest promise 4096 bytes/);
    });

    it("an oversize manifest is refused unread", async () => {
        await objects.put(BUCKET, manifestKeyOf(SYSTEM_EXTENSION_TOKEN), Buffer.alloc(MAX_MANIFEST_BYTES + 4096, 0x20));
        const b = freshRunner();
        const inputs = await checked(handler.ext, extInputs(b));
        await assertRefused(b, () => handler.ext.create(inputs), manifestUriOf(SYSTEM_EXTENSION_TOKEN), /over the \d+-byte manifest limit/);
    });

    it("a store without a publisher is an input error naming artifactStore.publisher", async () => {
        const b = freshRunner();
        const { failures } = await handler.ext.check({}, { ...extInputs(b), artifactStore: { bucket: BUCKET, endpoint: s3.endpoint } });
        assert.deepStrictEqual((failures ?? []).map((f: { property: string }) => f.property), ["artifactStore.publisher"]);
        assert.match(failures![0].reason, /is not set: every manifest in the store is signed/);
        const mismatched = await handler.ext.check({}, { ...extInputs(b), artifactStore: spec({ publisher: { key: foreign.key, certificate: publisher.certificate } }) });
        assert.deepStrictEqual((mismatched.failures ?? []).map((f: { property: string }) => f.property), ["artifactStore.publisher"]);
        assert.match(mismatched.failures![0].reason, /does not match the certificate/);
    });
});

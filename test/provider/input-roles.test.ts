// Every input of every resource in schema.json has a role in provider/validation/input-roles.ts, and the
// role is true of the code: each field is changed alone in a valid input set, the real check() computes
// the input hash, and diff() says what it replaces. A `hash` field must move the input hash (and the hash
// part the table names); a `none` or replace-only field must leave the hash as it was; a replace field
// must be in diff's replaces, and no other field may be. A new input nobody classified fails here, and so
// does a classified one without a perturbation below.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { loadPackageSchema } from "../../provider/validation/schema-validator";
import { INPUT_ROLES, InputRole } from "../../provider/validation/input-roles";
import type { Handler } from "../../provider/artifact-contract";
import { SIGNING_KEYS_TOKEN, signingKeysHandler } from "../../provider/signing-keys";
import { SYSTEM_EXTENSION_TOKEN, systemExtensionHandler } from "../../provider/system-extension";
import { KAIROS_UKI_IMAGE_TOKEN, kairosUkiImageHandler } from "../../provider/kairos-uki-image";
import { BOOT_MEDIA_TOKEN, bootMediaHandler } from "../../provider/boot-media";
import { PROMOTED_ARTIFACT_TOKEN, promotedArtifactHandler } from "../../provider/promoted-artifact";
import { SYSEXT_RELEASE_TOKEN, sysextReleaseHandler } from "../../provider/sysext-release";
import { EXTENSION_CATALOG_TOKEN, extensionCatalogHandler } from "../../provider/extension-catalog";
import { OS_RELEASE_TOKEN, osReleaseHandler } from "../../provider/os-release";
import { PROMOTED_RELEASE_TOKEN, promotedReleaseHandler } from "../../provider/promoted-release";
import { PIN_ENV } from "../../provider/toolkit/keys/pkcs11";
import { makeCertificate } from "../helpers/pki";
import { createVia } from "../helpers/handlers";
import { tempDir } from "../helpers/temp";
import { run } from "../../provider/toolkit/run";

type Inputs = Record<string, any>;
/** One field of the base inputs changed (only that field, or the inputs it needs to stay valid). */
type Perturbation = (base: Inputs) => Inputs;

const HANDLERS: Record<string, Handler> = {
    [SIGNING_KEYS_TOKEN]: signingKeysHandler,
    [SYSTEM_EXTENSION_TOKEN]: systemExtensionHandler,
    [KAIROS_UKI_IMAGE_TOKEN]: kairosUkiImageHandler,
    [BOOT_MEDIA_TOKEN]: bootMediaHandler,
    [PROMOTED_ARTIFACT_TOKEN]: promotedArtifactHandler,
    [SYSEXT_RELEASE_TOKEN]: sysextReleaseHandler,
    [EXTENSION_CATALOG_TOKEN]: extensionCatalogHandler,
    [OS_RELEASE_TOKEN]: osReleaseHandler,
    [PROMOTED_RELEASE_TOKEN]: promotedReleaseHandler,
};

const isHash = (r: InputRole): r is Extract<InputRole, { hash: unknown }> => "hash" in r;
const isReplace = (r: InputRole) => "replace" in r && r.replace === true;

describe("input roles: every input reaches the input hash, a replace, or is said not to matter", function () {
    this.timeout(120000);
    const schema = loadPackageSchema();
    let work: string;
    const f = (...p: string[]) => path.join(work, ...p);
    const write = (rel: string, content: string) => (fs.mkdirSync(path.dirname(f(rel)), { recursive: true }), fs.writeFileSync(f(rel), content), f(rel));
    const base: Record<string, Inputs> = {};
    const perturb: Record<string, Record<string, Perturbation>> = {};
    const pinBefore = process.env[PIN_ENV];

    before(async () => {
        work = tempDir("input-roles");
        const db = await makeCertificate(work, "db");
        const other = await makeCertificate(work, "other");
        write("src-a/usr/bin/tool", "tool 1\n");
        write("src-b/usr/bin/tool", "tool 2\n");
        write("os-a/etc/os-release", "ID=kairos\n");
        write("os-b/etc/os-release", "ID=kairos-2\n");
        write("splash.bmp", "BM not really\n");
        for (const n of ["config.yaml", "extra.txt"]) write(`files/${n}`, `${n}\n`);
        const store = { bucket: "elsewhere", endpoint: "http://127.0.0.1:9" };
        // A token key set is only checked in preview (no token is reached until the build); check wants the PIN.
        process.env[PIN_ENV] = "1234";

        base[SIGNING_KEYS_TOKEN] = { name: "roles", outputDir: f("keys") };
        perturb[SIGNING_KEYS_TOKEN] = {
            name: (b) => ({ ...b, name: "roles-2" }),
            outputDir: (b) => ({ ...b, outputDir: f("keys-2") }),
            keySize: (b) => ({ ...b, keySize: 3072 }),
            validityDays: (b) => ({ ...b, validityDays: 100 }),
            token: (b) => ({ ...b, token: "pkcs11:token=roles" }),
            import: (b) => ({ ...b, import: { PK: db, KEK: db, db } }),
            rotation: (b) => ({ ...b, rotation: 1 }),
            extraSignatureLists: (b) => ({ ...b, extraSignatureLists: { db: [f("files", "extra.txt")] } }),
            authTimestamp: (b) => ({ ...b, authTimestamp: "2030-01-01T00:00:00Z" }),
            ownerGuid: (b) => ({ ...b, ownerGuid: "12345678-1234-1234-1234-123456789abc" }),
            deleteOnDestroy: (b) => ({ ...b, deleteOnDestroy: true }),
            artifactStore: (b) => ({ ...b, artifactStore: store }),
        };

        base[SYSTEM_EXTENSION_TOKEN] = { name: "tool", outputDir: f("ext"), source: { dir: f("src-a") }, signing: db };
        perturb[SYSTEM_EXTENSION_TOKEN] = {
            name: (b) => ({ ...b, name: "tool-2" }),
            outputDir: (b) => ({ ...b, outputDir: f("ext-2") }),
            source: (b) => ({ ...b, source: { dir: f("src-b") } }),
            kind: (b) => ({ ...b, kind: "confext" }),
            arch: (b) => ({ ...b, arch: "arm64" }),
            layers: (b) => ({ ...b, layers: "all" }),
            withOpt: (b) => ({ ...b, withOpt: true }),
            dropDisallowedPaths: (b) => ({ ...b, dropDisallowedPaths: true }),
            release: (b) => ({ ...b, release: { versionId: "2" } }),
            compression: (b) => ({ ...b, compression: "lz4hc" }),
            signing: (b) => ({ ...b, signing: other }),
            sourceDateEpoch: (b) => ({ ...b, sourceDateEpoch: 1 }),
            artifactStore: (b) => ({ ...b, artifactStore: store }),
        };

        base[KAIROS_UKI_IMAGE_TOKEN] = { outputDir: f("uki"), source: { dir: f("os-a") }, signing: db, pcrKey: db.key };
        perturb[KAIROS_UKI_IMAGE_TOKEN] = {
            outputDir: (b) => ({ ...b, outputDir: f("uki-2") }),
            source: (b) => ({ ...b, source: { dir: f("os-b") } }),
            signing: (b) => ({ ...b, signing: other }),
            pcrKey: (b) => ({ ...b, pcrKey: other.key }),
            bootTitle: (b) => ({ ...b, bootTitle: "Edge" }),
            extendCmdline: (b) => ({ ...b, extendCmdline: "quiet" }),
            extraCmdlines: (b) => ({ ...b, extraCmdlines: ["console=ttyS0"] }),
            singleEntries: (b) => ({ ...b, singleEntries: [{ title: "Recovery", cmdline: "rd.recovery" }] }),
            includeVersionInConfig: (b) => ({ ...b, includeVersionInConfig: true }),
            includeCmdlineInConfig: (b) => ({ ...b, includeCmdlineInConfig: true }),
            loaderEntryKey: (b) => ({ ...b, loaderEntryKey: "efi" }),
            splash: (b) => ({ ...b, splash: f("splash.bmp") }),
            maxUkiSizeMB: (b) => ({ ...b, maxUkiSizeMB: 500 }),
            initrdCompressionLevel: (b) => ({ ...b, initrdCompressionLevel: 3 }),
            initrdWindowLog: (b) => ({ ...b, initrdWindowLog: 0 }),
            artifactStore: (b) => ({ ...b, artifactStore: store }),
        };

        // BootMedia checks what it is handed: the .auth files of a real key set, PEs signed by its db key, a
        // loader entry, and an extension signed by that db key. The PEs are the host's systemd-boot signed
        // under two names (check reads no UKI sections). db2.auth enrols the same db certificate with another
        // timestamp, so the media stay valid while the file's bytes change.
        const keys = await createVia(signingKeysHandler, { name: "roles-media", outputDir: f("media-keys") });
        const keys2 = await createVia(signingKeysHandler, { name: "roles-media", outputDir: f("media-keys-2"), import: { dir: f("media-keys") }, authTimestamp: "2031-01-01T00:00:00Z" });
        fs.copyFileSync(keys2.files.db.auth, f("files", "db2.auth"));
        const mediaSigner = { key: keys.files.db.key, certificate: keys.files.db.pem };
        for (const n of ["norole.efi", "other.efi", "BOOTX64.EFI"]) {
            fs.mkdirSync(f("files"), { recursive: true });
            await run(["sbsign", "--key", mediaSigner.key, "--cert", mediaSigner.certificate, "--output", f("files", n), "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"]);
        }
        write("files/norole.conf", "title Kairos\nsort-key norole-0\nefi /EFI/kairos/norole.efi\n");
        const ext = await createVia(systemExtensionHandler, { ...base[SYSTEM_EXTENSION_TOKEN], outputDir: f("media-ext"), signing: mediaSigner });
        const uki = { efiFiles: [f("files", "norole.efi")], loaderEntries: [f("files", "norole.conf")], systemdBoot: f("files", "BOOTX64.EFI") };
        const enrollKeys = { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth };
        base[BOOT_MEDIA_TOKEN] = { name: "media", outputDir: f("media"), uki, enrollKeys, extensions: [ext.path], secureBootEnroll: "force" };
        perturb[BOOT_MEDIA_TOKEN] = {
            name: (b) => ({ ...b, name: "media-2" }),
            outputDir: (b) => ({ ...b, outputDir: f("media-2") }),
            type: (b) => ({ ...b, type: "dir" }),
            uki: (b) => ({ ...b, uki: { ...b.uki, efiFiles: [f("files", "other.efi")] } }),
            enrollKeys: (b) => ({ ...b, enrollKeys: { ...b.enrollKeys, db: f("files", "db2.auth") } }),
            extensions: (b) => ({ ...b, extensions: [] }),
            espExtensions: (b) => ({ ...b, espExtensions: false }),
            cloudConfig: (b) => ({ ...b, cloudConfig: f("files", "config.yaml") }),
            overlayFiles: (b) => ({ ...b, overlayFiles: [{ source: f("files", "extra.txt"), path: "extra.txt" }] }),
            timeout: (b) => ({ ...b, timeout: 9 }),
            secureBootEnroll: (b) => ({ ...b, secureBootEnroll: "manual" }),
            consoleMode: (b) => ({ ...b, consoleMode: "auto" }),
            sourceDateEpoch: (b) => ({ ...b, sourceDateEpoch: 1700000000 }),
            artifactStore: (b) => ({ ...b, artifactStore: store }),
        };

        base[PROMOTED_ARTIFACT_TOKEN] = { source: ext.path, expectedSha256: ext.sha256, outputDir: f("prod"), kind: "sysext" };
        fs.mkdirSync(f("renamed"));
        fs.copyFileSync(ext.path, f("renamed", "tool-v2.sysext.raw"));
        perturb[PROMOTED_ARTIFACT_TOKEN] = {
            source: (b) => ({ ...b, source: f("renamed", "tool-v2.sysext.raw") }),
            expectedSha256: (b) => ({ ...b, expectedSha256: "0".repeat(64) }),
            outputDir: (b) => ({ ...b, outputDir: f("prod-2") }),
            kind: (b) => ({ ...b, kind: "file" }),
            resign: (b) => ({ ...b, resign: other }),
            fromStore: (b) => ({ ...b, fromStore: { bucket: "tested", endpoint: "http://127.0.0.1:9" } }),
            artifactStore: (b) => ({ ...b, artifactStore: store }),
        };

        // Releases: check() needs only files (nothing is pushed before create).
        const repository = "registry.example.com/kairos/tool";
        const digest = (c: string) => `sha256:${c.repeat(64)}`;
        const tested = `${repository}@${digest("a")}`;
        const otherExt = await createVia(systemExtensionHandler, { ...base[SYSTEM_EXTENSION_TOKEN], source: { dir: f("src-b") }, outputDir: f("media-ext-2"), signing: mediaSigner });
        fs.copyFileSync(ext.path, f("renamed", "tool.confext.raw"));
        base[SYSEXT_RELEASE_TOKEN] = { image: ext.path, name: "tool", version: "1.0.0", repository };
        perturb[SYSEXT_RELEASE_TOKEN] = {
            image: (b) => ({ ...b, image: otherExt.path }),
            name: (b) => ({ ...b, name: "tool2" }),
            version: (b) => ({ ...b, version: "1.0.1" }),
            arch: (b) => ({ ...b, arch: "arm64" }),
            kind: (b) => ({ ...b, kind: "confext", image: f("renamed", "tool.confext.raw") }),
            verifyWith: (b) => ({ ...b, verifyWith: db.certificate }),
            repository: (b) => ({ ...b, repository: `${repository}-2` }),
            tag: (b) => ({ ...b, tag: "stable" }),
            registry: (b) => ({ ...b, registry: { plainHttp: true } }),
            deleteOnDestroy: (b) => ({ ...b, deleteOnDestroy: true }),
        };
        const entry = { name: "tool", version: "1.0.0", arch: "amd64", kind: "sysext", reference: tested };
        const entry2 = { ...entry, version: "1.0.1", reference: `${repository}@${digest("b")}` };
        base[EXTENSION_CATALOG_TOKEN] = { entries: [entry, entry2], outputDir: f("catalog"), repository };
        perturb[EXTENSION_CATALOG_TOKEN] = {
            entries: (b) => ({ ...b, entries: [...b.entries, { ...entry, version: "1.0.2", reference: `${repository}@${digest("c")}` }] }),
            repo: (b) => ({ ...b, repo: "acme/extensions" }),
            latest: (b) => ({ ...b, latest: { tool: "1.0.0" } }),
            outputDir: (b) => ({ ...b, outputDir: f("catalog-2") }),
            repository: (b) => ({ ...b, repository: `${repository}-catalog` }),
            tag: (b) => ({ ...b, tag: "stable" }),
            registry: (b) => ({ ...b, registry: { plainHttp: true } }),
            deleteOnDestroy: (b) => ({ ...b, deleteOnDestroy: true }),
        };
        write("files/norole-2.conf", "title Kairos 2\nsort-key norole-0\nefi /EFI/kairos/norole.efi\n");
        base[OS_RELEASE_TOKEN] = { uki, outputDir: f("os-release"), repository };
        perturb[OS_RELEASE_TOKEN] = {
            uki: (b) => ({ ...b, uki: { ...b.uki, loaderEntries: [f("files", "norole-2.conf")] } }),
            enrollKeys: (b) => ({ ...b, enrollKeys }),
            verifyWith: (b) => ({ ...b, verifyWith: db.certificate }),
            outputDir: (b) => ({ ...b, outputDir: f("os-release-2") }),
            name: (b) => ({ ...b, name: "edge-os" }),
            arch: (b) => ({ ...b, arch: "arm64" }),
            repository: (b) => ({ ...b, repository: `${repository}-os` }),
            tag: (b) => ({ ...b, tag: "2" }),
            registry: (b) => ({ ...b, registry: { plainHttp: true } }),
            deleteOnDestroy: (b) => ({ ...b, deleteOnDestroy: true }),
        };
        base[PROMOTED_RELEASE_TOKEN] = { source: tested, repository: "prod.example.com/kairos/tool" };
        perturb[PROMOTED_RELEASE_TOKEN] = {
            source: (b) => ({ ...b, source: `${repository}@${digest("c")}` }),
            repository: (b) => ({ ...b, repository: "prod.example.com/kairos/tool-2" }),
            tag: (b) => ({ ...b, tag: "stable" }),
            entry: (b) => ({ ...b, entry: { name: "tool", version: "1.0.0", arch: "amd64", kind: "sysext" } }),
            sourceRegistry: (b) => ({ ...b, sourceRegistry: { plainHttp: true } }),
            registry: (b) => ({ ...b, registry: { plainHttp: true } }),
            deleteOnDestroy: (b) => ({ ...b, deleteOnDestroy: true }),
        };
    });

    after(() => {
        if (pinBefore === undefined) delete process.env[PIN_ENV];
        else process.env[PIN_ENV] = pinBefore;
    });

    async function checked(token: string, news: Inputs): Promise<Inputs> {
        const { inputs, failures } = await HANDLERS[token].check({}, news);
        assert.deepEqual(failures ?? [], [], `${token}: the perturbed inputs must be valid: ${JSON.stringify(failures)}`);
        return inputs;
    }

    it("the table classifies exactly the inputs schema.json declares, for every resource, with reasons", () => {
        assert.deepEqual(Object.keys(INPUT_ROLES).sort(), Object.keys(schema.resources).sort());
        for (const [token, resource] of Object.entries<any>(schema.resources)) {
            const declared = Object.keys(resource.inputProperties).sort();
            const classified = Object.keys(INPUT_ROLES[token]).sort();
            assert.deepEqual(declared.filter((p) => !classified.includes(p)), [], `${token}: inputs with no role in input-roles.ts`);
            assert.deepEqual(classified.filter((p) => !declared.includes(p)), [], `${token}: roles for inputs schema.json does not have`);
            for (const [field, role] of Object.entries(INPUT_ROLES[token])) {
                if ("none" in role) assert.ok(role.none.length > 20, `${token}.${field}: a none role says why`);
                if ("notHashed" in role) assert.ok(role.notHashed.length > 20, `${token}.${field}: a replace-only role says why it is not hashed`);
                if (isHash(role) && role.hash.digest !== undefined) assert.ok(role.hash.digest.length > 10, `${token}.${field}: a digest says what is hashed`);
            }
        }
    });

    for (const token of Object.keys(HANDLERS)) {
        it(`${token.split(":").pop()}: each field changed alone moves the hash, or a replace, exactly as the table says`, async () => {
            const h = HANDLERS[token];
            const olds: Inputs = { ...(await checked(token, base[token])), drift: [] };
            const missing = Object.keys(INPUT_ROLES[token]).filter((field) => !perturb[token][field]);
            assert.deepEqual(missing, [], "every classified input has a perturbation in this test");
            for (const [field, role] of Object.entries(INPUT_ROLES[token])) {
                const changed = perturb[token][field](base[token]);
                assert.notDeepEqual(changed[field], base[token][field], `${field}: the perturbation changes the field`);
                const news = await checked(token, changed);
                const { replaces = [] } = await h.diff("id", olds, news);
                if (isHash(role)) {
                    assert.notEqual(news.inputHash, olds.inputHash, `${token}.${field} is a hash field: changing it must change the input hash`);
                    assert.ok(role.hash.part in olds.hashParts, `${token}.${field}: the table names hash part "${role.hash.part}", which the hash does not have (${Object.keys(olds.hashParts)})`);
                    assert.notEqual(news.hashParts[role.hash.part], olds.hashParts[role.hash.part], `${token}.${field}: hash part "${role.hash.part}" must change`);
                } else {
                    assert.equal(news.inputHash, olds.inputHash, `${token}.${field} is not a hash field: the input hash must stay`);
                }
                if (isReplace(role)) assert.ok(replaces.includes(field), `${token}.${field} is a replace field: diff must replace (got ${JSON.stringify(replaces)})`);
                else assert.ok(!replaces.includes(field), `${token}.${field} is not a replace field, but diff replaces it`);
            }
        });
    }

    it("BootMedia: media that differ only in name, or only in type, have different input hashes (they are different artifacts)", async () => {
        const b = base[BOOT_MEDIA_TOKEN];
        const hashes = await Promise.all([b, { ...b, name: "media-2" }, { ...b, type: "dir" }, { ...b, type: "dir", name: "media-2" }].map(async (i) => (await checked(BOOT_MEDIA_TOKEN, i)).inputHash));
        assert.equal(new Set(hashes).size, 4, JSON.stringify(hashes));
    });

    it("PromotedArtifact: the tested file under another name is another artifact; the same name in another folder is the same one", async () => {
        const b = base[PROMOTED_ARTIFACT_TOKEN];
        fs.mkdirSync(f("moved"));
        fs.copyFileSync(b.source, f("moved", path.basename(b.source)));
        const [here, moved, renamed] = await Promise.all([b, { ...b, source: f("moved", path.basename(b.source)) }, { ...b, source: f("renamed", "tool-v2.sysext.raw") }].map((i) => checked(PROMOTED_ARTIFACT_TOKEN, i)));
        assert.equal(moved.inputHash, here.inputHash, "where the tested file lives is not what is promoted");
        assert.notEqual(renamed.inputHash, here.inputHash, "the promoted file's name is");
        assert.deepEqual((await promotedArtifactHandler.diff("id", { ...here, drift: [] }, moved)).replaces, []);
    });
});

// The input hash is the artifact store's manifest key, so two resources whose artifacts differ only in
// their file name must not share a manifest: before PromotedArtifact's hash held the file name, the
// second promotion of the same tested bytes under another name fetched the first one's manifest, got
// the first one's file as its `path`, and destroying it deleted the first one's artifact; BootMedia
// without name and type in its hash did the same with ISOs. Here, against the real S3 server, each
// resource gets its own file, and destroying one leaves the other.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { handlerFor } from "../../provider/handlers";
import { PROMOTED_ARTIFACT_TOKEN } from "../../provider/promoted-artifact";
import { SIGNING_KEYS_TOKEN } from "../../provider/signing-keys";
import { SYSTEM_EXTENSION_TOKEN } from "../../provider/system-extension";
import { KAIROS_UKI_IMAGE_TOKEN } from "../../provider/kairos-uki-image";
import { BOOT_MEDIA_TOKEN } from "../../provider/boot-media";
import { buildTestOsRootfs } from "../helpers/test-os";
import { sha256File } from "../../provider/toolkit/files";
import { S3Server, startS3Server } from "../helpers/s3-server";
import { tempDir } from "../helpers/temp";
import { makeCertificate } from "../helpers/pki";

describe("the input hash names the artifact: no two resources share a stored manifest", function () {
    this.timeout(300000);
    let s3: S3Server;
    let savedEnv: NodeJS.ProcessEnv;

    before(async () => {
        s3 = await startS3Server({ buckets: ["identity"] });
        savedEnv = { ...process.env };
        Object.assign(process.env, s3.env());
    });
    after(async () => {
        process.env = savedEnv;
        await s3?.stop();
    });

    async function createChecked(token: string, news: Record<string, unknown>): Promise<{ inputs: any; outs: any }> {
        const h = handlerFor(token);
        const { inputs, failures } = await h.check({}, news);
        assert.deepEqual(failures ?? [], [], JSON.stringify(failures));
        return { inputs, outs: (await h.create(inputs)).outs };
    }

    it("BootMedia: media that differ only in name or type are their own artifacts; destroying one leaves the other's ISO", async () => {
        const work = tempDir("store-identity-media");
        const rootfs = path.join(work, "rootfs");
        await buildTestOsRootfs(rootfs);
        fs.mkdirSync(path.join(work, "ext-src", "usr", "bin"), { recursive: true });
        fs.writeFileSync(path.join(work, "ext-src", "usr", "bin", "tool"), "tool\n");
        const keys = (await createChecked(SIGNING_KEYS_TOKEN, { name: "identity", outputDir: path.join(work, "keys") })).outs;
        const signing = { key: keys.files.db.key, certificate: keys.files.db.pem };
        const artifactStore = { bucket: "identity", endpoint: s3.endpoint, publisher: signing };
        const ext = (await createChecked(SYSTEM_EXTENSION_TOKEN, { name: "tool", outputDir: path.join(work, "ext"), source: { dir: path.join(work, "ext-src") }, signing })).outs;
        const uki = (await createChecked(KAIROS_UKI_IMAGE_TOKEN, { outputDir: path.join(work, "uki"), source: { dir: rootfs }, signing, pcrKey: keys.tpmPcrKeyFile })).outs;
        const media = (name: string, type: "iso" | "dir", outputDir: string) => createChecked(BOOT_MEDIA_TOKEN, {
            name, type, outputDir, uki: uki.bootFiles, enrollKeys: { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth },
            extensions: [ext.path], secureBootEnroll: "force", artifactStore,
        });
        const a = await media("kairos", "iso", path.join(work, "media"));
        const b = await media("rescue", "iso", path.join(work, "media"));
        const c = await media("kairos", "dir", path.join(work, "media-dir"));
        assert.equal(new Set([a, b, c].map((m) => m.inputs.inputHash)).size, 3);
        assert.equal(a.outs.path, path.join(work, "media", "kairos.iso"));
        assert.equal(b.outs.path, path.join(work, "media", "rescue.iso"), "the second ISO is its own file");
        assert.equal(b.outs.lastBuild.action, "created");
        assert.equal(c.outs.path, path.join(work, "media-dir", "kairos"));
        assert.ok(fs.statSync(c.outs.path).isDirectory());
        assert.ok(fs.existsSync(path.join(c.outs.path, "EFI", "BOOT", "BOOTX64.EFI")), "a dir media holds the ESP tree");
        assert.ok(!fs.readdirSync(c.outs.path).some((n) => n.endsWith(".iso")), "a dir media does not get another media's ISO");

        await handlerFor(BOOT_MEDIA_TOKEN).delete(b.outs.path, b.outs);
        assert.ok(fs.existsSync(a.outs.path), "destroying one media leaves the other's ISO");
        assert.ok(!fs.existsSync(b.outs.path));
    });

    it("PromotedArtifact: the same tested bytes under two names are two files; destroying one leaves the other", async () => {
        const work = tempDir("store-identity");
        const h = handlerFor(PROMOTED_ARTIFACT_TOKEN);
        const artifactStore = { bucket: "identity", endpoint: s3.endpoint, publisher: await makeCertificate(work, "publisher") };
        const tested = (name: string) => {
            fs.mkdirSync(path.join(work, "tested"), { recursive: true });
            fs.writeFileSync(path.join(work, "tested", name), "#cloud-config\nhostname: edge\n");
            return path.join(work, "tested", name);
        };
        const promote = async (name: string) => {
            const source = tested(name);
            const { inputs, failures } = await h.check({}, { source, expectedSha256: await sha256File(source), outputDir: path.join(work, "prod"), kind: "file", artifactStore });
            assert.deepEqual(failures ?? [], []);
            return { inputs, outs: (await h.create(inputs)).outs };
        };
        const a = await promote("edge-a.yaml");
        const b = await promote("edge-b.yaml");
        assert.notEqual(b.inputs.inputHash, a.inputs.inputHash);
        assert.equal(a.outs.path, path.join(work, "prod", "edge-a.yaml"));
        assert.equal(b.outs.path, path.join(work, "prod", "edge-b.yaml"), "the second promotion is its own file, not the first one's");
        assert.equal(b.outs.lastBuild.action, "created", "built, not fetched from the first one's manifest");
        assert.notEqual(b.outs.store.manifest, a.outs.store.manifest);
        assert.deepEqual(fs.readdirSync(path.join(work, "prod")).sort(), ["edge-a.yaml", "edge-b.yaml"]);

        await h.delete(b.outs.path, b.outs);
        assert.ok(fs.existsSync(a.outs.path), "destroying the second promotion leaves the first one's file");
        assert.ok(!fs.existsSync(b.outs.path));

        // The same name again (another runner with an empty disk) is the same artifact: fetched, not rebuilt.
        fs.rmSync(path.join(work, "prod"), { recursive: true });
        const again = await promote("edge-a.yaml");
        assert.equal(again.inputs.inputHash, a.inputs.inputHash);
        assert.equal(again.outs.lastBuild.action, "fetched");
        assert.equal(again.outs.path, a.outs.path);
    });
});

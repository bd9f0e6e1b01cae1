// The input hash is the artifact store's manifest key, so two resources whose artifacts differ only in
// their file name must not share a manifest: before PromotedArtifact's hash held the file name, the
// second promotion of the same tested bytes under another name fetched the first one's manifest, got
// the first one's file as its `path`, and destroying it deleted the first one's artifact. Here, against
// the real S3 server, each promotion gets its own file, and destroying one leaves the other.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { handlerFor } from "../../provider/handlers";
import { PROMOTED_ARTIFACT_TOKEN } from "../../provider/promoted-artifact";
import { sha256File } from "../../provider/toolkit/files";
import { S3Server, startS3Server } from "../helpers/s3-server";
import { tempDir } from "../helpers/temp";

describe("the input hash names the artifact: no two resources share a stored manifest", function () {
    this.timeout(120000);
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

    it("PromotedArtifact: the same tested bytes under two names are two files; destroying one leaves the other", async () => {
        const work = tempDir("store-identity");
        const h = handlerFor(PROMOTED_ARTIFACT_TOKEN);
        const artifactStore = { bucket: "identity", endpoint: s3.endpoint };
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

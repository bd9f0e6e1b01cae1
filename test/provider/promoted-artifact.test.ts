// PromotedArtifact ships only the tested bytes: the source is hashed before the copy and the copy is
// hashed again before it is moved into place, so a file that changes mid-copy is never promoted.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { promotedArtifactHandler as handler } from "../../provider/promoted-artifact";
import { sha256File } from "../../provider/toolkit/files";
import { createVia } from "../helpers/handlers";
import { tempDir } from "../helpers/temp";

describe("PromotedArtifact handler: the copy is checked, not only the source", function () {
    this.timeout(60000);

    it("refuses a copy whose bytes differ from the tested ones, and promotes nothing", async () => {
        const root = tempDir("promote");
        const source = path.join(root, "tested", "cloud-config.yaml");
        fs.mkdirSync(path.dirname(source));
        fs.writeFileSync(source, "#cloud-config\nhostname: edge\n");
        const expectedSha256 = await sha256File(source);
        const good = await createVia(handler, { source, expectedSha256, outputDir: path.join(root, "prod-a"), kind: "file" });
        assert.equal(good.sha256, expectedSha256);

        // the bytes change between the verification and the copy (a concurrent writer, a failing disk);
        // the provider reads fs.copyFileSync from the module object at call time, so patch that object
        const nodeFs: { copyFileSync: typeof fs.copyFileSync } = require("fs");
        const copyFileSync = nodeFs.copyFileSync;
        nodeFs.copyFileSync = ((from: fs.PathLike, to: fs.PathLike) => {
            copyFileSync(from, to);
            fs.appendFileSync(to, "changed mid-copy\n");
        }) as typeof fs.copyFileSync;
        try {
            const { inputs } = await handler.check({}, { source, expectedSha256, outputDir: path.join(root, "prod-b"), kind: "file" });
            await assert.rejects(handler.create(inputs), /the copy of .*cloud-config\.yaml has sha256 [0-9a-f]{64}, not the tested [0-9a-f]{64}.*nothing was promoted/);
        } finally {
            nodeFs.copyFileSync = copyFileSync;
        }
        assert.ok(!fs.existsSync(path.join(root, "prod-b", "cloud-config.yaml")), "nothing promoted");
        assert.deepEqual(fs.existsSync(path.join(root, "prod-b")) ? fs.readdirSync(path.join(root, "prod-b")) : [], []);
        assert.equal(await sha256File(good.path), expectedSha256, "the earlier promotion is intact");
    });
});

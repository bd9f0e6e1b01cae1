// buildDockerfile against two real buildkitd daemons (unix sockets, separate state): the same context
// gives the same OCI tarball and layer digests on either, cached or not, whatever the files' mtimes
// (SOURCE_DATE_EPOCH + rewrite-timestamp); the step counts tell a cold build from a cached one; and
// the digest preview computes follows what is built, not how.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { buildDockerfile, dockerfileDigest, stepCounts } from "../../../provider/toolkit/source/dockerfile-build";
import { openImage } from "../../../provider/toolkit/source/oci-image";
import { sha256File } from "../../../provider/toolkit/files";
import { startBuildkitd, Buildkitd } from "../../../scripts/lib/buildkit";
import { tempDir } from "../../helpers/temp";

const DOCKERFILE = [
    "FROM scratch AS files",
    "COPY usr /usr",
    "FROM scratch",
    "COPY --from=files /usr /usr",
    "",
].join("\n");

function writeContext(dir: string, mtime: number): string {
    fs.mkdirSync(path.join(dir, "usr/local/bin"), { recursive: true });
    fs.writeFileSync(path.join(dir, "Dockerfile"), DOCKERFILE);
    fs.writeFileSync(path.join(dir, "usr/local/bin/hello"), "#!/bin/sh\necho hello\n", { mode: 0o755 });
    for (const p of ["usr/local/bin/hello", "usr/local/bin", "usr/local", "usr"]) fs.utimesSync(path.join(dir, p), mtime, mtime);
    return dir;
}

describe("buildDockerfile (real buildkitd)", function () {
    this.timeout(180000);
    let a: Buildkitd;
    let b: Buildkitd;
    let work: string;

    before(async () => {
        work = tempDir("dockerfile-build");
        [a, b] = await Promise.all([startBuildkitd(), startBuildkitd()]);
    });
    after(async () => {
        await a?.stop();
        await b?.stop();
    });

    const build = (daemon: Buildkitd, context: string, out: string, sourceDateEpoch = 0) => {
        fs.mkdirSync(out, { recursive: true });
        return buildDockerfile({ context, buildkitHost: daemon.address }, { platform: "linux/amd64", sourceDateEpoch, workDir: out });
    };

    it("gives byte-identical images on two daemons, cold and cached, from contexts whose mtimes differ", async () => {
        const old = writeContext(path.join(work, "ctx-old"), 1000000000);
        const fresh = writeContext(path.join(work, "ctx-new"), 1700000000);
        const first = await build(a, old, path.join(work, "a1"));
        const cached = await build(a, old, path.join(work, "a2"));
        const other = await build(b, fresh, path.join(work, "b1"));
        assert.ok(first.cachedSteps < first.steps, `a cold daemon runs steps: ${JSON.stringify(first)}`);
        assert.equal(cached.cachedSteps, cached.steps, `the second build is all cache: ${JSON.stringify(cached)}`);
        const sums = await Promise.all([first, cached, other].map((r) => sha256File(r.ociArchive)));
        assert.equal(sums[1], sums[0]);
        assert.equal(sums[2], sums[0]);
        const image = await openImage(first.ociArchive, { arch: "amd64" });
        assert.equal(image.layers.length, 1, "FROM scratch + one COPY: one layer");
    });

    it("SOURCE_DATE_EPOCH is what the timestamps become: another epoch, another layer", async () => {
        const ctx = writeContext(path.join(work, "ctx-epoch"), 1000000000);
        const zero = await openImage((await build(a, ctx, path.join(work, "e0"))).ociArchive, { arch: "amd64" });
        const later = await openImage((await build(a, ctx, path.join(work, "e1"), 1700000000)).ociArchive, { arch: "amd64" });
        assert.notEqual(later.layers[0].diffId, zero.layers[0].diffId);
    });

    it("digests the context's content, the Dockerfile, target, args and platform; not mtimes or the daemon", async () => {
        const one = writeContext(path.join(work, "d1"), 1000000000);
        const two = writeContext(path.join(work, "d2"), 1700000000);
        const base = await dockerfileDigest({ context: one }, "linux/amd64");
        assert.equal(await dockerfileDigest({ context: two, buildkitHost: "tcp://elsewhere:1234" }, "linux/amd64"), base);
        assert.notEqual(await dockerfileDigest({ context: one }, "linux/arm64"), base);
        assert.notEqual(await dockerfileDigest({ context: one, target: "files" }, "linux/amd64"), base);
        assert.notEqual(await dockerfileDigest({ context: one, buildArgs: { A: "1" } }, "linux/amd64"), base);
        fs.appendFileSync(path.join(two, "Dockerfile"), "# a comment\n");
        assert.notEqual(await dockerfileDigest({ context: two }, "linux/amd64"), base);
    });

    it("counts steps and cache hits from buildctl's plain progress", () => {
        const progress = [
            "#1 [internal] load build definition from Dockerfile",
            "#1 DONE 0.0s",
            "#4 [builder 1/3] FROM docker.io/library/debian:bookworm",
            "#5 [builder 2/3] RUN apt-get update",
            "#5 CACHED",
            "#6 [builder 3/3] COPY k3s /tmp/k3s",
            "#6 DONE 0.1s",
            "#7 [stage-1 1/1] COPY --from=builder /k3s /",
            "#7 CACHED",
        ].join("\n");
        assert.deepEqual(stepCounts(progress), { steps: 4, cachedSteps: 2 });
    });
});

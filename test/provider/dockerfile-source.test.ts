// SystemExtension's `dockerfile` source with a real BuildKit: the seed-shaped examples/k3s-sysext/Dockerfile
// (a RUN apt-get against Debian's archive, RUN heredocs, FROM scratch + COPY --from) built by a local
// buildkitd on a unix socket and by a "remote" one on loopback TCP with mTLS, which starts empty and takes
// the first one's cache from the registry. Both signed extensions must be byte-identical to each other and
// to the extension built from the same tree as a `dir` source. Then the errors: each names the Dockerfile
// line or the daemon, and leaves the previous extension as it was.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { systemExtensionHandler as handler } from "../../provider/system-extension";
import { sha256File } from "../../provider/toolkit/files";
import { withLogSink } from "../../provider/build-log";
import { tempDir } from "../helpers/engine";
import { makeCertificate } from "../helpers/pki";
import { extractRootTree, listTree, veritySignatureVerifies } from "../helpers/ddi-inspect";
import { startDockerfileServices, startBuildkitd, Buildkitd, DockerfileServices } from "../../scripts/lib/buildkit";
import { k3sDockerfileBuild, K3S_DOCKERFILE } from "../../examples/offline-demo/payloads";

/** The tree the Dockerfile lays out, written by hand: what a `dir` source user would keep in git. */
function k3sTreeByHand(root: string, k3sBinary: string): string {
    const dockerfile = fs.readFileSync(K3S_DOCKERFILE, "utf8");
    const heredoc = (tag: string) => new RegExp(`<< ${tag} > [^\\n]+\\n([\\s\\S]*?)\\n${tag}\\n`).exec(dockerfile)![1] + "\n";
    const put = (rel: string, content: string | Buffer, mode: number) => {
        fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true, mode: 0o755 });
        fs.writeFileSync(path.join(root, rel), content, { mode });
        fs.chmodSync(path.join(root, rel), mode);
    };
    put("usr/local/bin/k3s", fs.readFileSync(k3sBinary), 0o755);
    for (const link of ["kubectl", "crictl", "ctr"]) fs.symlinkSync("k3s", path.join(root, "usr/local/bin", link));
    put("usr/local/lib/systemd/system/k3s.service", heredoc("K3SSERVICE"), 0o644);
    put("usr/local/lib/systemd/system/k3s-agent.service", heredoc("K3SAGENT"), 0o644);
    put("usr/lib/extension-release.d/extension-release.k3s", heredoc("RELEASE").replace("${K3S_VERSION}", "v1.31.2+k3s1"), 0o644);
    return root;
}

describe("SystemExtension from a Dockerfile (real BuildKit)", function () {
    this.timeout(600000);
    let work: string;
    let services: DockerfileServices;
    let remote: Buildkitd;
    let signer: { key: string; certificate: string };
    let spec: { context: string; dockerfile: string };
    let local: any;
    const cache = () => `type=registry,ref=${services.registry}/cache/k3s-sysext:buildcache`;

    const checked = async (news: Record<string, unknown>, olds: Record<string, unknown> = {}) => {
        const r = await handler.check(olds, news);
        assert.deepStrictEqual(r.failures, [], JSON.stringify(r.failures));
        return r.inputs;
    };
    const inputs = (outputDir: string, dockerfile: Record<string, unknown>) => ({ name: "k3s", outputDir, source: { dockerfile }, signing: signer });

    before(async () => {
        work = tempDir("dockerfile-source");
        signer = await makeCertificate(work, "db");
        services = await startDockerfileServices();
        remote = await startBuildkitd({ mtls: true, dockerHubMirror: services.registry });
        spec = await k3sDockerfileBuild(path.join(work, "context"));
        local = (await handler.create(await checked(inputs(path.join(work, "out-local"), { ...spec, buildkitHost: services.buildkitd.address, cacheTo: [cache()] })))).outs;
    });
    after(async () => {
        await remote?.stop();
        await services?.stop();
    });

    it("builds the seed-shaped Dockerfile into a signed sysext holding the last stage's files", async () => {
        assert.strictEqual(local.path, path.join(work, "out-local", "k3s.sysext.raw"));
        assert.ok((await veritySignatureVerifies(local.path, signer.certificate, work)).ok);
        const tree = await extractRootTree(local.path, path.join(work, "tree-local"));
        assert.deepStrictEqual(listTree(tree).filter((p) => !p.endsWith("/")).sort(), [
            "usr/lib/extension-release.d/extension-release.k3s",
            "usr/local/bin/crictl",
            "usr/local/bin/ctr",
            "usr/local/bin/k3s",
            "usr/local/bin/kubectl",
            "usr/local/lib/systemd/system/k3s-agent.service",
            "usr/local/lib/systemd/system/k3s.service",
        ]);
        assert.strictEqual(fs.readlinkSync(path.join(tree, "usr/local/bin/kubectl")), "k3s");
        assert.match(fs.readFileSync(path.join(tree, "usr/local/lib/systemd/system/k3s-agent.service"), "utf8"), /ExecStart=\/usr\/local\/bin\/k3s agent/);
        // The heredoc's unit is the one the boot tests copy from the example folder.
        assert.strictEqual(fs.readFileSync(path.join(tree, "usr/local/lib/systemd/system/k3s.service"), "utf8"), fs.readFileSync(path.join(path.dirname(K3S_DOCKERFILE), "k3s.service"), "utf8"));
        assert.match(local.extensionRelease, /^ID=_any\nEXTENSION_RELOAD_MANAGER=1\nK3S_VERSION=v1\.31\.2\+k3s1\n$/);
        assert.ok(fs.readFileSync(path.join(tree, "usr/local/bin/k3s")).equals(fs.readFileSync(path.join(spec.context, "k3s"))));
    });

    it("is byte-identical to the extension built from the same tree as a dir source", async () => {
        const byHand = k3sTreeByHand(path.join(work, "by-hand"), path.join(spec.context, "k3s"));
        const fromDir = (await handler.create(await checked({ name: "k3s", outputDir: path.join(work, "out-dir"), source: { dir: byHand }, signing: signer }))).outs;
        assert.strictEqual(fromDir.sha256, local.sha256);
        assert.strictEqual(fromDir.rootHash, local.rootHash);
    });

    it("builds byte-identically on a remote buildkitd over mTLS, which starts empty and takes the first one's cache from the registry", async () => {
        const viaRemote = { ...spec, buildkitHost: remote.address, tls: { caCertificate: remote.mtls!.caCertificate, certificate: remote.mtls!.certificate, key: remote.mtls!.key }, cacheFrom: [cache()] };
        const news = await checked(inputs(path.join(work, "out-remote"), viaRemote));
        // Where it is built is not what is built: the same input hash as the local build.
        assert.strictEqual(news.inputHash, local.inputHash);
        const said: string[] = [];
        const outs = (await withLogSink({ info: (m) => said.push(m), progress: () => undefined }, () => handler.create(news))).outs;
        assert.strictEqual(outs.sha256, local.sha256);
        // The apt-get, COPY and heredoc steps came from the first daemon's cache export: a cache hit on the second runner.
        const m = /BuildKit at tcp:\/\/127\.0\.0\.1:\d+: (\d+) steps, (\d+) from its cache/.exec(said.join("\n"));
        assert.ok(m, `the build says what BuildKit did: ${said.join("\n")}`);
        assert.ok(Number(m![2]) >= 3, `at least the apt-get, COPY and heredoc steps cached: ${m![0]}`);
    });

    it("refuses a client certificate the remote's CA did not sign, with one clear error, and keeps the previous extension", async () => {
        const before = await sha256File(local.path);
        const stranger = { ...spec, buildkitHost: remote.address, tls: { caCertificate: remote.mtls!.caCertificate, certificate: remote.mtls!.strangerCertificate, key: remote.mtls!.strangerKey } };
        const edited = await withEditedContext(spec.context, async () => checked(inputs(path.join(work, "out-local"), stranger), local));
        await assert.rejects(handler.update!(local.path, local, edited), (e: Error) => {
            assert.ok(e.message.includes(`BuildKit at ${remote.address} refused the connection (TLS: check source.dockerfile.tls`), e.message);
            return true;
        });
        assert.strictEqual(await sha256File(local.path), before);
    });

    it("says which daemon it cannot reach, and keeps the previous extension", async () => {
        const edited = await withEditedContext(spec.context, async () => checked(inputs(path.join(work, "out-local"), { ...spec, buildkitHost: "tcp://127.0.0.1:1" }), local));
        await assert.rejects(handler.update!(local.path, local, edited), /cannot reach BuildKit at tcp:\/\/127\.0\.0\.1:1 \(start buildkitd there, or set BUILDKIT_HOST/);
        assert.strictEqual(await sha256File(local.path), local.sha256);
    });

    describe("a broken Dockerfile names its line and keeps the previous extension", () => {
        const cases: [string, (d: string) => string, RegExp][] = [
            ["a syntax error", (d) => d.replace("COPY k3s /tmp/k3s", "COPPY k3s /tmp/k3s"), /Dockerfile\.a-syntax-error:13: dockerfile parse error on line 13: unknown instruction: COPPY/i],
            ["a failing RUN", (d) => d.replace("set -eu\n", "set -eu\necho about to fail; exit 3\n"), /Dockerfile\.a-failing-RUN:14: process "\/bin\/sh -c set -eu; echo about to fail; exit 3; mkdir[^"\n]{0,40}…" did not complete successfully: exit code: 3\n {2}the step's last output:\n {4}about to fail$/],
            ["a missing context file", (d) => d.replace("COPY k3s /tmp/k3s", "COPY k3s-missing /tmp/k3s"), /Dockerfile\.a-missing-context-file:13: failed to compute cache key: .*"\/k3s-missing": not found$/],
        ];
        for (const [what, edit, expected] of cases) {
            it(what, async () => {
                const broken = path.join(work, `Dockerfile.${what.replace(/\W+/g, "-")}`);
                fs.writeFileSync(broken, edit(fs.readFileSync(K3S_DOCKERFILE, "utf8")));
                const news = await checked(inputs(path.join(work, "out-local"), { ...spec, dockerfile: broken, buildkitHost: services.buildkitd.address }), local);
                assert.notStrictEqual(news.inputHash, local.inputHash);
                await assert.rejects(handler.update!(local.path, local, news), (e: Error) => {
                    assert.match(e.message, expected);
                    assert.ok(e.message.includes(broken), e.message);
                    return true;
                });
                assert.strictEqual(await sha256File(local.path), local.sha256);
            });
        }
    });

    it("hashes the context's content, the Dockerfile and the args, not where or how it is built", async () => {
        const base = await checked(inputs(path.join(work, "out-local"), spec));
        assert.strictEqual(base.inputHash, local.inputHash);
        const argChanged = await checked(inputs(path.join(work, "out-local"), { ...spec, buildArgs: { K3S_VERSION: "v1.32.0+k3s1" } }));
        assert.notStrictEqual(argChanged.inputHash, base.inputHash);
        const targetChanged = await checked(inputs(path.join(work, "out-local"), { ...spec, target: "builder" }));
        assert.notStrictEqual(targetChanged.inputHash, base.inputHash);
        const edited = await withEditedContext(spec.context, () => checked(inputs(path.join(work, "out-local"), spec)));
        assert.notStrictEqual(edited.inputHash, base.inputHash);
        assert.strictEqual((await handler.diff!(local.path, local, base)).changes, false);
    });

    it("refuses a missing context, Dockerfile or TLS file, and a host that is not an address, in check", async () => {
        const failures = async (dockerfile: Record<string, unknown>) => ((await handler.check({}, inputs(path.join(work, "out-x"), dockerfile))).failures ?? []).map((f) => `${f.property}: ${f.reason}`);
        assert.deepStrictEqual(await failures({ context: path.join(work, "nope") }), [`source.dockerfile.context: ${path.join(work, "nope")} does not exist`]);
        assert.deepStrictEqual(await failures({ context: work }), [`source.dockerfile.dockerfile: ${path.join(work, "Dockerfile")} does not exist (the default: <context>/Dockerfile)`]);
        assert.deepStrictEqual(await failures({ ...spec, buildArgs: { SOURCE_DATE_EPOCH: "5" }, buildkitHost: "127.0.0.1:1234", cacheFrom: ["ref=x"] }), [
            "source.dockerfile.buildArgs: SOURCE_DATE_EPOCH is set from the resource's sourceDateEpoch (it is what the image's timestamps become); set that instead",
            'source.dockerfile.buildkitHost: "127.0.0.1:1234" is not a daemon address (unix:///path/buildkitd.sock or tcp://host:port)',
            'source.dockerfile.cacheFrom: "ref=x" is not a BuildKit cache spec (type=registry,ref=… or type=s3,…)',
        ]);
        assert.deepStrictEqual(await failures({ ...spec, tls: { caCertificate: path.join(work, "ca.pem"), certificate: signer.certificate, key: signer.key } }), [
            `source.dockerfile.tls.caCertificate: ${path.join(work, "ca.pem")} does not exist`,
        ]);
    });
});

/** Runs `fn` with one more file in the context (so the input hash moves), then takes it out again. */
async function withEditedContext<T>(context: string, fn: () => Promise<T>): Promise<T> {
    const extra = path.join(context, "NOTES");
    fs.writeFileSync(extra, `edited ${Date.now()}\n`);
    try {
        return await fn();
    } finally {
        fs.rmSync(extra);
    }
}

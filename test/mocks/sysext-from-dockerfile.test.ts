// SysextFromDockerfile under Pulumi mocks: the docker build's inputs, the pinned image digest and
// `layers: "last"` reaching SystemExtension, the local-only path through `docker save`, and
// collected validation errors. The key set is real (built by the SigningKeys handler). A pushed
// image's SystemExtension cannot be built here (no registry behind the mocked digest), so those
// tests assert only the inputs it received; the local-only test hands the real SystemExtension
// handler a docker-save archive written where the (mocked) `docker save` would write it, and
// checks the component's outputs against the image that was built.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { SysextFromDockerfile, dockerDaemonConfigured } from "../../constructs/sysext-from-dockerfile";
import { SigningKeys } from "../../provider/signing-keys";
import { sha256File } from "../../provider/toolkit/files";
import { extractRootTree, listTree } from "../helpers/ddi-inspect";
import { TarSpec, buildImage, makeLayer, writeDockerSave } from "../helpers/oci-fixtures";
import { tempDir } from "../helpers/temp";
import { Recorder, TYPES, createdResource, errorOf, inputsOnly, installMocks, promiseOf, realSigningKeys } from "./harness";

const dir = (name: string): TarSpec => ({ name: `${name}/`, type: "dir", mode: 0o755 });
const file = (name: string, content: string, mode = 0o644): TarSpec => ({ name, content, mode });

describe("SysextFromDockerfile", () => {
    let keys: SigningKeys;
    let keyDir: string;

    before(async () => {
        await installMocks();
        keys = realSigningKeys("sxkeys");
        keyDir = await promiseOf(keys.keyDir);
    });

    it("builds and pushes the image, then feeds its repo digest to SystemExtension with layers 'last'", async () => {
        inputsOnly("k3s-extension"); // its source is the mocked registry's digest: nothing to pull
        const rec = new Recorder();
        const k3s = new SysextFromDockerfile("k3s", {
            builder: "docker",
            context: "/src/k3s",
            imageName: "registry.local:5000/kairos/k3s-sysext:v1.32",
            registry: { server: "registry.local:5000", username: "ci", password: pulumi.secret("pw") },
            insecureRegistry: true,
            outputDir: "/srv/extensions",
            signingKeys: keys,
        }, rec.opts());
        await rec.settle();

        assert.strictEqual(rec.get("k3s").type, "kairos:index:SysextFromDockerfile");
        assert.deepStrictEqual(rec.children(k3s), [[TYPES.dockerImage, "k3s-image"], [TYPES.systemExtension, "k3s-extension"]]);
        assert.strictEqual(rec.get("k3s-image").opts.parent, k3s);
        assert.strictEqual(rec.get("k3s-extension").opts.parent, k3s);
        assert.deepStrictEqual(rec.dependsOn("k3s-extension"), [k3s.image]);
        assert.ok((await promiseOf(k3s.extension.urn)).includes("kairos:index:SysextFromDockerfile$pulumi-nodejs:dynamic/kairos:SystemExtension::k3s-extension"));

        const image = createdResource("k3s-image").inputs;
        assert.deepStrictEqual(image.build, {
            context: "/src/k3s",
            dockerfile: "/src/k3s/Dockerfile",
            platform: "linux/amd64",
            builderVersion: "BuilderBuildKit",
        });
        assert.strictEqual(image.imageName, "registry.local:5000/kairos/k3s-sysext:v1.32");
        assert.strictEqual(image.skipPush, false);
        // The password's secrecy covers the whole registry block on its way to the engine.
        assert.strictEqual(image.registry[pulumi.runtime.specialSigKey], pulumi.runtime.specialSecretSig);
        assert.deepStrictEqual(image.registry.value, { server: "registry.local:5000", username: "ci", password: "pw" });

        // The mocked registry's answer (a made-up digest) is what reaches SystemExtension, pinned.
        const repoDigest: string = createdResource("k3s-image").state.repoDigest;
        const digest = await promiseOf(k3s.imageDigest!);
        assert.match(digest, /^sha256:[0-9a-f]{64}$/);
        assert.strictEqual(repoDigest, `registry.local:5000/kairos/k3s-sysext@${digest}`);
        assert.strictEqual(await promiseOf(k3s.imageRef!), repoDigest);
        assert.strictEqual(await promiseOf(k3s.imageName!), "registry.local:5000/kairos/k3s-sysext:v1.32");

        const ext = createdResource("k3s-extension").inputs;
        assert.deepStrictEqual(ext.source, { image: repoDigest, insecureRegistry: true });
        assert.strictEqual(ext.layers, "last");
        assert.strictEqual(ext.name, "k3s");
        assert.strictEqual(ext.outputDir, "/srv/extensions");
        assert.strictEqual(ext.arch, "amd64");
        // Signed with the real key set's db pair (not PK's or KEK's), as its `files` output names them.
        const db = (await promiseOf(keys.files)).db;
        assert.deepStrictEqual(ext.signing, { key: path.join(keyDir, "db.key"), certificate: path.join(keyDir, "db.pem") });
        assert.deepStrictEqual(ext.signing, { key: db.key, certificate: db.pem });
        for (const f of Object.values(ext.signing) as string[]) assert.ok(fs.statSync(f).size > 0, `${f} was generated`);
    });

    it("passes platform, Dockerfile, build args, target and the extension options through", async () => {
        inputsOnly("tools-arm-extension"); // pulls the mocked registry's digest
        const rec = new Recorder();
        new SysextFromDockerfile("tools-arm", {
            builder: "docker",
            context: "/src/tools",
            dockerfile: "/src/tools/Dockerfile.sysext",
            platform: "linux/arm64",
            buildArgs: { VERSION: "1.2" },
            target: "final",
            imageName: "registry.local/tools:1.2",
            extensionName: "tools",
            outputDir: "/srv/extensions",
            kind: "confext",
            release: { versionId: "1.2" },
        }, rec.opts());
        await rec.settle();
        const image = createdResource("tools-arm-image").inputs;
        assert.deepStrictEqual(image.build, {
            context: "/src/tools", dockerfile: "/src/tools/Dockerfile.sysext", platform: "linux/arm64",
            args: { VERSION: "1.2" }, target: "final", builderVersion: "BuilderBuildKit",
        });
        const ext = createdResource("tools-arm-extension").inputs;
        assert.strictEqual(ext.name, "tools");
        assert.strictEqual(ext.arch, "arm64");
        assert.strictEqual(ext.kind, "confext");
        assert.deepStrictEqual(ext.release, { versionId: "1.2" });
        assert.strictEqual(ext.signing, undefined, "unsigned when no keys are given");
    });

    it("local only: keeps the image in the daemon and hands SystemExtension a docker save archive", async () => {
        // Where `docker save` (mocked) would write the archive, the image it would hold: the base layer
        // is the builder's (files no sysext may carry), the last layer the extension's files.
        const out = tempDir("mock-localext");
        const archive = path.join(out, "localext.docker-save.tar");
        const base = await makeLayer([dir("etc"), file("etc/os-release", "ID=builder\n"), dir("usr"), dir("usr/bin"), file("usr/bin/cc", "cc\n", 0o755)]);
        const last = await makeLayer([dir("usr"), dir("usr/local"), dir("usr/local/bin"), file("usr/local/bin/k3s", "#!/bin/sh\necho k3s\n", 0o755)]);
        writeDockerSave(archive, [{ image: buildImage({ layers: [base, last] }), repoTags: ["k3s-sysext:dev"] }]);

        const rec = new Recorder();
        const local = new SysextFromDockerfile("localext", {
            builder: "docker", context: "/src/k3s", imageName: "k3s-sysext:dev", push: false, outputDir: out,
        }, rec.opts());
        await rec.settle();
        assert.deepStrictEqual(rec.children(local), [
            [TYPES.dockerImage, "localext-image"],
            [TYPES.command, "localext-save"],
            [TYPES.systemExtension, "localext-extension"],
        ]);
        assert.strictEqual(createdResource("localext-image").inputs.skipPush, true);
        assert.strictEqual(createdResource("localext-image").inputs.registry, undefined);
        // The mocked daemon's image ID is what docker save is given, and what reruns it.
        const imageId: string = createdResource("localext-image").state.repoDigest;
        const save = createdResource("localext-save").inputs;
        assert.strictEqual(save.create, `docker save --output ${archive} ${imageId}`);
        assert.deepStrictEqual(save.triggers, [imageId]);
        assert.deepStrictEqual(rec.dependsOn("localext-save"), [local.image]);
        assert.deepStrictEqual(rec.dependsOn("localext-extension"), [local.image, local.save]);
        const ext = createdResource("localext-extension").inputs;
        assert.deepStrictEqual(ext.source, { dockerArchive: archive });
        assert.strictEqual(ext.layers, "last");
        assert.strictEqual(await promiseOf(local.imageDigest!), imageId);
        assert.strictEqual(await promiseOf(local.imageRef!), "k3s-sysext:dev", "the tag the local daemon knows");

        // The real SystemExtension handler built the image; the component's outputs are its outputs.
        const image = path.join(out, "localext.sysext.raw");
        assert.strictEqual(await promiseOf(local.path), image);
        assert.strictEqual(await promiseOf(local.sha256), await sha256File(image));
        assert.match(await promiseOf(local.rootHash), /^[0-9a-f]{64}$/);
        assert.strictEqual(await promiseOf(local.rootHash), await promiseOf(local.extension.rootHash));
        // Only the last layer went in (with "all", the builder's /etc would have failed the build).
        const tree = await extractRootTree(image, path.join(out, "tree"));
        assert.deepStrictEqual(listTree(tree), ["usr/lib/extension-release.d/extension-release.localext", "usr/local/bin/k3s"]);
    });

    describe("the builder", () => {
        it("is BuildKit where no Docker daemon is configured (DOCKER_HOST or /var/run/docker.sock), Docker where one is", () => {
            const work = tempDir("docker-socket");
            const socket = path.join(work, "docker.sock");
            assert.strictEqual(dockerDaemonConfigured({}, socket), false);
            assert.strictEqual(dockerDaemonConfigured({ DOCKER_HOST: "tcp://build-host:2376" }, socket), true);
            fs.writeFileSync(socket, "");
            assert.strictEqual(dockerDaemonConfigured({}, socket), true);
        });

        it("BuildKit: one SystemExtension with a dockerfile source carrying the build's inputs; no image, no docker save", async () => {
            inputsOnly("bk-extension"); // a real build needs a buildkitd: test/provider/dockerfile-source.test.ts has one
            const rec = new Recorder();
            const tls = { caCertificate: "/pki/ca.pem", certificate: "/pki/client.pem", key: "/pki/client.key" };
            const k3s = new SysextFromDockerfile("bk", {
                builder: "buildkit",
                context: "/src/k3s",
                dockerfile: "/src/k3s/Dockerfile.sysext",
                buildArgs: { K3S_VERSION: "v1.32.0+k3s1" },
                target: "final",
                buildkitHost: "tcp://buildkitd.internal:1234",
                buildkitTls: tls,
                cacheFrom: ["type=registry,ref=registry.local/cache/k3s"],
                cacheTo: ["type=registry,ref=registry.local/cache/k3s,mode=max"],
                extensionName: "k3s",
                outputDir: "/srv/extensions",
                signingKeys: keys,
            }, rec.opts());
            await rec.settle();
            assert.strictEqual(k3s.builder, "buildkit");
            assert.deepStrictEqual(rec.children(k3s), [[TYPES.systemExtension, "bk-extension"]]);
            assert.strictEqual(k3s.image, undefined);
            assert.strictEqual(k3s.imageRef, undefined);
            const ext = createdResource("bk-extension").inputs;
            assert.deepStrictEqual(ext.source, {
                dockerfile: {
                    context: "/src/k3s",
                    dockerfile: "/src/k3s/Dockerfile.sysext",
                    target: "final",
                    buildArgs: { K3S_VERSION: "v1.32.0+k3s1" },
                    buildkitHost: "tcp://buildkitd.internal:1234",
                    tls,
                    cacheFrom: ["type=registry,ref=registry.local/cache/k3s"],
                    cacheTo: ["type=registry,ref=registry.local/cache/k3s,mode=max"],
                },
            });
            assert.strictEqual(ext.layers, "last");
            assert.strictEqual(ext.name, "k3s");
            assert.strictEqual(ext.signing.certificate, path.join(keyDir, "db.pem"));
        });

        it("is BuildKit by default on this machine (no Docker daemon), and Docker's inputs are refused there with the reason", () => {
            assert.strictEqual(dockerDaemonConfigured(), false, "this test machine has no Docker daemon");
            const err = errorOf(() => new SysextFromDockerfile("bkdefault", { context: "/src/k3s", imageName: "registry.local/k3s:v1", push: false, outputDir: "/srv/ext" }));
            assert.ok(pulumi.InputPropertiesError.isInstance(err));
            assert.deepStrictEqual(err.errors!.map((e) => e.propertyPath), ["imageName", "push"]);
            assert.match(err.message, /imageName: is only used with builder "docker"; this component builds with BuildKit \(the default here: no Docker daemon is configured, DOCKER_HOST is unset and \/var\/run\/docker\.sock is absent; set builder: "docker" to use one\)/);
        });

        it("Docker: BuildKit's inputs are refused, and imageName is required", () => {
            const err = errorOf(() => new SysextFromDockerfile("dkbad", { builder: "docker", context: "/src/k3s", outputDir: "/srv/ext", buildkitHost: "tcp://b:1", cacheTo: ["type=inline"] }));
            assert.ok(pulumi.InputPropertiesError.isInstance(err));
            assert.deepStrictEqual(err.errors!.map((e) => e.propertyPath), ["imageName", "buildkitHost", "cacheTo"]);
            assert.match(err.message, /buildkitHost: is only used with builder "buildkit"/);
        });
    });

    it("fails with every problem at once, each with its property path", () => {
        const err = errorOf(() => new SysextFromDockerfile("k3s_bad", {
            builder: "docker",
            context: "",
            imageName: "registry.local/k3s@sha256:" + "0".repeat(64),
            platform: "linux/riscv64" as never,
            outputDir: "/srv/extensions",
            kind: "confext",
            withOpt: true,
            signing: { key: "/k/db.key", certificate: "/k/db.pem" },
            signingKeys: keys,
            push: false,
            registry: { server: "registry.local" },
        }));
        assert.ok(pulumi.InputPropertiesError.isInstance(err));
        assert.deepStrictEqual(err.errors!.map((e) => e.propertyPath), [
            "context", "imageName", "platform", "extensionName", "withOpt", "signingKeys", "registry",
        ]);
        assert.match(err.message, /SysextFromDockerfile "k3s_bad" has 7 problems/);
        assert.match(err.message, /extensionName: "k3s_bad" \(the component name\) must be/);
    });
});

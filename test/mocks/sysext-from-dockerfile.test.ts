// SysextFromDockerfile under Pulumi mocks: the docker build's inputs, the pinned image digest and
// `layers: "last"` reaching SystemExtension, the local-only path through `docker save`, and
// collected validation errors.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { SysextFromDockerfile } from "../../constructs/sysext-from-dockerfile";
import { SigningKeys } from "../../provider/signing-keys";
import { Recorder, TYPES, createdResource, errorOf, fakeHex, installMocks, promiseOf } from "./harness";

describe("SysextFromDockerfile", () => {
    before(installMocks);

    it("builds and pushes the image, then feeds its repo digest to SystemExtension with layers 'last'", async () => {
        const rec = new Recorder();
        const keys = new SigningKeys("sxkeys", { name: "acme", outputDir: "/srv/keys" });
        const k3s = new SysextFromDockerfile("k3s", {
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

        const digest = `sha256:${fakeHex("image:k3s-image")}`;
        const ext = createdResource("k3s-extension").inputs;
        assert.deepStrictEqual(ext.source, { image: `registry.local:5000/kairos/k3s-sysext@${digest}`, insecureRegistry: true });
        assert.strictEqual(ext.layers, "last");
        assert.strictEqual(ext.name, "k3s");
        assert.strictEqual(ext.outputDir, "/srv/extensions");
        assert.strictEqual(ext.arch, "amd64");
        assert.deepStrictEqual(ext.signing, { key: "/srv/keys/db.key", certificate: "/srv/keys/db.pem" });

        assert.strictEqual(await promiseOf(k3s.imageName), "registry.local:5000/kairos/k3s-sysext:v1.32");
        assert.strictEqual(await promiseOf(k3s.imageRef), `registry.local:5000/kairos/k3s-sysext@${digest}`);
        assert.strictEqual(await promiseOf(k3s.imageDigest), digest);
        assert.strictEqual(await promiseOf(k3s.path), "/srv/extensions/k3s.sysext.raw");
        assert.strictEqual(await promiseOf(k3s.sha256), fakeHex("sha256:k3s-extension"));
        assert.strictEqual(await promiseOf(k3s.rootHash), fakeHex("root:k3s-extension"));
    });

    it("passes platform, Dockerfile, build args, target and the extension options through", async () => {
        const rec = new Recorder();
        new SysextFromDockerfile("tools-arm", {
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
        const rec = new Recorder();
        const local = new SysextFromDockerfile("localext", {
            context: "/src/k3s", imageName: "k3s-sysext:dev", push: false, outputDir: "/srv/extensions",
        }, rec.opts());
        await rec.settle();
        assert.deepStrictEqual(rec.children(local), [
            [TYPES.dockerImage, "localext-image"],
            [TYPES.command, "localext-save"],
            [TYPES.systemExtension, "localext-extension"],
        ]);
        assert.strictEqual(createdResource("localext-image").inputs.skipPush, true);
        assert.strictEqual(createdResource("localext-image").inputs.registry, undefined);
        const imageId = `sha256:${fakeHex("image:localext-image")}`;
        const save = createdResource("localext-save").inputs;
        assert.strictEqual(save.create, `docker save --output /srv/extensions/localext.docker-save.tar ${imageId}`);
        assert.deepStrictEqual(save.triggers, [imageId]);
        assert.deepStrictEqual(rec.dependsOn("localext-save"), [local.image]);
        assert.deepStrictEqual(rec.dependsOn("localext-extension"), [local.image, local.save]);
        const ext = createdResource("localext-extension").inputs;
        assert.deepStrictEqual(ext.source, { dockerArchive: "/srv/extensions/localext.docker-save.tar" });
        assert.strictEqual(ext.layers, "last");
        assert.strictEqual(await promiseOf(local.imageDigest), imageId);
        assert.strictEqual(await promiseOf(local.imageRef), "k3s-sysext:dev", "the tag the local daemon knows");
    });

    it("fails with every problem at once, each with its property path", () => {
        const keys = new SigningKeys("badkeys", { name: "acme", outputDir: "/srv/keys" });
        const err = errorOf(() => new SysextFromDockerfile("k3s_bad", {
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

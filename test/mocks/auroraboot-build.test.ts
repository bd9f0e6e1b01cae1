// AuroraBootBuild under Pulumi mocks: the exact argv of every AuroraBoot command (held against the
// seed blog post's command lines), the resource graph (names, parents, dependsOn, triggers), and
// collected validation errors.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
    AuroraBootBuild, CONTAINER_PATHS, DEFAULT_AURORABOOT_VERSION, HostDirs,
    auroraBootArgvs, buildUkiArgv, genkeyArgv, keyFlagsForVersion, shellJoin, shellQuote, sysextArgv, ukiSource,
} from "../../constructs/auroraboot-build";
import { SysextFromDockerfile } from "../../constructs/sysext-from-dockerfile";
import { Recorder, TYPES, createdResource, errorOf, inputsOnly, installMocks, promiseOf, realSigningKeys } from "./harness";

// The seed ("Creating system extensions for Kairos", kairos-docs blog, 2024-11-25), AuroraBoot's
// part of each line, after the image:
const SEED = {
    genkey: "genkey --output /keys",
    sysext: "sysext --private-key=/keys/db.key --certificate=/keys/db.pem --output=/build k3s k3s-sysext",
    buildUki: "build-uki --output-dir /result --overlay-iso /system-extensions -k /keys --output-type iso oci:OSIMAGE",
};
const IMAGE = `quay.io/kairos/auroraboot:${DEFAULT_AURORABOOT_VERSION}`;
const OS_IMAGE = "quay.io/kairos/ubuntu:24.04-core-amd64-generic-v3.6.0-uki";
const DIRS: HostDirs = { keys: "/w/keys", extensions: "/w/system-extensions", output: "/w/build" };

/** The AuroraBoot part of a docker argv: everything after the image. */
function afterImage(argv: string[], image = IMAGE): string[] {
    return argv.slice(argv.indexOf(image) + 1);
}

describe("AuroraBoot command lines", () => {
    it("genkey is the seed's line plus the certificate name AuroraBoot now requires", () => {
        const argv = genkeyArgv(IMAGE, DIRS.keys, { name: "acme" });
        assert.deepStrictEqual(argv, ["docker", "run", "--rm", "-v", "/w/keys:/keys", IMAGE, "genkey", "--output", "/keys", "acme"]);
        assert.deepStrictEqual(afterImage(argv), [...SEED.genkey.split(" "), "acme"]);
    });

    it("genkey passes expiry and the Microsoft-certificate switch only when asked", () => {
        const argv = genkeyArgv(IMAGE, DIRS.keys, { name: "Acme Corp", expirationInDays: 3650, skipMicrosoftCerts: true });
        assert.deepStrictEqual(afterImage(argv), ["genkey", "--output", "/keys", "--expiration-in-days", "3650", "--skip-microsoft-certs-I-KNOW-WHAT-IM-DOING", "Acme Corp"]);
    });

    it("sysext is exactly the seed's line, with the seed's mounts and the Docker socket", () => {
        const argv = sysextArgv(IMAGE, DIRS, "/var/run/docker.sock", { name: "k3s", image: "k3s-sysext", kind: "sysext", arch: "amd64" });
        assert.deepStrictEqual(argv, [
            "docker", "run", "--rm",
            "-v", "/w/keys:/keys",
            "-v", "/w/system-extensions:/build",
            "-v", "/var/run/docker.sock:/var/run/docker.sock",
            IMAGE,
            ...SEED.sysext.split(" "),
        ]);
    });

    it("sysext adds --arch, --service-reload and --with-opt only when asked; confext uses its own verb", () => {
        const arm = sysextArgv(IMAGE, DIRS, null, { name: "tools", image: "r/tools@sha256:ab", kind: "sysext", arch: "arm64", serviceReload: true, withOpt: true });
        assert.deepStrictEqual(afterImage(arm), [
            "sysext", "--private-key=/keys/db.key", "--certificate=/keys/db.pem", "--output=/build",
            "--arch=arm64", "--service-reload", "--with-opt", "tools", "r/tools@sha256:ab",
        ]);
        assert.ok(!arm.includes("/var/run/docker.sock:/var/run/docker.sock"), "dockerSocket null mounts no socket");
        const conf = sysextArgv(IMAGE, DIRS, null, { name: "motd", image: "r/motd:1", kind: "confext", arch: "amd64" });
        assert.strictEqual(afterImage(conf)[0], "confext");
    });

    it("build-uki with keyFlags 'directory' is exactly the seed's line (AuroraBoot < v0.9.0)", () => {
        const argv = buildUkiArgv("quay.io/kairos/auroraboot:v0.8.8", DIRS, "/var/run/docker.sock", {
            source: ukiSource(OS_IMAGE), arch: "amd64", keyFlags: "directory", mountDockerSocket: false,
        });
        assert.deepStrictEqual(argv.slice(0, 11), [
            "docker", "run", "--rm", "--privileged",
            "-v", "/w/build:/result", "-v", "/w/keys:/keys", "-v", "/w/system-extensions:/system-extensions",
            "quay.io/kairos/auroraboot:v0.8.8",
        ]);
        assert.deepStrictEqual(afterImage(argv, "quay.io/kairos/auroraboot:v0.8.8"), SEED.buildUki.replace("OSIMAGE", OS_IMAGE).split(" "));
    });

    it("build-uki with keyFlags 'split' names the files -k read, in -k's place", () => {
        const argv = buildUkiArgv(IMAGE, DIRS, "/var/run/docker.sock", { source: ukiSource(OS_IMAGE), arch: "amd64", keyFlags: "split", mountDockerSocket: false });
        assert.deepStrictEqual(afterImage(argv), [
            "build-uki", "--output-dir", "/result", "--overlay-iso", "/system-extensions",
            "--public-keys", "/keys", "--tpm-pcr-private-key", "/keys/tpm2-pcr-private.pem", "--sb-key", "/keys/db.key", "--sb-cert", "/keys/db.pem",
            "--output-type", "iso", `oci:${OS_IMAGE}`,
        ]);
        assert.ok(!argv.includes("/var/run/docker.sock:/var/run/docker.sock"), "the seed mounts no socket for build-uki");
    });

    it("build-uki options, arm64 platform and the socket for a daemon-only OS image", () => {
        const argv = buildUkiArgv(IMAGE, DIRS, "/run/docker.sock", {
            source: "docker:local/os:1", arch: "arm64", keyFlags: "split", mountDockerSocket: true,
            isoName: "edge", bootBranding: "Acme Edge", extendCmdline: "rd.debug console=ttyS0", secureBootEnroll: "manual",
        });
        assert.deepStrictEqual(argv.slice(0, 6), ["docker", "run", "--rm", "--privileged", "--platform", "linux/arm64"]);
        assert.ok(argv.includes("/run/docker.sock:/var/run/docker.sock"));
        assert.deepStrictEqual(afterImage(argv).slice(13), [
            "--output-type", "iso", "--name", "edge", "--boot-branding", "Acme Edge",
            "--extend-cmdline", "rd.debug console=ttyS0", "--secure-boot-enroll", "manual", "docker:local/os:1",
        ]);
    });

    it("auroraBootArgvs renders every step of a plan in order", () => {
        const a = auroraBootArgvs({
            image: IMAGE, dirs: DIRS, dockerSocket: CONTAINER_PATHS.dockerSocket, genkey: { name: "acme" },
            extensions: [{ name: "k3s", image: "k3s-sysext", kind: "sysext", arch: "amd64" }],
            buildUki: { source: `oci:${OS_IMAGE}`, arch: "amd64", keyFlags: "split", mountDockerSocket: false },
        });
        assert.deepStrictEqual(afterImage(a.genkey!), [...SEED.genkey.split(" "), "acme"]);
        assert.deepStrictEqual(a.sysext.map((s) => [s.name, afterImage(s.argv).join(" ")]), [["k3s", SEED.sysext]]);
        assert.strictEqual(afterImage(a.buildUki)[0], "build-uki");
    });

    it("shellQuote leaves safe words alone and single-quotes the rest", () => {
        assert.strictEqual(shellQuote("--private-key=/keys/db.key"), "--private-key=/keys/db.key");
        assert.strictEqual(shellQuote("quay.io/kairos/auroraboot@sha256:0f"), "quay.io/kairos/auroraboot@sha256:0f");
        assert.strictEqual(shellQuote("Acme Corp"), "'Acme Corp'");
        assert.strictEqual(shellQuote("it's"), `'it'\\''s'`);
        assert.strictEqual(shellQuote("$(reboot)"), "'$(reboot)'");
        assert.strictEqual(shellQuote(""), "''");
        assert.strictEqual(shellJoin(["echo", "a b", "c"]), "echo 'a b' c");
    });

    it("keyFlagsForVersion: -k before v0.9.0, the split flags from v0.9.0 and for non-version tags", () => {
        assert.strictEqual(keyFlagsForVersion("v0.8.8"), "directory");
        assert.strictEqual(keyFlagsForVersion("v0.5.0"), "directory");
        assert.strictEqual(keyFlagsForVersion("v0.9.0"), "split");
        assert.strictEqual(keyFlagsForVersion("v0.26.2"), "split");
        assert.strictEqual(keyFlagsForVersion("v1.0.0"), "split");
        assert.strictEqual(keyFlagsForVersion("latest"), "split");
    });

    it("ukiSource gives bare references the seed's oci: scheme", () => {
        assert.strictEqual(ukiSource("quay.io/kairos/x:1"), "oci:quay.io/kairos/x:1");
        assert.strictEqual(ukiSource("oci:quay.io/kairos/x:1"), "oci:quay.io/kairos/x:1");
        assert.strictEqual(ukiSource("docker:x:1"), "docker:x:1");
    });
});

describe("AuroraBootBuild", () => {
    before(installMocks);

    it("generates keys, builds each extension, then the ISO: names, parents, dependsOn, commands", async () => {
        const rec = new Recorder();
        const build = new AuroraBootBuild("edge", {
            workDir: "/srv/edge",
            osImage: OS_IMAGE,
            genkey: { name: "acme" },
            extensions: [
                { name: "k3s", image: "k3s-sysext" },
                { name: "tools", image: pulumi.output("registry.local/tools@sha256:" + "1".repeat(64)), serviceReload: true },
            ],
        }, rec.opts());
        await rec.settle();

        assert.deepStrictEqual(rec.children(build), [
            [TYPES.command, "edge-genkey"],
            [TYPES.command, "edge-sysext-k3s"],
            [TYPES.command, "edge-sysext-tools"],
            [TYPES.command, "edge-build-uki"],
        ]);
        assert.strictEqual(rec.get("edge").type, "kairos:index:AuroraBootBuild");
        for (const child of ["edge-genkey", "edge-sysext-k3s", "edge-sysext-tools", "edge-build-uki"]) {
            assert.strictEqual(rec.get(child).opts.parent, build, `${child} is parented to the component`);
            const urn = await promiseOf(rec.get(child).resource.urn);
            assert.ok(urn.includes("kairos:index:AuroraBootBuild$command:local:Command::" + child), urn);
        }
        const keygen = build.keygen!;
        assert.deepStrictEqual(rec.dependsOn("edge-genkey"), []);
        assert.deepStrictEqual(rec.dependsOn("edge-sysext-k3s"), [keygen]);
        assert.deepStrictEqual(rec.dependsOn("edge-sysext-tools"), [keygen]);
        assert.deepStrictEqual(rec.dependsOn("edge-build-uki"), [keygen, build.sysexts.k3s, build.sysexts.tools]);

        const image = IMAGE;
        const genkey = createdResource("edge-genkey").inputs;
        assert.strictEqual(genkey.create, `docker run --rm -v /srv/edge/keys:/keys ${image} genkey --output /keys acme`);
        assert.match(genkey.update, /^echo 'pulumi-kairos: keeping the keys in \/srv\/edge\/keys; raise genkey.rotation to make new ones' >&2$/);
        assert.deepStrictEqual(genkey.triggers, [0]);
        // @pulumi/command itself replaces on triggers, so a raised rotation runs genkey as a new resource.
        assert.deepStrictEqual(rec.get("edge-genkey").opts.replaceOnChanges, ["triggers[*]"]);

        assert.strictEqual(
            createdResource("edge-sysext-k3s").inputs.create,
            `docker run --rm -v /srv/edge/keys:/keys -v /srv/edge/system-extensions:/build -v /var/run/docker.sock:/var/run/docker.sock ${image} ${SEED.sysext}`,
        );
        assert.strictEqual(
            createdResource("edge-sysext-tools").inputs.create,
            `docker run --rm -v /srv/edge/keys:/keys -v /srv/edge/system-extensions:/build -v /var/run/docker.sock:/var/run/docker.sock ${image} ` +
                `sysext --private-key=/keys/db.key --certificate=/keys/db.pem --output=/build --service-reload tools registry.local/tools@sha256:${"1".repeat(64)}`,
        );
        assert.strictEqual(
            createdResource("edge-build-uki").inputs.create,
            `docker run --rm --privileged -v /srv/edge/build:/result -v /srv/edge/keys:/keys -v /srv/edge/system-extensions:/system-extensions ${image} ` +
                "build-uki --output-dir /result --overlay-iso /system-extensions " +
                "--public-keys /keys --tpm-pcr-private-key /keys/tpm2-pcr-private.pem --sb-key /keys/db.key --sb-cert /keys/db.pem " +
                `--output-type iso oci:${OS_IMAGE}`,
        );

        // Triggers come from the inputs: the key set, each extension's spec, the ISO's spec.
        const k3sTriggers = createdResource("edge-sysext-k3s").inputs.triggers;
        assert.strictEqual(k3sTriggers[0], "genkey:rotation-0");
        assert.deepStrictEqual(JSON.parse(k3sTriggers[1]), { name: "k3s", image: "k3s-sysext", kind: "sysext", arch: "amd64" });
        const ukiTriggers = createdResource("edge-build-uki").inputs.triggers;
        assert.strictEqual(ukiTriggers.length, 4, "keys, the ISO spec, and one per extension");
        assert.deepStrictEqual(ukiTriggers.slice(2), [k3sTriggers[1], createdResource("edge-sysext-tools").inputs.triggers[1]]);
        assert.strictEqual(JSON.parse(ukiTriggers[1]).source, `oci:${OS_IMAGE}`);

        assert.strictEqual(await promiseOf(build.keysDir), "/srv/edge/keys");
        assert.strictEqual(await promiseOf(build.outputDir), "/srv/edge/build");
        assert.deepStrictEqual(await promiseOf(build.extensionPaths), {
            k3s: "/srv/edge/system-extensions/k3s.sysext.raw",
            tools: "/srv/edge/system-extensions/tools.sysext.raw",
        });
        assert.strictEqual(await promiseOf(build.isoPath), undefined);
        const lines = await promiseOf(build.commandLines);
        assert.strictEqual(lines.buildUki, createdResource("edge-build-uki").inputs.create);
    });

    it("an older AuroraBoot gets the seed's build-uki -k line; a rotation gets a new key folder", async () => {
        const rec = new Recorder();
        new AuroraBootBuild("old", {
            workDir: "/srv/old", osImage: OS_IMAGE, version: "v0.8.8", genkey: { name: "acme", rotation: 2 }, isoName: "kairos-edge",
        }, rec.opts());
        await rec.settle();
        const create = createdResource("old-build-uki").inputs.create as string;
        assert.ok(create.endsWith(`quay.io/kairos/auroraboot:v0.8.8 ${SEED.buildUki.replace("--output-type iso", "--output-type iso --name kairos-edge").replace("OSIMAGE", OS_IMAGE)}`), create);
        assert.ok(create.includes("-v /srv/old/keys-rotation-2:/keys"), create);
        assert.deepStrictEqual(createdResource("old-genkey").inputs.triggers, [2]);
    });

    it("uses a SigningKeys key set instead of genkey, and reruns on its key material", async () => {
        const rec = new Recorder();
        const keys = realSigningKeys("abkeys"); // generated by the real handler
        const build = new AuroraBootBuild("signed", {
            workDir: "/srv/signed", osImage: OS_IMAGE, signingKeys: keys, extensions: [{ name: "k3s", image: "k3s-sysext" }], isoName: "kairos",
        }, rec.opts());
        await rec.settle();
        assert.strictEqual(build.keygen, undefined);
        assert.deepStrictEqual(rec.children(build), [[TYPES.command, "signed-sysext-k3s"], [TYPES.command, "signed-build-uki"]]);
        assert.deepStrictEqual(rec.dependsOn("signed-sysext-k3s"), [keys]);
        assert.deepStrictEqual(rec.dependsOn("signed-build-uki"), [keys, build.sysexts.k3s]);

        // The key set's folder (its keyDir output, where the handler wrote the keys) is mounted as /keys.
        const keyDir = await promiseOf(keys.keyDir);
        assert.ok(fs.statSync(path.join(keyDir, "db.key")).isFile(), "the key folder holds the generated db key");
        assert.strictEqual(await promiseOf(build.keysDir), keyDir);
        assert.ok((createdResource("signed-sysext-k3s").inputs.create as string).startsWith(`docker run --rm -v ${keyDir}:/keys `));
        assert.ok((createdResource("signed-build-uki").inputs.create as string).includes(` -v ${keyDir}:/keys `));
        // Both steps rerun when the key material changes: its hash is their first trigger.
        const material = await promiseOf(keys.keyMaterialHash);
        assert.match(material!, /^[0-9a-f]{64}$/);
        assert.notStrictEqual(material, await promiseOf(keys.inputHash), "the key material, not the whole input hash");
        assert.strictEqual(createdResource("signed-sysext-k3s").inputs.triggers[0], material);
        assert.strictEqual(createdResource("signed-build-uki").inputs.triggers[0], material);
        assert.strictEqual(await promiseOf(build.isoPath), "/srv/signed/build/kairos.iso");
    });

    it("takes a SysextFromDockerfile's pinned digest as an extension image", async () => {
        inputsOnly("abk3s-extension"); // pulls the mocked registry's digest
        const rec = new Recorder();
        const k3s = new SysextFromDockerfile("abk3s", { builder: "docker", context: "/src/k3s", imageName: "registry.local/k3s-sysext:v1", outputDir: "/srv/ext", extensionName: "k3s" });
        new AuroraBootBuild("fromdf", { workDir: "/srv/fromdf", osImage: OS_IMAGE, extensions: [{ name: "k3s", image: k3s.imageRef! }] }, rec.opts());
        await rec.settle();
        // The mocked registry's repo digest (registry.local/k3s-sysext@sha256:…) is what auroraboot sysext pulls.
        const repoDigest: string = createdResource("abk3s-image").state.repoDigest;
        assert.match(repoDigest, /^registry\.local\/k3s-sysext@sha256:[0-9a-f]{64}$/);
        const create = createdResource("fromdf-sysext-k3s").inputs.create as string;
        assert.ok(create.endsWith(` k3s ${repoDigest}`), create);
        assert.strictEqual(JSON.parse(createdResource("fromdf-sysext-k3s").inputs.triggers[1]).image, repoDigest);
    });

    it("fails with every problem at once, each with its property path", () => {
        const err = errorOf(() => new AuroraBootBuild("bad", {
            workDir: "/srv/a:b",
            osImage: "dir:/rootfs",
            version: "v0.26.2",
            keyFlags: "directory",
            genkey: { name: "acme/x", rotation: -1 },
            keysDir: "/srv/keys",
            extensions: [
                { name: "k3s_v1", image: "x" },
                { name: "ok", image: "" },
                { name: "ok", image: "y", kind: "confext", withOpt: true },
            ],
            isoName: "out.iso",
            dockerSocket: null,
            osImageFromDaemon: true,
        }));
        assert.ok(pulumi.InputPropertiesError.isInstance(err), "an InputPropertiesError");
        assert.deepStrictEqual(err.errors!.map((e) => e.propertyPath), [
            "workDir", "osImage", "keyFlags", "keysDir", "genkey.name", "genkey.rotation",
            "extensions[0].name", "extensions[1].image", "extensions[2].name", "extensions[2].withOpt",
            "osImageFromDaemon", "isoName",
        ]);
        assert.match(err.message, /AuroraBootBuild "bad" has 12 problems/);
        assert.match(err.message, /keyFlags: AuroraBoot v0.26.2 has no build-uki -k flag \(removed in v0.9.0\)/);
        assert.match(err.message, /isoName: give it without ".iso" \(AuroraBoot appends it\): "out"/);
    });
});

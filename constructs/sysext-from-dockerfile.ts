// SysextFromDockerfile: the seed's way of making an extension — a Dockerfile whose last stage is
// `FROM scratch` + `COPY --from=builder /k3s /`, so the image's last layer holds exactly the files —
// turned into a signed NAME.sysext.raw by the SystemExtension resource (`layers: "last"`, auroraboot's
// semantics). Two builders:
// - "buildkit" (the default where no Docker daemon is configured): SystemExtension's own `dockerfile`
//   source, which drives buildctl against a local or remote buildkitd. No image is tagged or pushed.
// - "docker": @pulumi/docker builds the image; it is pushed and pinned by its repo digest, or kept
//   local and handed over as a `docker save` archive, since SystemExtension never reads a Docker daemon.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import { local } from "@pulumi/command";
import { SystemExtension, SystemExtensionArgs } from "../provider/system-extension";
import type { SigningKeys } from "../provider/signing-keys";
import type { DockerfileSourceArgs } from "../provider/generated/contract";
import { shellJoin } from "./auroraboot-commands";
import { InputProblem, EXTENSION_NAME_PATTERN, isKnown, throwIfProblems } from "./construct-kit";

export type DockerfileBuilder = "buildkit" | "docker";

/** Whether this machine has a Docker daemon configured: DOCKER_HOST, or Docker's default socket. */
export function dockerDaemonConfigured(env: NodeJS.ProcessEnv = process.env, socket = "/var/run/docker.sock"): boolean {
    return !!env.DOCKER_HOST || fs.existsSync(socket);
}

export type DockerPlatform = "linux/amd64" | "linux/arm64";
const PLATFORMS: DockerPlatform[] = ["linux/amd64", "linux/arm64"];

export interface SysextFromDockerfileArgs {
    /** Docker build context folder. */
    context: pulumi.Input<string>;
    /** Path of the Dockerfile. @default `<context>/Dockerfile` */
    dockerfile?: pulumi.Input<string>;
    /** Build platform; also the extension's architecture. @default "linux/amd64" */
    platform?: DockerPlatform;
    /** Build arguments (`--build-arg`). @default none */
    buildArgs?: pulumi.Input<Record<string, pulumi.Input<string>>>;
    /** Stage to build. @default the last stage */
    target?: pulumi.Input<string>;
    /**
     * Who builds the Dockerfile. "buildkit": buildctl against `buildkitHost` (no Docker daemon needed);
     * "docker": @pulumi/docker.
     * @default "docker" when a Docker daemon is configured (DOCKER_HOST is set or /var/run/docker.sock exists), else "buildkit"
     */
    builder?: DockerfileBuilder;
    /** The buildkitd to build on (buildkit only). @default $BUILDKIT_HOST, else unix:///run/buildkit/buildkitd.sock */
    buildkitHost?: pulumi.Input<string>;
    /** mTLS to a tcp:// buildkitd (buildkit only). @default none */
    buildkitTls?: DockerfileSourceArgs["tls"];
    /** BuildKit caches to import, in buildctl's --import-cache syntax (buildkit only). @default none */
    cacheFrom?: pulumi.Input<pulumi.Input<string>[]>;
    /** BuildKit caches to export, in buildctl's --export-cache syntax (buildkit only). @default none */
    cacheTo?: pulumi.Input<pulumi.Input<string>[]>;
    /** `repository:tag` to build, e.g. `registry.example.com/kairos/k3s-sysext:v1.32` (docker only, where it is required). */
    imageName?: pulumi.Input<string>;
    /** Push to the registry in `imageName`; false keeps the image in the local daemon (docker only). @default true */
    push?: boolean;
    /** Credentials for the push. @default Docker's stored credentials */
    registry?: pulumi.Input<{ server: pulumi.Input<string>; username?: pulumi.Input<string>; password?: pulumi.Input<string> }>;
    /** The registry speaks plain HTTP (SystemExtension's pull). @default false */
    insecureRegistry?: pulumi.Input<boolean>;
    /** Where the local image is saved for SystemExtension (push: false only). @default `<outputDir>/<extensionName>.docker-save.tar` */
    localArchivePath?: pulumi.Input<string>;
    /** NAME of NAME.sysext.raw. @default the component's name */
    extensionName?: string;
    /** Folder the extension image is written to. */
    outputDir: pulumi.Input<string>;
    /** @default "sysext" */
    kind?: "sysext" | "confext";
    /** Also take /opt (sysext only). @default false */
    withOpt?: pulumi.Input<boolean>;
    /** Drop files outside the allowed paths instead of failing. @default false */
    dropDisallowedPaths?: pulumi.Input<boolean>;
    /** Fields of the extension-release file. @default ID=_any */
    release?: SystemExtensionArgs["release"];
    /** erofs compression. @default "lz4" */
    compression?: SystemExtensionArgs["compression"];
    /** Timestamp of every file in the image. @default 0 */
    sourceDateEpoch?: pulumi.Input<number>;
    /** Sign with this key set's db key. @default unsigned unless `signing` is given */
    signingKeys?: SigningKeys;
    /** Sign with this key and certificate. @default unsigned unless `signingKeys` is given */
    signing?: SystemExtensionArgs["signing"];
}

const TYPE = "kairos:index:SysextFromDockerfile";

/** A Dockerfile-built image turned into a signed systemd extension. */
export class SysextFromDockerfile extends pulumi.ComponentResource {
    /** Who built it: the `builder` input or its default on the machine that ran the program. */
    readonly builder: DockerfileBuilder;
    /** The tag that was built (docker only). */
    readonly imageName?: pulumi.Output<string>;
    /**
     * The reference to hand to other tools (e.g. an AuroraBootBuild extension): `repository@sha256:…`
     * when pushed (what SystemExtension reads); the local tag when push is false. Docker only: BuildKit
     * builds straight into the extension, with no image kept.
     */
    readonly imageRef?: pulumi.Output<string>;
    /** The manifest digest when pushed, the image ID when local (`sha256:…`). Docker only. */
    readonly imageDigest?: pulumi.Output<string>;
    readonly path: pulumi.Output<string>;
    readonly sha256: pulumi.Output<string>;
    readonly rootHash: pulumi.Output<string>;
    /** The docker build (docker only). */
    readonly image?: docker.Image;
    /** The `docker save` step (docker with push: false only). */
    readonly save?: local.Command;
    readonly extension: SystemExtension;

    constructor(name: string, args: SysextFromDockerfileArgs, opts?: pulumi.ComponentResourceOptions) {
        const builder = args.builder ?? (dockerDaemonConfigured() ? "docker" : "buildkit");
        // Checked before the component registers, so bad arguments leave nothing half-made.
        throwIfProblems("SysextFromDockerfile", name, validate(name, args, builder));
        super(TYPE, name, {}, opts);
        this.builder = builder;

        const platform = args.platform ?? "linux/amd64";
        const extensionName = args.extensionName ?? name;
        const extensionArgs = {
            name: extensionName,
            outputDir: args.outputDir,
            layers: "last" as const,
            arch: platform === "linux/arm64" ? "arm64" as const : "amd64" as const,
            kind: args.kind,
            withOpt: args.withOpt,
            dropDisallowedPaths: args.dropDisallowedPaths,
            release: args.release,
            compression: args.compression,
            sourceDateEpoch: args.sourceDateEpoch,
            signing: args.signing,
            signingKeys: args.signingKeys,
        };

        if (builder === "buildkit") {
            this.extension = new SystemExtension(`${name}-extension`, {
                ...extensionArgs,
                source: {
                    dockerfile: {
                        context: args.context,
                        dockerfile: args.dockerfile,
                        target: args.target,
                        buildArgs: args.buildArgs,
                        buildkitHost: args.buildkitHost,
                        tls: args.buildkitTls,
                        cacheFrom: args.cacheFrom,
                        cacheTo: args.cacheTo,
                    },
                },
            }, { parent: this });
        } else {
            const built = this.dockerBuild(name, args, platform, extensionName);
            this.image = built.image;
            this.save = built.save;
            this.imageName = built.image.imageName;
            this.imageRef = built.imageRef;
            this.imageDigest = built.imageDigest;
            this.extension = new SystemExtension(`${name}-extension`, { ...extensionArgs, source: built.source },
                { parent: this, dependsOn: built.save ? [built.image, built.save] : [built.image] });
        }

        this.path = this.extension.path;
        this.sha256 = this.extension.sha256;
        this.rootHash = this.extension.rootHash;
        this.registerOutputs({
            builder: this.builder,
            imageName: this.imageName,
            imageRef: this.imageRef,
            imageDigest: this.imageDigest,
            path: this.path,
            sha256: this.sha256,
            rootHash: this.rootHash,
        });
    }

    /** @pulumi/docker's build, and how SystemExtension then reads the image: by repo digest, or a `docker save` archive. */
    private dockerBuild(name: string, args: SysextFromDockerfileArgs, platform: DockerPlatform, extensionName: string) {
        const push = args.push ?? true;
        const image = new docker.Image(`${name}-image`, {
            build: {
                context: args.context,
                dockerfile: args.dockerfile ?? pulumi.output(args.context).apply((c) => path.join(c, "Dockerfile")),
                platform,
                args: args.buildArgs,
                target: args.target,
                // The seed's Dockerfile uses a RUN heredoc, which only BuildKit understands.
                builderVersion: "BuilderBuildKit",
            },
            imageName: args.imageName!,
            skipPush: !push,
            registry: push ? args.registry : undefined,
        }, { parent: this });

        if (push) {
            const imageRef = image.repoDigest;
            return {
                image,
                imageRef,
                imageDigest: image.repoDigest.apply((d) => d.slice(d.indexOf("@") + 1)),
                source: { image: imageRef, insecureRegistry: args.insecureRegistry } as SystemExtensionArgs["source"],
            };
        }
        // docker save by image ID: exactly the image built here, whatever the tag points at later.
        const archive = args.localArchivePath ?? pulumi.output(args.outputDir).apply((d) => path.join(d, `${extensionName}.docker-save.tar`));
        const archivePath = pulumi.output(archive).apply((a) => path.resolve(a));
        const save = new local.Command(`${name}-save`, {
            create: pulumi.all([archivePath, image.repoDigest]).apply(([a, id]) => shellJoin(["docker", "save", "--output", a, id])),
            triggers: [image.repoDigest],
        }, { parent: this, dependsOn: [image] });
        return {
            image,
            save,
            // Tools that ask the daemon (auroraboot sysext with the socket) know the image by its tag.
            imageRef: image.imageName,
            imageDigest: image.repoDigest, // the local image ID
            // Known only once the archive is written, so the extension's check waits for it.
            source: { dockerArchive: pulumi.all([save.id, archivePath]).apply(([, a]) => a) } as SystemExtensionArgs["source"],
        };
    }
}

const DOCKER_ONLY = ["imageName", "push", "registry", "insecureRegistry", "localArchivePath"] as const;
const BUILDKIT_ONLY = ["buildkitHost", "buildkitTls", "cacheFrom", "cacheTo"] as const;

function validate(name: string, args: SysextFromDockerfileArgs, builder: DockerfileBuilder): InputProblem[] {
    const problems: InputProblem[] = [];
    const add = (property: string, reason: string) => problems.push({ property, reason });
    if (args.builder !== undefined && args.builder !== "buildkit" && args.builder !== "docker") add("builder", `${JSON.stringify(args.builder)} is not "buildkit" or "docker"`);
    if (args.context === undefined || (isKnown(args.context) && args.context.trim() === "")) add("context", "is required: the Docker build context folder");
    if (args.outputDir === undefined || (isKnown(args.outputDir) && args.outputDir.trim() === "")) add("outputDir", "is required: the folder the extension image is written to");
    if (builder === "docker") {
        if (args.imageName === undefined || (isKnown(args.imageName) && args.imageName.trim() === "")) {
            add("imageName", "is required with builder \"docker\": repository:tag to build, e.g. registry.example.com/kairos/k3s-sysext:v1");
        } else if (isKnown(args.imageName) && args.imageName.includes("@")) {
            add("imageName", `${args.imageName} names a digest; give repository:tag (the digest is an output, imageDigest)`);
        }
        for (const p of BUILDKIT_ONLY) if (args[p] !== undefined) add(p, "is only used with builder \"buildkit\"");
    } else {
        const why = args.builder === undefined ? " (the default here: no Docker daemon is configured, DOCKER_HOST is unset and /var/run/docker.sock is absent; set builder: \"docker\" to use one)" : "";
        for (const p of DOCKER_ONLY) if (args[p] !== undefined) add(p, `is only used with builder "docker"; this component builds with BuildKit${why}`);
    }
    if (args.platform !== undefined && !PLATFORMS.includes(args.platform)) add("platform", `${JSON.stringify(args.platform)} is not one of ${PLATFORMS.join(", ")}`);
    const extensionName = args.extensionName ?? name;
    if (!EXTENSION_NAME_PATTERN.test(extensionName)) {
        add("extensionName",
            `${JSON.stringify(extensionName)}${args.extensionName === undefined ? " (the component name)" : ""} must be 1-64 letters, digits, '.' or '-', starting with a letter or digit; set extensionName`);
    }
    if (args.kind !== undefined && args.kind !== "sysext" && args.kind !== "confext") add("kind", `${JSON.stringify(args.kind)} is not "sysext" or "confext"`);
    if (args.kind === "confext" && args.withOpt === true) add("withOpt", "only a sysext can carry /opt; a confext holds /etc");
    if (args.signing !== undefined && args.signingKeys !== undefined) add("signingKeys", "give signing or signingKeys, not both");
    const push = args.push ?? true;
    if (builder === "docker" && !push && args.registry !== undefined) add("registry", "is only used to push; push is false");
    if (builder === "docker" && !push && args.insecureRegistry !== undefined) add("insecureRegistry", "is only used to pull a pushed image; push is false");
    if (builder === "docker" && push && args.localArchivePath !== undefined) add("localArchivePath", "is only used when push is false");
    return problems;
}

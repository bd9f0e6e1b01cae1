// SysextFromDockerfile: the seed's way of making an extension — a Dockerfile whose last stage is
// `FROM scratch` + `COPY --from=builder /k3s /`, so the image's last layer holds exactly the files —
// built with @pulumi/docker and turned into a signed NAME.sysext.raw by the SystemExtension resource
// (`layers: "last"`, auroraboot's semantics). The image is pushed and pinned by its repo digest, or
// kept local and handed over as a `docker save` archive, since SystemExtension reads registries
// and files but never a Docker daemon.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import { local } from "@pulumi/command";
import { SystemExtension, SystemExtensionArgs } from "../provider/system-extension";
import type { SigningKeys } from "../provider/signing-keys";
import { shellJoin } from "./auroraboot-commands";
import { InputProblem, EXTENSION_NAME_PATTERN, isKnown, throwIfProblems } from "./construct-kit";

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
    /** `repository:tag` to build, e.g. `registry.example.com/kairos/k3s-sysext:v1.32`. */
    imageName: pulumi.Input<string>;
    /** Push to the registry in `imageName`; false keeps the image in the local daemon. @default true */
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
    /** The tag that was built. */
    readonly imageName: pulumi.Output<string>;
    /**
     * The reference to hand to other tools (e.g. an AuroraBootBuild extension): `repository@sha256:…`
     * when pushed (what SystemExtension reads); the local tag when push is false.
     */
    readonly imageRef: pulumi.Output<string>;
    /** The manifest digest when pushed, the image ID when local (`sha256:…`). */
    readonly imageDigest: pulumi.Output<string>;
    readonly path: pulumi.Output<string>;
    readonly sha256: pulumi.Output<string>;
    readonly rootHash: pulumi.Output<string>;
    readonly image: docker.Image;
    /** The `docker save` step (push: false only). */
    readonly save?: local.Command;
    readonly extension: SystemExtension;

    constructor(name: string, args: SysextFromDockerfileArgs, opts?: pulumi.ComponentResourceOptions) {
        // Checked before the component registers, so bad arguments leave nothing half-made.
        throwIfProblems("SysextFromDockerfile", name, validate(name, args));
        super(TYPE, name, {}, opts);

        const push = args.push ?? true;
        const platform = args.platform ?? "linux/amd64";
        const extensionName = args.extensionName ?? name;

        this.image = new docker.Image(`${name}-image`, {
            build: {
                context: args.context,
                dockerfile: args.dockerfile ?? pulumi.output(args.context).apply((c) => path.join(c, "Dockerfile")),
                platform,
                args: args.buildArgs,
                target: args.target,
                // The seed's Dockerfile uses a RUN heredoc, which only BuildKit understands.
                builderVersion: "BuilderBuildKit",
            },
            imageName: args.imageName,
            skipPush: !push,
            registry: push ? args.registry : undefined,
        }, { parent: this });

        let source: SystemExtensionArgs["source"];
        if (push) {
            this.imageRef = this.image.repoDigest;
            this.imageDigest = this.image.repoDigest.apply((d) => d.slice(d.indexOf("@") + 1));
            source = { image: this.imageRef, insecureRegistry: args.insecureRegistry };
        } else {
            // Tools that ask the daemon (auroraboot sysext with the socket) know the image by its tag.
            this.imageRef = this.image.imageName;
            this.imageDigest = this.image.repoDigest; // the local image ID

            // docker save by image ID: exactly the image built here, whatever the tag points at later.
            const archive = args.localArchivePath ?? pulumi.output(args.outputDir).apply((d) => path.join(d, `${extensionName}.docker-save.tar`));
            const archivePath = pulumi.output(archive).apply((a) => path.resolve(a));
            this.save = new local.Command(`${name}-save`, {
                create: pulumi.all([archivePath, this.image.repoDigest]).apply(([a, id]) => shellJoin(["docker", "save", "--output", a, id])),
                triggers: [this.image.repoDigest],
            }, { parent: this, dependsOn: [this.image] });
            // Known only once the archive is written, so the extension's check waits for it.
            source = { dockerArchive: pulumi.all([this.save.id, archivePath]).apply(([, a]) => a) };
        }

        this.extension = new SystemExtension(`${name}-extension`, {
            name: extensionName,
            outputDir: args.outputDir,
            source,
            layers: "last",
            arch: platform === "linux/arm64" ? "arm64" : "amd64",
            kind: args.kind,
            withOpt: args.withOpt,
            dropDisallowedPaths: args.dropDisallowedPaths,
            release: args.release,
            compression: args.compression,
            sourceDateEpoch: args.sourceDateEpoch,
            signing: args.signing,
            signingKeys: args.signingKeys,
        }, { parent: this, dependsOn: this.save ? [this.image, this.save] : [this.image] });

        this.imageName = this.image.imageName;
        this.path = this.extension.path;
        this.sha256 = this.extension.sha256;
        this.rootHash = this.extension.rootHash;
        this.registerOutputs({
            imageName: this.imageName,
            imageRef: this.imageRef,
            imageDigest: this.imageDigest,
            path: this.path,
            sha256: this.sha256,
            rootHash: this.rootHash,
        });
    }
}

function validate(name: string, args: SysextFromDockerfileArgs): InputProblem[] {
    const problems: InputProblem[] = [];
    const add = (property: string, reason: string) => problems.push({ property, reason });
    if (args.context === undefined || (isKnown(args.context) && args.context.trim() === "")) add("context", "is required: the Docker build context folder");
    if (args.outputDir === undefined || (isKnown(args.outputDir) && args.outputDir.trim() === "")) add("outputDir", "is required: the folder the extension image is written to");
    if (args.imageName === undefined || (isKnown(args.imageName) && args.imageName.trim() === "")) {
        add("imageName", "is required: repository:tag to build, e.g. registry.example.com/kairos/k3s-sysext:v1");
    } else if (isKnown(args.imageName) && args.imageName.includes("@")) {
        add("imageName", `${args.imageName} names a digest; give repository:tag (the digest is an output, imageDigest)`);
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
    if (!push && args.registry !== undefined) add("registry", "is only used to push; push is false");
    if (!push && args.insecureRegistry !== undefined) add("insecureRegistry", "is only used to pull a pushed image; push is false");
    if (push && args.localArchivePath !== undefined) add("localArchivePath", "is only used when push is false");
    return problems;
}

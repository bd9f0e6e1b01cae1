// AuroraBootBuild: the seed blog post's pipeline run through the official AuroraBoot container, as
// @pulumi/command resources: `genkey` (once), one `sysext` per extension, then `build-uki
// --output-type iso` with the extensions as the ISO overlay. The component only composes resources;
// the commands run when the engine creates them. The command lines are rendered by
// ./auroraboot-commands.ts (see there for where they differ from the seed's).
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { local } from "@pulumi/command";
import type { SigningKeys } from "../provider/signing-keys";
import { InputProblem, EXTENSION_NAME_PATTERN, isKnown, throwIfProblems } from "./construct-kit";
import {
    AURORABOOT_REPOSITORY, BuildUkiSpec, CONTAINER_PATHS, DEFAULT_AURORABOOT_VERSION, ExtensionSpec, GenkeySpec, HostDirs, KeyFlagStyle,
    SecureBootEnroll, buildUkiArgv, genkeyArgv, keyFlagsForVersion, parseVersion, shellJoin, sysextArgv, ukiSource,
} from "./auroraboot-commands";

export * from "./auroraboot-commands";

export interface AuroraBootExtension {
    /** Extension name: the file is NAME.sysext.raw (or NAME.confext.raw). Letters, digits, '.', '-'. */
    name: string;
    /** Image whose last layer holds the files, e.g. `SysextFromDockerfile.imageRef` (a pinned digest). */
    image: pulumi.Input<string>;
    /** @default "sysext" */
    kind?: "sysext" | "confext";
    /** Adds EXTENSION_RELOAD_MANAGER=1 so systemd reloads units on merge (sysext only). @default false */
    serviceReload?: boolean;
    /** Also take /opt (sysext only). @default false */
    withOpt?: boolean;
}

export interface AuroraBootGenkeyArgs {
    /** Certificate name: CN=<name>-PK, <name>-KEK, <name>-db. @default the component's name */
    name?: string;
    /** Certificate validity. @default AuroraBoot's default, 365 */
    expirationInDays?: number;
    /** Leave Microsoft's certificates out of KEK and db (can brick hardware that needs them). @default false */
    skipMicrosoftCerts?: boolean;
    /**
     * Raise to make a new key set, in `<workDir>/keys-rotation-<n>`; nothing else regenerates keys
     * (a changed name or version only logs that the keys are kept). @default 0 (`<workDir>/keys`)
     */
    rotation?: number;
}

export interface AuroraBootBuildArgs {
    /** Host folder holding keys/, system-extensions/ (the ISO overlay) and build/ (the ISO). */
    workDir: pulumi.Input<string>;
    /** The Kairos OS image for build-uki (a `-uki` image); a bare reference gets the `oci:` scheme. */
    osImage: pulumi.Input<string>;
    /** Extensions built with `auroraboot sysext` and put on the ISO. @default [] */
    extensions?: AuroraBootExtension[];
    /** AuroraBoot release tag. @default DEFAULT_AURORABOOT_VERSION ("v0.26.2") */
    version?: string;
    /** The AuroraBoot image, e.g. pinned by digest. @default `quay.io/kairos/auroraboot:<version>` */
    image?: pulumi.Input<string>;
    /** How build-uki is given the keys. @default "split" for v0.9.0 and later, "directory" (`-k`) before */
    keyFlags?: KeyFlagStyle;
    /** Target architecture of the extensions and the ISO. @default "amd64" */
    arch?: "amd64" | "arm64";
    /** Generate the keys with `auroraboot genkey`. @default used when neither signingKeys nor keysDir is given */
    genkey?: AuroraBootGenkeyArgs;
    /** Use this key set (its keyDir has genkey's layout); no genkey step. @default none */
    signingKeys?: SigningKeys;
    /** Use an existing key folder in genkey's layout; no genkey step. @default none */
    keysDir?: pulumi.Input<string>;
    /**
     * Docker socket mounted into the sysext runs, as the seed does, so images built locally are found.
     * null mounts none. @default "/var/run/docker.sock"
     */
    dockerSocket?: string | null;
    /** Also mount the socket into build-uki (an OS image only the local daemon has). @default false */
    osImageFromDaemon?: boolean;
    /** ISO base name (`--name`); the ISO is then `<workDir>/build/<isoName>.iso`. @default AuroraBoot's `kairos-<flavor>-…-uki.iso` */
    isoName?: string;
    /** Boot menu title. @default AuroraBoot's "Kairos" */
    bootBranding?: string;
    /** Appended to the default kernel command line (`--extend-cmdline`). @default none */
    extendCmdline?: string;
    /** systemd-boot's secure-boot-enroll setting. @default AuroraBoot's "if-safe" */
    secureBootEnroll?: SecureBootEnroll;
}

const TYPE = "kairos:index:AuroraBootBuild";
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const ISO_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const CERT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 ._-]*$/;

/** The seed's trusted-boot pipeline through the AuroraBoot container (needs a Docker engine at `up`). */
export class AuroraBootBuild extends pulumi.ComponentResource {
    readonly keysDir: pulumi.Output<string>;
    readonly extensionsDir: pulumi.Output<string>;
    readonly outputDir: pulumi.Output<string>;
    /** Extension name → host path of NAME.sysext.raw. */
    readonly extensionPaths: pulumi.Output<Record<string, string>>;
    /** Known only when `isoName` is given. */
    readonly isoPath: pulumi.Output<string | undefined>;
    /** The shell command of each step, as the Command resources run them. */
    readonly commandLines: pulumi.Output<{ genkey?: string; sysext: Record<string, string>; buildUki: string }>;
    readonly keygen?: local.Command;
    readonly sysexts: Record<string, local.Command>;
    readonly buildUki: local.Command;

    constructor(name: string, args: AuroraBootBuildArgs, opts?: pulumi.ComponentResourceOptions) {
        // Checked before the component registers, so bad arguments leave nothing half-made.
        throwIfProblems("AuroraBootBuild", name, validate(args));
        super(TYPE, name, {}, opts);

        const version = args.version ?? DEFAULT_AURORABOOT_VERSION;
        const arch = args.arch ?? "amd64";
        const extensions = args.extensions ?? [];
        const dockerSocket = args.dockerSocket === undefined ? CONTAINER_PATHS.dockerSocket : args.dockerSocket;
        const rotation = args.genkey?.rotation ?? 0;
        const generate = !args.signingKeys && args.keysDir === undefined;

        const workDir = pulumi.output(args.workDir).apply((d) => path.resolve(d));
        const keysDir = args.signingKeys
            ? args.signingKeys.keyDir
            : args.keysDir !== undefined
              ? pulumi.output(args.keysDir).apply((d) => path.resolve(d))
              : workDir.apply((d) => path.join(d, rotation > 0 ? `keys-rotation-${rotation}` : "keys"));
        const dirs = pulumi.all([workDir, keysDir]).apply(([w, k]): HostDirs => ({ keys: k, extensions: path.join(w, "system-extensions"), output: path.join(w, "build") }));

        // Each command is rendered from its own inputs only, so it depends on nothing else
        // (genkey does not wait for an extension's image build, for instance).
        const image = pulumi.output(args.image ?? `${AURORABOOT_REPOSITORY}:${version}`);
        const genkeySpec: GenkeySpec | undefined = generate
            ? { name: args.genkey?.name ?? name, expirationInDays: args.genkey?.expirationInDays, skipMicrosoftCerts: args.genkey?.skipMicrosoftCerts }
            : undefined;
        const extensionSpecs = extensions.map((e) =>
            pulumi.output(e.image).apply((ref): ExtensionSpec => ({
                name: e.name, image: ref, kind: e.kind ?? "sysext", arch, serviceReload: e.serviceReload, withOpt: e.withOpt,
            })),
        );
        const ukiSpec = pulumi.output(args.osImage).apply((osImage): BuildUkiSpec => ({
            source: ukiSource(osImage),
            arch,
            keyFlags: args.keyFlags ?? keyFlagsForVersion(version),
            mountDockerSocket: args.osImageFromDaemon ?? false,
            isoName: args.isoName,
            bootBranding: args.bootBranding,
            extendCmdline: args.extendCmdline,
            secureBootEnroll: args.secureBootEnroll,
        }));

        // What identifies the keys; a change reruns every step that signs with them.
        // (keyMaterialHash is optional in schema.json only for states older than it; every create writes it.)
        const keysTrigger: pulumi.Input<string> = args.signingKeys
            ? (args.signingKeys.keyMaterialHash as pulumi.Output<string>)
            : args.keysDir !== undefined ? keysDir.apply((d) => `dir:${d}`) : `genkey:rotation-${rotation}`;

        let genkeyCommand: pulumi.Output<string> | undefined;
        if (genkeySpec) {
            genkeyCommand = pulumi.all([image, keysDir]).apply(([img, k]) => shellJoin(genkeyArgv(img, k, genkeySpec)));
            this.keygen = new local.Command(`${name}-genkey`, {
                create: genkeyCommand,
                // Keys are roots of trust: an input change other than `rotation` keeps them, and says so.
                update: keysDir.apply((d) => `${shellJoin(["echo", `pulumi-kairos: keeping the keys in ${d}; raise genkey.rotation to make new ones`])} >&2`),
                // @pulumi/command replaces a Command whose triggers change: a new rotation runs genkey afresh.
                triggers: [rotation],
            }, { parent: this });
        }
        const keysResource: pulumi.Resource | undefined = this.keygen ?? args.signingKeys;

        const extensionTriggers = extensionSpecs.map((spec) => spec.apply((x) => JSON.stringify(x)));
        const sysextCommands = extensionSpecs.map((spec) =>
            pulumi.all([image, dirs, spec]).apply(([img, d, x]) => shellJoin(sysextArgv(img, d, dockerSocket, x))),
        );
        this.sysexts = {};
        const sysextList: local.Command[] = [];
        extensions.forEach((e, i) => {
            const cmd = new local.Command(`${name}-${e.kind ?? "sysext"}-${e.name}`, {
                create: sysextCommands[i],
                triggers: [keysTrigger, extensionTriggers[i]],
            }, { parent: this, dependsOn: keysResource ? [keysResource] : [] });
            this.sysexts[e.name] = cmd;
            sysextList.push(cmd);
        });

        const buildUkiCommand = pulumi.all([image, dirs, ukiSpec]).apply(([img, d, b]) => shellJoin(buildUkiArgv(img, d, dockerSocket, b)));
        this.buildUki = new local.Command(`${name}-build-uki`, {
            create: buildUkiCommand,
            triggers: [keysTrigger, ukiSpec.apply((b) => JSON.stringify(b)), ...extensionTriggers],
        }, { parent: this, dependsOn: [...(keysResource ? [keysResource] : []), ...sysextList] });

        this.keysDir = keysDir;
        this.extensionsDir = dirs.apply((d) => d.extensions);
        this.outputDir = dirs.apply((d) => d.output);
        this.extensionPaths = dirs.apply((d) => Object.fromEntries(extensions.map((e) => [e.name, path.join(d.extensions, `${e.name}.${e.kind ?? "sysext"}.raw`)])));
        this.isoPath = dirs.apply((d) => (args.isoName !== undefined ? path.join(d.output, `${args.isoName}.iso`) : undefined));
        this.commandLines = pulumi.all([genkeyCommand, pulumi.all(sysextCommands), buildUkiCommand]).apply(([g, sx, b]) => ({
            ...(g !== undefined ? { genkey: g } : {}),
            sysext: Object.fromEntries(extensions.map((e, i) => [e.name, sx[i]])),
            buildUki: b,
        }));
        this.registerOutputs({
            keysDir: this.keysDir,
            extensionsDir: this.extensionsDir,
            outputDir: this.outputDir,
            extensionPaths: this.extensionPaths,
            isoPath: this.isoPath,
            commandLines: this.commandLines,
        });
    }
}

function validate(args: AuroraBootBuildArgs): InputProblem[] {
    const problems: InputProblem[] = [];
    const add = (property: string, reason: string) => problems.push({ property, reason });

    if (args.workDir === undefined) add("workDir", "is required: the host folder for keys/, system-extensions/ and build/");
    checkHostPath(args.workDir, "workDir", add);
    checkHostPath(args.keysDir, "keysDir", add);
    if (args.osImage === undefined) add("osImage", "is required: the Kairos -uki image build-uki turns into the ISO");
    else if (isKnown(args.osImage)) {
        if (args.osImage.trim() === "") add("osImage", "must not be empty; give the Kairos -uki image, e.g. quay.io/kairos/ubuntu:24.04-core-amd64-generic-v3.6.0-uki");
        else if (/^(dir|file|ocifile):/.test(args.osImage)) {
            add("osImage", `${args.osImage}: only image references (oci:, docker: or none) are supported, since host paths are not mounted into the container`);
        }
    }
    const version = args.version ?? DEFAULT_AURORABOOT_VERSION;
    if (!TAG_PATTERN.test(version)) add("version", `${JSON.stringify(version)} is not an image tag; give e.g. "${DEFAULT_AURORABOOT_VERSION}"`);
    if (args.keyFlags !== undefined) {
        if (args.keyFlags !== "split" && args.keyFlags !== "directory") add("keyFlags", `${JSON.stringify(args.keyFlags)} is not "split" or "directory"`);
        else if (args.image === undefined && parseVersion(version) && keyFlagsForVersion(version) !== args.keyFlags) {
            add("keyFlags", args.keyFlags === "directory"
                ? `AuroraBoot ${version} has no build-uki -k flag (removed in v0.9.0); use "split" or leave keyFlags unset`
                : `AuroraBoot ${version} predates --sb-key/--sb-cert (v0.9.0); use "directory" or leave keyFlags unset`);
        }
    }
    if (args.arch !== undefined && args.arch !== "amd64" && args.arch !== "arm64") add("arch", `${JSON.stringify(args.arch)} is not "amd64" or "arm64"`);

    const keySources = [args.genkey && "genkey", args.signingKeys && "signingKeys", args.keysDir !== undefined && "keysDir"].filter(Boolean);
    if (keySources.length > 1) add(String(keySources[1]), `give one key source; ${keySources.join(" and ")} are both set`);
    if (args.genkey) {
        const g = args.genkey;
        if (g.name !== undefined && !CERT_NAME_PATTERN.test(g.name)) add("genkey.name", `${JSON.stringify(g.name)} must start with a letter or digit and hold only letters, digits, spaces, '.', '_' or '-' (it becomes CN=<name>-PK)`);
        if (g.expirationInDays !== undefined && !(Number.isInteger(g.expirationInDays) && g.expirationInDays > 0)) add("genkey.expirationInDays", `${g.expirationInDays} is not a positive whole number of days`);
        if (g.rotation !== undefined && !(Number.isInteger(g.rotation) && g.rotation >= 0)) add("genkey.rotation", `${g.rotation} is not a whole number >= 0`);
    }

    const seen = new Map<string, number>();
    (args.extensions ?? []).forEach((e, i) => {
        const at = `extensions[${i}]`;
        if (typeof e.name !== "string" || !EXTENSION_NAME_PATTERN.test(e.name)) {
            add(`${at}.name`, `${JSON.stringify(e.name)} must be 1-64 letters, digits, '.' or '-', starting with a letter or digit (systemd cuts names at '_' and '+')`);
        } else if (seen.has(e.name)) add(`${at}.name`, `"${e.name}" is already the name of extensions[${seen.get(e.name)}]`);
        else seen.set(e.name, i);
        if (e.image === undefined || (isKnown(e.image) && e.image.trim() === "")) add(`${at}.image`, "must name an image");
        const kind = e.kind ?? "sysext";
        if (kind !== "sysext" && kind !== "confext") add(`${at}.kind`, `${JSON.stringify(e.kind)} is not "sysext" or "confext"`);
        if (kind === "confext" && e.serviceReload) add(`${at}.serviceReload`, "only a sysext can ask for a service reload");
        if (kind === "confext" && e.withOpt) add(`${at}.withOpt`, "only a sysext can carry /opt; a confext holds /etc");
    });

    if (args.dockerSocket !== undefined && args.dockerSocket !== null && !path.isAbsolute(args.dockerSocket)) add("dockerSocket", `${args.dockerSocket} is not an absolute path`);
    if (args.osImageFromDaemon && args.dockerSocket === null) add("osImageFromDaemon", "needs the Docker socket, but dockerSocket is null");
    if (args.isoName !== undefined) {
        if (!ISO_NAME_PATTERN.test(args.isoName)) add("isoName", `${JSON.stringify(args.isoName)} must be letters, digits, '.', '_' or '-'`);
        else if (args.isoName.endsWith(".iso")) add("isoName", `give it without ".iso" (AuroraBoot appends it): "${args.isoName.slice(0, -4)}"`);
    }
    if (args.secureBootEnroll !== undefined && !["off", "manual", "if-safe", "force"].includes(args.secureBootEnroll)) {
        add("secureBootEnroll", `${JSON.stringify(args.secureBootEnroll)} is not one of off, manual, if-safe, force`);
    }
    return problems;
}

function checkHostPath(v: pulumi.Input<string> | undefined, at: string, add: (p: string, r: string) => void): void {
    if (!isKnown(v)) return;
    if (v.trim() === "") add(at, "must not be empty");
    else if (v.includes(":")) add(at, `${v} contains ':', which docker -v cannot mount`);
}

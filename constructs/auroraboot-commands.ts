// Pure rendering of the AuroraBoot command lines AuroraBootBuild runs (no Pulumi values; unit-
// tested argv by argv). They follow the seed ("Creating system extensions for Kairos", kairos-docs
// blog, 2024-11-25), with the container paths it uses (/keys, /build, /result, /system-extensions).
// Two places where today's AuroraBoot needs more than the seed wrote:
//   - `genkey` takes the certificate name as a positional argument (the seed gives none; since
//     AuroraBoot #498 an empty name fails with "name is required").
//   - `build-uki -k DIR` was removed in v0.9.0 (AuroraBoot #317, 2025-07); the same files are now
//     passed one by one: --public-keys DIR --tpm-pcr-private-key DIR/tpm2-pcr-private.pem
//     --sb-key DIR/db.key --sb-cert DIR/db.pem (exactly what `-k` read from DIR). `keyFlags` picks
//     the form; by default it follows the AuroraBoot version.
// urfave/cli (AuroraBoot's CLI library) stops reading flags at the first positional argument, so
// every flag comes before NAME/IMAGE/SOURCE.

export const AURORABOOT_REPOSITORY = "quay.io/kairos/auroraboot";
/** The release the Kairos documentation pins (its `auroraBootVersion`), tagged 2026-08-06. */
export const DEFAULT_AURORABOOT_VERSION = "v0.26.2";
/** build-uki's one-flag `-k DIR` form exists up to v0.8.x; v0.9.0 split it (AuroraBoot #317). */
const SPLIT_KEY_FLAGS_SINCE: [number, number, number] = [0, 9, 0];

/** Where the seed mounts things inside the container. */
export const CONTAINER_PATHS = {
    keys: "/keys",
    sysextOutput: "/build",
    result: "/result",
    overlayIso: "/system-extensions",
    dockerSocket: "/var/run/docker.sock",
} as const;

/** `directory`: `-k /keys` (AuroraBoot < v0.9.0); `split`: the four key flags (v0.9.0 and later). */
export type KeyFlagStyle = "split" | "directory";
export type SecureBootEnroll = "off" | "manual" | "if-safe" | "force";

export interface GenkeySpec {
    /** Certificate name: CN=<name>-PK, <name>-KEK, <name>-db. */
    name: string;
    /** @default omitted: AuroraBoot's 365 */
    expirationInDays?: number;
    /** @default false */
    skipMicrosoftCerts?: boolean;
}

export interface ExtensionSpec {
    name: string;
    /** Image reference whose last layer becomes the extension. */
    image: string;
    kind: "sysext" | "confext";
    arch: "amd64" | "arm64";
    /** @default false */
    serviceReload?: boolean;
    /** @default false */
    withOpt?: boolean;
}

export interface BuildUkiSpec {
    /** build-uki's source argument, e.g. `oci:quay.io/kairos/ubuntu:24.04-core-amd64-generic-v3.6.0-uki`. */
    source: string;
    arch: "amd64" | "arm64";
    keyFlags: KeyFlagStyle;
    /** Mount the Docker socket (an OS image that only exists in the local daemon). */
    mountDockerSocket: boolean;
    /** `--name`. @default omitted: AuroraBoot names the ISO */
    isoName?: string;
    /** @default omitted: AuroraBoot's "Kairos" */
    bootBranding?: string;
    /** @default omitted */
    extendCmdline?: string;
    /** @default omitted: AuroraBoot's "if-safe" */
    secureBootEnroll?: SecureBootEnroll;
}

/** Host folders bind-mounted into the container; absolute paths. */
export interface HostDirs {
    keys: string;
    extensions: string;
    output: string;
}

export interface AuroraBootPlan {
    /** The AuroraBoot container image. */
    image: string;
    dirs: HostDirs;
    /** Host path of the Docker socket, or null to mount none. */
    dockerSocket: string | null;
    /** @default no genkey step (the keys exist already) */
    genkey?: GenkeySpec;
    extensions: ExtensionSpec[];
    buildUki: BuildUkiSpec;
}

export interface AuroraBootArgvs {
    genkey?: string[];
    sysext: Array<{ name: string; argv: string[] }>;
    buildUki: string[];
}

function dockerRun(o: { privileged?: boolean; platform?: string; mounts: Array<[string, string]> }, image: string, args: string[]): string[] {
    return [
        "docker", "run", "--rm",
        ...(o.privileged ? ["--privileged"] : []),
        ...(o.platform ? ["--platform", o.platform] : []),
        ...o.mounts.flatMap(([host, container]) => ["-v", `${host}:${container}`]),
        image,
        ...args,
    ];
}

/** `docker run … genkey --output /keys [flags] NAME` (seed: `genkey --output /keys`). */
export function genkeyArgv(image: string, keysHostDir: string, g: GenkeySpec): string[] {
    return dockerRun({ mounts: [[keysHostDir, CONTAINER_PATHS.keys]] }, image, [
        "genkey",
        "--output", CONTAINER_PATHS.keys,
        ...(g.expirationInDays !== undefined ? ["--expiration-in-days", String(g.expirationInDays)] : []),
        ...(g.skipMicrosoftCerts ? ["--skip-microsoft-certs-I-KNOW-WHAT-IM-DOING"] : []),
        g.name,
    ]);
}

/**
 * `docker run … sysext --private-key=/keys/db.key --certificate=/keys/db.pem --output=/build NAME IMAGE`,
 * the seed's line; `--arch`, `--service-reload` and `--with-opt` only when asked for.
 */
export function sysextArgv(image: string, dirs: HostDirs, dockerSocket: string | null, e: ExtensionSpec): string[] {
    const mounts: Array<[string, string]> = [[dirs.keys, CONTAINER_PATHS.keys], [dirs.extensions, CONTAINER_PATHS.sysextOutput]];
    if (dockerSocket) mounts.push([dockerSocket, CONTAINER_PATHS.dockerSocket]);
    return dockerRun({ mounts }, image, [
        e.kind,
        `--private-key=${CONTAINER_PATHS.keys}/db.key`,
        `--certificate=${CONTAINER_PATHS.keys}/db.pem`,
        `--output=${CONTAINER_PATHS.sysextOutput}`,
        ...(e.arch !== "amd64" ? [`--arch=${e.arch}`] : []),
        ...(e.serviceReload ? ["--service-reload"] : []),
        ...(e.withOpt ? ["--with-opt"] : []),
        e.name,
        e.image,
    ]);
}

/** The key flags build-uki takes: the seed's `-k /keys`, or the same files named one by one. */
export function buildUkiKeyArgs(style: KeyFlagStyle): string[] {
    const k = CONTAINER_PATHS.keys;
    if (style === "directory") return ["-k", k];
    return ["--public-keys", k, "--tpm-pcr-private-key", `${k}/tpm2-pcr-private.pem`, "--sb-key", `${k}/db.key`, "--sb-cert", `${k}/db.pem`];
}

/**
 * `docker run --rm --privileged … build-uki --output-dir /result --overlay-iso /system-extensions
 * <keys> --output-type iso SOURCE`, the seed's line.
 */
export function buildUkiArgv(image: string, dirs: HostDirs, dockerSocket: string | null, b: BuildUkiSpec): string[] {
    const mounts: Array<[string, string]> = [
        [dirs.output, CONTAINER_PATHS.result],
        [dirs.keys, CONTAINER_PATHS.keys],
        [dirs.extensions, CONTAINER_PATHS.overlayIso],
    ];
    if (b.mountDockerSocket && dockerSocket) mounts.push([dockerSocket, CONTAINER_PATHS.dockerSocket]);
    // build-uki has no --arch: it builds for the architecture it runs on.
    return dockerRun({ privileged: true, platform: b.arch !== "amd64" ? `linux/${b.arch}` : undefined, mounts }, image, [
        "build-uki",
        "--output-dir", CONTAINER_PATHS.result,
        "--overlay-iso", CONTAINER_PATHS.overlayIso,
        ...buildUkiKeyArgs(b.keyFlags),
        "--output-type", "iso",
        ...(b.isoName !== undefined ? ["--name", b.isoName] : []),
        ...(b.bootBranding !== undefined ? ["--boot-branding", b.bootBranding] : []),
        ...(b.extendCmdline !== undefined ? ["--extend-cmdline", b.extendCmdline] : []),
        ...(b.secureBootEnroll !== undefined ? ["--secure-boot-enroll", b.secureBootEnroll] : []),
        b.source,
    ]);
}

/** Every command line of a plan, in run order. */
export function auroraBootArgvs(plan: AuroraBootPlan): AuroraBootArgvs {
    return {
        genkey: plan.genkey ? genkeyArgv(plan.image, plan.dirs.keys, plan.genkey) : undefined,
        sysext: plan.extensions.map((e) => ({ name: e.name, argv: sysextArgv(plan.image, plan.dirs, plan.dockerSocket, e) })),
        buildUki: buildUkiArgv(plan.image, plan.dirs, plan.dockerSocket, plan.buildUki),
    };
}

const SHELL_SAFE = /^[A-Za-z0-9_\/.,:=@%+-]+$/;

/** POSIX shell quoting: safe words as they are, anything else in single quotes. */
export function shellQuote(arg: string): string {
    return SHELL_SAFE.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellJoin(argv: string[]): string {
    return argv.map(shellQuote).join(" ");
}

/** `split` from v0.9.0 on (and for tags that are not versions, e.g. `latest`); `directory` before. */
export function keyFlagsForVersion(version: string): KeyFlagStyle {
    const v = parseVersion(version);
    if (!v) return "split";
    for (let i = 0; i < 3; i++) if (v[i] !== SPLIT_KEY_FLAGS_SINCE[i]) return v[i] > SPLIT_KEY_FLAGS_SINCE[i] ? "split" : "directory";
    return "split";
}

/** [major, minor, patch] of a `vX.Y.Z` tag; undefined for other tags. */
export function parseVersion(version: string): [number, number, number] | undefined {
    const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
    return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** build-uki's source argument: image references get the seed's `oci:` scheme. */
export function ukiSource(osImage: string): string {
    return /^(oci|docker):/.test(osImage) ? osImage : `oci:${osImage}`;
}

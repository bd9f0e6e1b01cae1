// Every external tool the build steps (and this repo's tests) run: the distribution packages that
// provide it and how to ask its version. A missing tool's error and `pulumi-kairos doctor` read this.

/** The host's systemd-boot-efi files, which KairosUkiImage uses when the OS image ships no stub or systemd-boot. */
export const HOST_EFI_DIR = "/usr/lib/systemd/boot/efi";

export type ToolUser = "SigningKeys" | "SystemExtension" | "KairosUkiImage" | "BootMedia" | "PromotedArtifact" | "SysextRelease" | "ExtensionCatalog" | "OsRelease" | "PromotedRelease" | "tests";

export interface Tool {
    /** Debian/Ubuntu package. */
    debian: string;
    /** Fedora package. */
    fedora: string;
    /** Arguments that make it print its version (the first version-like number in the output counts). */
    versionArgs: string[];
    /** Who runs it; a resource listed needs it for every build unless `when` says otherwise. */
    usedBy: ToolUser[];
    /** Needed only in this case. */
    when?: string;
    /** How to get it, where no distribution package provides it (replaces the apt-get/dnf advice). */
    install?: string;
}

const MTOOLS: Tool = { debian: "mtools", fedora: "mtools", versionArgs: ["--version"], usedBy: ["BootMedia"] };
const SBSIGNTOOLS: Tool = { debian: "sbsigntool", fedora: "sbsigntools", versionArgs: ["--version"], usedBy: ["KairosUkiImage"] };
const EFITOOLS: Tool = { debian: "efitools", fedora: "efitools", versionArgs: ["--version"], usedBy: ["SigningKeys"] };

export const TOOLS: Record<string, Tool> = {
    openssl: { debian: "openssl", fedora: "openssl", versionArgs: ["version"], usedBy: ["SigningKeys", "SystemExtension", "KairosUkiImage", "PromotedArtifact"] },
    "cert-to-efi-sig-list": EFITOOLS,
    "sign-efi-sig-list": EFITOOLS,
    "mkfs.erofs": { debian: "erofs-utils", fedora: "erofs-utils", versionArgs: ["--help"], usedBy: ["SystemExtension"] },
    veritysetup: { debian: "cryptsetup-bin", fedora: "cryptsetup", versionArgs: ["--version"], usedBy: ["SystemExtension", "PromotedArtifact"] },
    sfdisk: { debian: "fdisk", fedora: "util-linux", versionArgs: ["--version"], usedBy: ["SystemExtension", "PromotedArtifact"] },
    zstd: { debian: "zstd", fedora: "zstd", versionArgs: ["--version"], usedBy: ["KairosUkiImage", "SystemExtension"] },
    skopeo: { debian: "skopeo", fedora: "skopeo", versionArgs: ["--version"], usedBy: ["SystemExtension", "KairosUkiImage"], when: "a registry image source (source.image)" },
    objcopy: { debian: "binutils", fedora: "binutils", versionArgs: ["--version"], usedBy: ["KairosUkiImage"] },
    objdump: { debian: "binutils", fedora: "binutils", versionArgs: ["--version"], usedBy: ["KairosUkiImage"] },
    sbsign: SBSIGNTOOLS,
    sbverify: SBSIGNTOOLS,
    sbattach: SBSIGNTOOLS,
    xorriso: { debian: "xorriso", fedora: "xorriso", versionArgs: ["-version"], usedBy: ["BootMedia"] },
    "pkcs11-tool": { debian: "opensc", fedora: "opensc", versionArgs: ["--help"], usedBy: ["SigningKeys"], when: "keys generated in a PKCS#11 token (token), and naming a missing token in errors" },
    mformat: MTOOLS,
    mmd: MTOOLS,
    mcopy: MTOOLS,
    mdir: MTOOLS,
    // The release resources' registry client (provider/toolkit/release/oras.ts; $PULUMI_KAIROS_ORAS
    // overrides the path). Debian 12 has no oras package: scripts/build-oras.sh builds it from its Go module.
    oras: { debian: "oras", fedora: "oras", versionArgs: ["version"], usedBy: ["SysextRelease", "ExtensionCatalog", "OsRelease", "PromotedRelease"], when: "publishing or promoting releases in an OCI registry" },
    // SystemExtension's Dockerfile source (provider/toolkit/source/dockerfile-build.ts) drives it; it
    // talks to a buildkitd, local or remote. scripts/build-buildkit.sh builds both from the Go module.
    buildctl: {
        debian: "buildkit", fedora: "buildkit", versionArgs: ["--version"], usedBy: ["SystemExtension"], when: "a Dockerfile source (source.dockerfile)",
        install: "take buildctl from BuildKit's releases (github.com/moby/buildkit), or build it from its Go module as scripts/build-buildkit.sh does (Debian 12 has no package)",
    },
    // Only this repo's tests and demo run these.
    "fsck.erofs": { debian: "erofs-utils", fedora: "erofs-utils", versionArgs: ["-V"], usedBy: ["tests"] },
    sgdisk: { debian: "gdisk", fedora: "gdisk", versionArgs: ["--version"], usedBy: ["tests"] },
    "systemd-dissect": { debian: "systemd-container", fedora: "systemd", versionArgs: ["--version"], usedBy: ["tests"] },
    cpio: { debian: "cpio", fedora: "cpio", versionArgs: ["--version"], usedBy: ["tests"] },
    minfo: { ...MTOOLS, usedBy: ["tests"] },
    "fsck.fat": { debian: "dosfstools", fedora: "dosfstools", versionArgs: ["--version"], usedBy: ["tests"] },
    "mkfs.vfat": { debian: "dosfstools", fedora: "dosfstools", versionArgs: ["--version"], usedBy: ["tests"] },
    "qemu-system-x86_64": { debian: "qemu-system-x86", fedora: "qemu-system-x86", versionArgs: ["--version"], usedBy: ["tests"] },
    swtpm: { debian: "swtpm", fedora: "swtpm", versionArgs: ["--version"], usedBy: ["tests"] },
    swtpm_setup: { debian: "swtpm-tools", fedora: "swtpm-tools", versionArgs: ["--version"], usedBy: ["tests"] },
    "softhsm2-util": { debian: "softhsm2", fedora: "softhsm", versionArgs: ["--version"], usedBy: ["tests"] },
    p11tool: { debian: "gnutls-bin", fedora: "gnutls-utils", versionArgs: ["--version"], usedBy: ["tests"] },
    "docker-registry": { debian: "docker-registry", fedora: "docker-distribution", versionArgs: ["--version"], usedBy: ["tests"] },
};

/** How to install `tool`, for an error message; undefined for a tool not in the table. */
export function installHint(tool: string): string | undefined {
    const t = TOOLS[tool];
    if (!t) return undefined;
    if (t.install) return t.install;
    return `install it with \`apt-get install ${t.debian}\` (Debian, Ubuntu) or \`dnf install ${t.fedora}\` (Fedora)`;
}

/** The tools the resources run (not the test-only ones), by name. */
export function resourceTools(): [string, Tool][] {
    return Object.entries(TOOLS).filter(([, t]) => !t.usedBy.includes("tests"));
}

/** The first version number in a tool's output ("sfdisk from util-linux 2.38.1" -> "2.38.1"). */
export function versionIn(output: string): string | undefined {
    return /\bv?(\d+\.\d+(?:\.\d+)*)/.exec(output)?.[1];
}

// TrustedBootImage: the whole seed workflow in one construct — signing keys (given or made), system
// extensions, the OS as signed UKIs, and Secure Boot install media carrying the extensions.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { SigningKeys, SigningKeysArgs } from "../provider/signing-keys";
import { SystemExtension, SystemExtensionArgs } from "../provider/system-extension";
import { KairosUkiImage, KairosUkiImageArgs } from "../provider/kairos-uki-image";
import { BootMedia, BootMediaArgs } from "../provider/boot-media";
import { artifactStoreInput, dbPublisher } from "../provider/artifact-store-config";

export interface TrustedBootImageArgs {
    /** Everything goes below this folder: keys/, extensions/, uki/, media/. */
    outputDir: string;
    /**
     * Existing keys, or how to make them. Keys are roots of trust: when made here they are created
     * with `protect: true` unless `protectKeys` is false.
     * @default new keys named after the construct
     */
    keys?: SigningKeys | Omit<SigningKeysArgs, "outputDir">;
    /** @default true */
    protectKeys?: boolean;
    /** Extensions to build (or already-built SystemExtension resources), shipped on the media. @default none */
    extensions?: (SystemExtension | (Omit<SystemExtensionArgs, "outputDir" | "signingKeys" | "signing" | "name"> & { name: string }))[];
    /** The OS image and its boot entries. */
    os: Omit<KairosUkiImageArgs, "outputDir" | "signingKeys" | "signing" | "pcrKey">;
    /** Media options. @default an ISO named after the construct, secure-boot-enroll if-safe */
    media?: Omit<BootMediaArgs, "outputDir" | "ukiImage" | "uki" | "signingKeys" | "enrollKeys" | "extensions" | "name"> & { name?: string };
}

/** Keys -> extensions -> UKI -> media, with the documented defaults above. */
export class TrustedBootImage extends pulumi.ComponentResource {
    readonly keys: SigningKeys;
    readonly extensions: SystemExtension[];
    readonly uki: KairosUkiImage;
    readonly media: BootMedia;
    /** The ISO (or ESP folder) path. */
    readonly mediaPath: pulumi.Output<string>;
    readonly mediaSha256: pulumi.Output<string>;

    constructor(name: string, args: TrustedBootImageArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kairos:index:TrustedBootImage", name, {}, opts);
        validate(name, args);
        const child = { parent: this };
        const out = (sub: string) => path.join(args.outputDir, sub);

        this.keys =
            args.keys instanceof SigningKeys
                ? args.keys
                : new SigningKeys(`${name}-keys`, { name, ...(args.keys ?? {}), outputDir: out("keys") }, { ...child, protect: args.protectKeys ?? true });
        // Store manifests are signed with the project's db key unless the store names its own publisher.
        const publisher = dbPublisher(this.keys);
        this.extensions = (args.extensions ?? []).map((e) =>
            e instanceof SystemExtension
                ? e
                : new SystemExtension(`${name}-${e.name}`, { ...e, outputDir: out("extensions"), signingKeys: this.keys, artifactStore: artifactStoreInput(e.artifactStore, publisher) }, child),
        );
        this.uki = new KairosUkiImage(`${name}-uki`, { ...args.os, outputDir: out("uki"), signingKeys: this.keys, artifactStore: artifactStoreInput(args.os.artifactStore, publisher) }, child);
        this.media = new BootMedia(
            `${name}-media`,
            { name, ...(args.media ?? {}), outputDir: out("media"), ukiImage: this.uki, signingKeys: this.keys, extensions: this.extensions, artifactStore: artifactStoreInput(args.media?.artifactStore, publisher) },
            child,
        );
        this.mediaPath = this.media.path;
        this.mediaSha256 = this.media.sha256;
        this.registerOutputs({ mediaPath: this.mediaPath, mediaSha256: this.mediaSha256 });
    }
}

/** Every problem with the arguments at once, with its property path. */
function validate(name: string, args: TrustedBootImageArgs): void {
    const problems: string[] = [];
    if (!args.outputDir) problems.push("outputDir: is required");
    if (!args.os?.source) problems.push("os.source: is required (a Kairos UKI-flavour image or rootfs)");
    const names = (args.extensions ?? []).map((e) => (e instanceof SystemExtension ? undefined : e.name)).filter((n) => n !== undefined);
    const dup = names.filter((n, i) => names.indexOf(n) !== i);
    if (dup.length > 0) problems.push(`extensions: names must be unique; repeated: ${[...new Set(dup)].join(", ")}`);
    if (problems.length > 0) throw new Error(`TrustedBootImage ${name}: invalid arguments:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
}

// BootMedia: media that enrol the Secure Boot keys and boot the signed UKI with Secure Boot enforced,
// laid out as `auroraboot build-uki --output-type iso` does (efiboot.img, volume UKI_ISO_INSTALL,
// EFI/kairos, loader/keys/auto), plus system extensions and a cloud-config at the ISO root. The ISO
// is hybrid: it also boots when written raw to a USB disk. Extensions also go next to every UKI on the
// ESP (EFI/kairos/<uki>.efi.extra.d/), where systemd-stub hands them to the booted system and measures
// them into PCR 13 (predicted in the pcr13 output).
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Handler } from "./artifact-contract";
import { checkInputs, replacedFields } from "./check-kit";
import { packageProvider } from "./dynamic-transport";
import { BuildLog, BuildReport, driftOf, updateAction, updateReasons } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, sha256FileIfExists, sha256Hex } from "./toolkit/files";
import { restoreInterruptedSwap } from "./output/staging";
import { treeDigest } from "./toolkit/source/tree-digest";
import { SecureBootEnroll } from "./toolkit/boot/boot-entries";
import type { KairosUkiImage } from "./kairos-uki-image";
import type { SigningKeys } from "./signing-keys";
import type { SystemExtension } from "./system-extension";
import type { StoreOutput } from "./artifact-contract";
import type { ArtifactStoreSpec } from "./store/manifest";
import { artifactStoreInput } from "./artifact-store-config";
import { plainHashValues, replaceFields } from "./validation/input-roles";
import { CheckedInputs, Outputs, contentHashParts } from "./boot-media/media";
import { build } from "./boot-media/build";
import { crossFieldProblems, movedFolderProblem, trustProblems } from "./boot-media/check";

export const BOOT_MEDIA_TOKEN = "kairos:index:BootMedia";
const BUILDER_VERSION = "boot-media/2";

export interface BootMediaArgs {
    /** NAME.iso */
    name: pulumi.Input<string>;
    outputDir: pulumi.Input<string>;
    /** @default "iso" */
    type?: pulumi.Input<"iso" | "dir">;
    uki?: pulumi.Input<{ efiFiles: pulumi.Input<pulumi.Input<string>[]>; loaderEntries: pulumi.Input<pulumi.Input<string>[]>; systemdBoot: pulumi.Input<string> }>;
    /** Shorthand for `uki`. */
    ukiImage?: KairosUkiImage;
    enrollKeys?: pulumi.Input<{ PK: pulumi.Input<string>; KEK: pulumi.Input<string>; db: pulumi.Input<string> }>;
    /** Shorthand for `enrollKeys`: a SigningKeys resource's .auth files. */
    signingKeys?: SigningKeys;
    /** Extension images for the ISO root (paths), or SystemExtension resources. */
    extensions?: (pulumi.Input<string> | SystemExtension)[];
    /** Also put every extension in EFI/kairos/<uki>.efi.extra.d/ (systemd-stub loads them; PCR 13). @default true */
    espExtensions?: pulumi.Input<boolean>;
    cloudConfig?: pulumi.Input<string>;
    overlayFiles?: pulumi.Input<pulumi.Input<{ source: pulumi.Input<string>; path: pulumi.Input<string> }>[]>;
    /** @default 5 */
    timeout?: pulumi.Input<number>;
    /** @default "if-safe" (systemd-boot >= 253; use "force" or "manual" with 252) */
    secureBootEnroll?: pulumi.Input<SecureBootEnroll>;
    /** @default "max" */
    consoleMode?: pulumi.Input<string>;
    /** @default 315532800 (1980-01-01) */
    sourceDateEpoch?: pulumi.Input<number>;
    /** Keep the media in an S3-compatible store and fetch them instead of building. @default the stack config kairos:artifactStore */
    artifactStore?: pulumi.Input<ArtifactStoreSpec>;
}

export const bootMediaHandler: Handler = {
    artifactPaths: (p) => [path.join(p.outputDir, p.name)],
    check: (olds, news) => checkInputs<CheckedInputs>(BOOT_MEDIA_TOKEN, olds, news, { crossField: crossFieldProblems, derive: deriveHashes }),

    async diff(_id, olds: Outputs, news: CheckedInputs) {
        const replaces = replacedFields(olds, news, replaceFields<CheckedInputs>(BOOT_MEDIA_TOKEN), ["outputDir"]);
        return { changes: replaces.length > 0 || olds.inputHash !== news.inputHash || (olds.drift ?? []).length > 0, replaces };
    },

    async create(inputs: CheckedInputs) {
        const outs = await build(inputs, new BuildLog(`BootMedia ${inputs.name}`, "created", ["new"]));
        return { id: outs.path, outs };
    },

    async read(id, props: Outputs) {
        if (props.type === "dir") restoreInterruptedSwap(props.path);
        const now = props.type === "iso" ? await sha256FileIfExists(props.path) : fs.existsSync(props.path) ? await treeDigest(props.path) : undefined;
        return { id, props: { ...props, drift: driftOf(props.path, props.sha256, now) } };
    },

    async update(_id, olds: Outputs, news: CheckedInputs) {
        const reasons = updateReasons(olds, news);
        return { outs: await build(news, new BuildLog(`BootMedia ${news.name}`, updateAction(reasons), reasons)) };
    },

    async delete(_id, props: Outputs) {
        fs.rmSync(props.path, { recursive: true, force: true });
    },
};

async function deriveHashes(i: CheckedInputs, olds: Partial<CheckedInputs>): Promise<InputProblem[]> {
    const refused = await trustProblems(i, { remember: true, shownAs: i });
    if (refused.length > 0) return refused;
    const foreign = await movedFolderProblem(i, olds);
    if (foreign) return [foreign];
    i.hashParts = {
        ...(await contentHashParts(i)),
        options: sha256Hex(canonicalJson(plainHashValues(BOOT_MEDIA_TOKEN, "options", i))),
        // The artifact's name and form (NAME.iso or the folder NAME): media that differ only there must
        // not share a manifest in the store, where the input hash is the key.
        media: sha256Hex(canonicalJson(plainHashValues(BOOT_MEDIA_TOKEN, "media", i))),
        builder: BUILDER_VERSION,
    };
    i.inputHash = sha256Hex(canonicalJson(i.hashParts));
    return [];
}

/** Secure Boot install media for a KairosUkiImage; see schema.json. */
export class BootMedia extends pulumi.dynamic.Resource {
    declare readonly path: pulumi.Output<string>;
    declare readonly sha256: pulumi.Output<string>;
    declare readonly size: pulumi.Output<number>;
    declare readonly files: pulumi.Output<string[]>;
    /** PCR 13 after systemd-stub loaded the ESP's extensions (bind TPM policies to an extension set). */
    declare readonly pcr13: pulumi.Output<{ sha256: string; sha1: string; extensions: string[] }>;
    declare readonly inputHash: pulumi.Output<string>;
    declare readonly hashParts: pulumi.Output<Record<string, string>>;
    declare readonly lastBuild: pulumi.Output<BuildReport>;
    declare readonly drift: pulumi.Output<string[]>;
    /** Where the artifact store keeps the media (undefined without a store). */
    declare readonly store: pulumi.Output<StoreOutput | undefined>;

    /** Which handler contract wrote this state (handlers.ts); an older one updates on the next up. */
    declare readonly stateVersion: pulumi.Output<number>;

    constructor(name: string, args: BootMediaArgs, opts?: pulumi.CustomResourceOptions) {
        const { ukiImage, signingKeys, extensions, ...rest } = args;
        const uki = rest.uki ?? ukiImage?.bootFiles;
        const enrollKeys = rest.enrollKeys ?? signingKeys?.files.apply((f) => ({ PK: f.PK.auth, KEK: f.KEK.auth, db: f.db.auth }));
        const extensionPaths = extensions?.map((e) => (pulumi.Resource.isInstance(e) ? (e as SystemExtension).path : e));
        const outputs = { stateVersion: undefined, path: undefined, sha256: undefined, size: undefined, files: undefined, pcr13: undefined, inputHash: undefined, hashParts: undefined, lastBuild: undefined, drift: undefined, store: undefined };
        super(packageProvider(BOOT_MEDIA_TOKEN), name, { ...outputs, ...rest, uki, enrollKeys, extensions: extensionPaths, artifactStore: artifactStoreInput(rest.artifactStore) }, opts, "kairos", "BootMedia");
    }
}

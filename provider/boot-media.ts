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
import { packageProvider, withoutPromiseStackTraces } from "./dynamic-transport";
import { BuildLog, driftOf, updateAction, updateReasons } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, sha256FileIfExists, sha256Hex } from "./toolkit/files";
import { restoreInterruptedSwap } from "./output/staging";
import { treeDigest } from "./toolkit/source/tree-digest";
import type { KairosUkiImage } from "./kairos-uki-image";
import type { SigningKeys } from "./signing-keys";
import type { SystemExtension } from "./system-extension";
import { artifactStoreInput } from "./artifact-store-config";
import * as contract from "./generated/contract";
import { registeredOutputs } from "./generated/contract";
import { plainHashValues, replaceFields } from "./validation/input-roles";
import { CheckedInputs, Outputs, contentHashParts } from "./boot-media/media";
import { build } from "./boot-media/build";
import { crossFieldProblems, movedFolderProblem, trustProblems } from "./boot-media/check";

export const BOOT_MEDIA_TOKEN = "kairos:index:BootMedia";
const BUILDER_VERSION = "boot-media/2";

/** schema.json's inputs (provider/generated/contract.ts), with `uki` and `enrollKeys` optional when the shorthands give them. */
export interface BootMediaArgs extends Omit<contract.BootMediaArgs, "uki" | "enrollKeys" | "extensions"> {
    uki?: contract.BootMediaArgs["uki"];
    /** Shorthand for `uki`. */
    ukiImage?: KairosUkiImage;
    enrollKeys?: contract.BootMediaArgs["enrollKeys"];
    /** Shorthand for `enrollKeys`: a SigningKeys resource's .auth files. */
    signingKeys?: SigningKeys;
    /** Extension images for the ISO root (paths), or SystemExtension resources. */
    extensions?: (pulumi.Input<string> | SystemExtension)[];
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
    constructor(name: string, args: BootMediaArgs, opts?: pulumi.CustomResourceOptions) {
        const { ukiImage, signingKeys, extensions, ...rest } = args;
        const uki = rest.uki ?? ukiImage?.bootFiles;
        const enrollKeys = rest.enrollKeys ?? signingKeys?.files.apply((f) => ({ PK: f.PK.auth, KEK: f.KEK.auth, db: f.db.auth }));
        const extensionPaths = extensions?.map((e) => (pulumi.Resource.isInstance(e) ? (e as SystemExtension).path : e));
        const outputs = registeredOutputs("BootMedia");
        const restoreStackTraces = withoutPromiseStackTraces();
        try {
            super(packageProvider(BOOT_MEDIA_TOKEN), name, { ...outputs, ...rest, uki, enrollKeys, extensions: extensionPaths, artifactStore: artifactStoreInput(rest.artifactStore) }, opts, "kairos", "BootMedia");
        } finally {
            restoreStackTraces();
        }
    }
}

/** The outputs schema.json declares, as this class's fields (generated; see BootMediaOutputFields). */
export interface BootMedia extends contract.BootMediaOutputFields {}

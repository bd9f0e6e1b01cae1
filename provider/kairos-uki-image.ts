// KairosUkiImage: the Kairos OS as signed Unified Kernel Images, one per boot entry (norole.efi
// first), with their loader entries and a signed systemd-boot — what `auroraboot build-uki` makes,
// natively. Every UKI carries a PCR 11 policy signed with the TPM PCR key.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Handler } from "./artifact-contract";
import { checkInputs, replacedFields } from "./check-kit";
import { packageProvider, withoutPromiseStackTraces } from "./dynamic-transport";
import { BuildLog, driftOf, updateAction, updateReasons } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, sha256File, sha256FileIfExists, sha256Hex } from "./toolkit/files";
import { publicKeyPem, readCertificate } from "./toolkit/keys/openssl";
import { restoreInterruptedSwap } from "./output/staging";
import { sourceDigest } from "./toolkit/source/extension-source";
import type { SigningKeys } from "./signing-keys";
import { artifactStoreInput } from "./artifact-store-config";
import * as contract from "./generated/contract";
import { registeredOutputs } from "./generated/contract";
import { plainHashValues, replaceFields } from "./validation/input-roles";
import { CheckedInputs, OWNER_MARKER, Outputs, hostEfiDigest } from "./kairos-uki-image/uki-image";
import { build } from "./kairos-uki-image/build";
import { crossFieldProblems } from "./kairos-uki-image/check";

export const KAIROS_UKI_IMAGE_TOKEN = "kairos:index:KairosUkiImage";
const BUILDER_VERSION = "kairos-uki-image/1";

/** schema.json's inputs (provider/generated/contract.ts), with `signing` and `pcrKey` optional when `signingKeys` gives them. */
export interface KairosUkiImageArgs extends Omit<contract.KairosUkiImageArgs, "signing" | "pcrKey"> {
    signing?: contract.KairosUkiImageArgs["signing"];
    pcrKey?: contract.KairosUkiImageArgs["pcrKey"];
    /** Shorthand for signing + pcrKey: a SigningKeys resource's db pair and TPM PCR key. */
    signingKeys?: SigningKeys;
}

export const kairosUkiImageHandler: Handler = {
    artifactPaths: (p) => [p.outputDir],
    check: (olds, news) =>
        checkInputs<CheckedInputs>(KAIROS_UKI_IMAGE_TOKEN, olds, news, { crossField: crossFieldProblems, derive: deriveHashes }),

    async diff(_id, olds: Outputs, news: CheckedInputs) {
        const replaces = replacedFields(olds, news, replaceFields<CheckedInputs>(KAIROS_UKI_IMAGE_TOKEN), ["outputDir"]);
        return { changes: replaces.length > 0 || olds.inputHash !== news.inputHash || (olds.drift ?? []).length > 0, replaces };
    },

    async create(inputs: CheckedInputs) {
        const outs = await build(inputs, new BuildLog("KairosUkiImage", "created", ["new"]));
        return { id: inputs.outputDir, outs };
    },

    async read(id, props: Outputs) {
        restoreInterruptedSwap(props.outputDir);
        const files = [...props.ukis.map((u) => ({ path: u.path, sha256: u.sha256 })), props.systemdBoot];
        const drift: string[] = [];
        for (const f of files) drift.push(...driftOf(f.path, f.sha256, await sha256FileIfExists(f.path)));
        return { id, props: { ...props, drift } };
    },

    async update(_id, olds: Outputs, news: CheckedInputs) {
        const reasons = updateReasons(olds, news);
        return { outs: await build(news, new BuildLog("KairosUkiImage", updateAction(reasons), reasons)) };
    },

    async delete(_id, props: Outputs) {
        // Only what this resource made; the folder goes only if that leaves it empty.
        const own = [...props.ukis.flatMap((u) => [u.path, u.entryPath]), props.systemdBoot.path, path.join(props.outputDir, OWNER_MARKER)];
        for (const f of own) fs.rmSync(f, { force: true });
        for (const d of [path.join(props.outputDir, "entries"), props.outputDir]) {
            if (fs.existsSync(d) && fs.readdirSync(d).length === 0) fs.rmdirSync(d);
        }
    },
};

async function deriveHashes(inputs: CheckedInputs): Promise<InputProblem[]> {
    try {
        inputs.sourceDigest = await sourceDigest(inputs.source, { layers: "all", arch: "amd64" });
    } catch (e) {
        return [{ property: "source", reason: `cannot read the source: ${(e as Error).message}` }];
    }
    const pick = (part: string) => sha256Hex(canonicalJson(plainHashValues(KAIROS_UKI_IMAGE_TOKEN, part, inputs)));
    inputs.hashParts = {
        source: inputs.sourceDigest,
        cmdlines: pick("cmdlines"),
        build: pick("build"),
        splash: inputs.splash ? await sha256File(inputs.splash) : "none",
        signing: readCertificate(inputs.signing.certificate).sha256Fingerprint,
        pcrKey: sha256Hex(publicKeyPem(inputs.pcrKey)), // the public half: no digest of private key bytes in state
        hostEfi: await hostEfiDigest(),
        builder: BUILDER_VERSION,
    };
    inputs.inputHash = sha256Hex(canonicalJson(inputs.hashParts));
    return [];
}

/** The Kairos OS as signed UKIs with loader entries and a signed systemd-boot; see schema.json. */
export class KairosUkiImage extends pulumi.dynamic.Resource {
    constructor(name: string, args: KairosUkiImageArgs, opts?: pulumi.CustomResourceOptions) {
        const { signingKeys, ...rest } = args;
        const signing = rest.signing ?? signingKeys?.files.apply((f) => ({ key: f.db.key, certificate: f.db.pem }));
        const pcrKey = rest.pcrKey ?? signingKeys?.tpmPcrKeyFile;
        const outputs = registeredOutputs("KairosUkiImage");
        const restoreStackTraces = withoutPromiseStackTraces();
        try {
            super(packageProvider(KAIROS_UKI_IMAGE_TOKEN), name, { ...outputs, ...rest, signing, pcrKey, artifactStore: artifactStoreInput(rest.artifactStore) }, opts, "kairos", "KairosUkiImage");
        } finally {
            restoreStackTraces();
        }
    }
}

/** The outputs schema.json declares, as this class's fields (generated; see KairosUkiImageOutputFields). */
export interface KairosUkiImage extends contract.KairosUkiImageOutputFields {}

// PromotedRelease: a release an earlier environment published and tested, copied by digest into this
// environment's repository. Nothing is rebuilt or re-signed; the registry-to-registry copy keeps the
// manifest bytes, and a copy whose digest differs from the tested one is an error, not a release.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { Handler } from "./artifact-contract";
import { checkInputs } from "./check-kit";
import { packageProvider, withoutPromiseStackTraces } from "./dynamic-transport";
import { BuildLog } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, sha256Hex } from "./toolkit/files";
import { copyByDigest } from "./toolkit/release/oras";
import { PublishedRecord, ReleaseRun, accessOf, pinned, placePart, registryProblems, tagForVersion, tagProblems, tagged } from "./release/published";
import { releaseLifecycle } from "./release/lifecycle";
import * as contract from "./generated/contract";
import { registeredOutputs } from "./generated/contract";

export const PROMOTED_RELEASE_TOKEN = "kairos:index:PromotedRelease";
const BUILDER_VERSION = "promoted-release/1";

export interface PromotedReleaseArgs extends contract.PromotedReleaseArgs {}

interface Inputs extends contract.PromotedReleaseInputs {
    hashParts: Record<string, string>;
    inputHash: string;
}

interface Outputs extends Inputs, ReleaseRun, Omit<PublishedRecord, "drift"> {
    reference: string;
    digest: string;
    taggedReference: string;
    catalogEntry?: contract.CatalogEntry;
}

const testedDigest = (i: { source: string }) => i.source.slice(i.source.lastIndexOf("@") + 1);
const label = (i: { source: string; repository: string }) => `PromotedRelease ${i.repository}@${testedDigest(i).slice(0, 19)}`;
const tagOf = (i: Inputs) => i.tag ?? (i.entry ? `${tagForVersion(i.entry.version)}${i.entry.arch === "amd64" ? "" : `-${i.entry.arch}`}` : "latest");
const repositoryOf = (reference: string) => reference.slice(0, reference.lastIndexOf("@"));

function crossField(i: Inputs): InputProblem[] {
    const problems = [...tagProblems("tag", tagOf(i)), ...registryProblems("registry", i.registry, fs.existsSync), ...registryProblems("sourceRegistry", i.sourceRegistry, fs.existsSync)];
    // A promotion within the source's repository is a new tag on the tested manifest: deleting it by digest would delete the tested release too.
    if (i.deleteOnDestroy && repositoryOf(i.source) === i.repository) {
        problems.push({ property: "deleteOnDestroy", reason: `${i.repository} is the source's own repository: deleting this promotion would delete the tested release ${i.source} that the earlier environment still lists` });
    }
    return problems;
}

export const promotedReleaseHandler: Handler = {
    check: (olds, news) =>
        checkInputs<Inputs>(PROMOTED_RELEASE_TOKEN, olds, news, {
            crossField,
            async derive(i) {
                i.hashParts = { release: testedDigest(i), entry: sha256Hex(canonicalJson(i.entry ?? null)), place: placePart(i.repository, tagOf(i)), builder: BUILDER_VERSION };
                i.inputHash = sha256Hex(canonicalJson(i.hashParts));
                return [];
            },
        }),

    ...releaseLifecycle<Inputs, Outputs>({ label, make: promote, id: (o) => o.taggedReference, recorded: ["registry", "sourceRegistry", "deleteOnDestroy"] }),
};

async function promote(i: Inputs, log: BuildLog): Promise<Outputs> {
    const tested = testedDigest(i);
    const target = tagged(i.repository, tagOf(i));
    const digest = await log.step(`copy ${i.source} -> ${target}`, () => copyByDigest(i.source, target, accessOf(i.sourceRegistry ?? i.registry), accessOf(i.registry)));
    if (digest !== tested) {
        throw new Error(`${label(i)}: ${target} now names ${digest}, not the tested ${tested}; the registry rewrote the manifest, so this is not the tested release (nothing else was changed)`);
    }
    const reference = pinned(i.repository, digest);
    log.say(`promoted ${i.source} as ${reference}`);
    return {
        ...i,
        reference,
        digest,
        taggedReference: target,
        ...(i.entry ? { catalogEntry: { ...i.entry, reference } } : {}),
        drift: [],
        lastBuild: log.report(),
    } as Outputs;
}

/** A tested release copied by digest into this environment's registry. */
export class PromotedRelease extends pulumi.dynamic.Resource {
    constructor(name: string, args: PromotedReleaseArgs, opts?: pulumi.CustomResourceOptions) {
        const outputs = registeredOutputs("PromotedRelease");
        const restoreStackTraces = withoutPromiseStackTraces();
        try {
            super(packageProvider(PROMOTED_RELEASE_TOKEN), name, { ...outputs, ...args }, opts, "kairos", "PromotedRelease");
        } finally {
            restoreStackTraces();
        }
    }
}

export interface PromotedRelease extends contract.PromotedReleaseOutputFields {}

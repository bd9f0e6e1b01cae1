// SysextRelease: a signed extension published in Kairos' raw OCI artifact form, which
// `kairos-agent sysext install oci:REPOSITORY@sha256:…` takes and a catalog lists. The manifest is
// written here (no timestamp: the digest is a function of the image bytes and its file name) and
// pushed as it is, so the digest recorded in preview-free state is the one the registry serves.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Handler } from "./artifact-contract";
import { checkInputs } from "./check-kit";
import { packageProvider, withoutPromiseStackTraces } from "./dynamic-transport";
import { BuildLog } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, sha256File, sha256Hex } from "./toolkit/files";
import { verifySysextImage } from "./toolkit/sysext/ddi-verify";
import { RAW_ARTIFACT_TYPES, writeRawExtensionLayout } from "./toolkit/release/raw-artifact";
import { pushLayout } from "./toolkit/release/oras";
import { PublishedRecord, ReleaseRun, accessOf, pinned, placePart, registryProblems, tagForVersion, tagProblems, tagged } from "./release/published";
import { releaseLifecycle } from "./release/lifecycle";
import * as contract from "./generated/contract";
import { registeredOutputs } from "./generated/contract";

export const SYSEXT_RELEASE_TOKEN = "kairos:index:SysextRelease";
const BUILDER_VERSION = "sysext-release/1";

export interface SysextReleaseArgs extends contract.SysextReleaseArgs {}

interface Inputs extends contract.SysextReleaseInputs {
    kind: "sysext" | "confext";
    arch: "amd64" | "arm64";
    hashParts: Record<string, string>;
    inputHash: string;
}

interface Outputs extends Inputs, ReleaseRun, Omit<PublishedRecord, "drift"> {
    reference: string;
    digest: string;
    taggedReference: string;
    fileName: string;
    sha256: string;
    size: number;
    catalogEntry: contract.CatalogEntry;
}

const label = (i: { name: string; version: string }) => `SysextRelease ${i.name} ${i.version}`;
/** The given tag, or the version's (see schema.json's `tag`). */
const tagOf = (i: Inputs) => i.tag ?? `${tagForVersion(i.version)}${i.arch === "amd64" ? "" : `-${i.arch}`}`;
/** The DDI architecture names readPartitionTable reports, by Go architecture. */
const DDI_ARCH = { amd64: "x86-64", arm64: "arm64" } as const;

function crossField(i: Inputs): InputProblem[] {
    const problems: InputProblem[] = [];
    if (!fs.existsSync(i.image)) problems.push({ property: "image", reason: `${i.image} does not exist` });
    else if (!path.basename(i.image).endsWith(`.${i.kind}.raw`)) {
        problems.push({ property: "image", reason: `${path.basename(i.image)} is not named *.${i.kind}.raw; Kairos writes the file under this name and systemd merges a ${i.kind} only with that suffix (set kind, or publish the right image)` });
    }
    if (i.verifyWith && !fs.existsSync(i.verifyWith)) problems.push({ property: "verifyWith", reason: `${i.verifyWith} does not exist` });
    return [...problems, ...tagProblems("tag", tagOf(i)), ...registryProblems("registry", i.registry, fs.existsSync)];
}

export const sysextReleaseHandler: Handler = {
    check: (olds, news) =>
        checkInputs<Inputs>(SYSEXT_RELEASE_TOKEN, olds, news, {
            crossField,
            async derive(i) {
                // What the manifest is made of, what the catalog calls it, and where it goes.
                i.hashParts = {
                    image: await sha256File(i.image),
                    fileName: path.basename(i.image),
                    artifactType: RAW_ARTIFACT_TYPES[i.kind],
                    catalog: sha256Hex(canonicalJson({ name: i.name, version: i.version, arch: i.arch })),
                    place: placePart(i.repository, tagOf(i)),
                    builder: BUILDER_VERSION,
                };
                i.inputHash = sha256Hex(canonicalJson(i.hashParts));
                return [];
            },
        }),

    ...releaseLifecycle<Inputs, Outputs>({ label, make: publish, id: (o) => o.taggedReference, recorded: ["registry", "deleteOnDestroy", "verifyWith"] }),
};

async function publish(i: Inputs, log: BuildLog): Promise<Outputs> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-sysext-release-"));
    try {
        const fileName = path.basename(i.image);
        // A release is what nodes run: refuse anything that is not a whole, signed extension image of the
        // architecture the catalog will list it under (and, with verifyWith, signed by that certificate).
        const verified = await log.step("check extension image", () => verifySysextImage(i.image, { workDir: work, requireSignature: true, certificate: i.verifyWith }));
        if (verified.arch !== DDI_ARCH[i.arch]) {
            throw new Error(`${i.image} is a ${verified.arch} image, but this release lists it as ${i.arch}; set arch to ${verified.arch === "arm64" ? "arm64" : "amd64"}`);
        }
        const layout = await log.step("write OCI artifact", () =>
            writeRawExtensionLayout(path.join(work, "layout"), i.image, i.kind, fileName),
        );
        // What is pushed is what check() hashed (the plan preview showed), not a file changed since.
        if (layout.layerDigest !== `sha256:${i.hashParts.image}`) {
            throw new Error(`${i.image} changed since the preview (its sha256 is now ${layout.layerDigest.slice(7)}, not ${i.hashParts.image}); nothing was published, run up again`);
        }
        const target = tagged(i.repository, tagOf(i));
        const digest = await log.step(`push ${target}`, () => pushLayout(path.join(work, "layout"), layout.tag, target, accessOf(i.registry)));
        if (digest !== layout.manifestDigest) throw new Error(`${target} names ${digest} after the push, not the manifest written (${layout.manifestDigest}); the registry rewrote it`);
        const reference = pinned(i.repository, digest);
        log.say(`published ${reference}`);
        return {
            ...i,
            reference,
            digest,
            taggedReference: target,
            fileName,
            sha256: layout.layerDigest.replace(/^sha256:/, ""),
            size: layout.size,
            catalogEntry: { name: i.name, version: i.version, arch: i.arch, kind: i.kind, reference },
            drift: [],
            lastBuild: log.report(),
        } as Outputs;
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/** A signed extension published to an OCI registry in Kairos' raw-artifact form. */
export class SysextRelease extends pulumi.dynamic.Resource {
    constructor(name: string, args: SysextReleaseArgs, opts?: pulumi.CustomResourceOptions) {
        const outputs = registeredOutputs("SysextRelease");
        const restoreStackTraces = withoutPromiseStackTraces();
        try {
            super(packageProvider(SYSEXT_RELEASE_TOKEN), name, { ...outputs, ...args }, opts, "kairos", "SysextRelease");
        } finally {
            restoreStackTraces();
        }
    }
}

export interface SysextRelease extends contract.SysextReleaseOutputFields {}

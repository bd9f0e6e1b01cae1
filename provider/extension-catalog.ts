// ExtensionCatalog: Kairos' releases.json (agent sdk/extensions/catalog.go), the list a node resolves
// `kairos-agent sysext install [--version V] NAME` against. Written to a file (for `file:` catalogs)
// and, with a repository, published beside the releases as an OCI artifact: nodes then fetch it by the
// blob URL from the registry they already reach.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Handler } from "./artifact-contract";
import { checkInputs } from "./check-kit";
import { packageProvider, withoutPromiseStackTraces } from "./dynamic-transport";
import { BuildLog } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, sha256Hex } from "./toolkit/files";
import { stageThenMove } from "./output/staging";
import { CATALOG_ARTIFACT_TYPE, writeJsonArtifactLayout } from "./toolkit/release/raw-artifact";
import { CatalogError, buildCatalog, serializeCatalog } from "./toolkit/release/catalog";
import { pushLayout } from "./toolkit/release/oras";
import { PublishedRecord, ReleaseRun, accessOf, pinned, placePart, registryProblems, tagged } from "./release/published";
import { releaseLifecycle } from "./release/lifecycle";
import * as contract from "./generated/contract";
import { registeredOutputs } from "./generated/contract";

export const EXTENSION_CATALOG_TOKEN = "kairos:index:ExtensionCatalog";
const BUILDER_VERSION = "extension-catalog/1";
export const CATALOG_FILE = "releases.json";

export interface ExtensionCatalogArgs extends contract.ExtensionCatalogArgs {}

interface Inputs extends contract.ExtensionCatalogInputs {
    tag: string;
    hashParts: Record<string, string>;
    inputHash: string;
}

interface Outputs extends Inputs, ReleaseRun, Omit<PublishedRecord, "drift"> {
    path: string;
    sha256: string;
    catalog: string;
    latest: Record<string, string>;
    reference?: string;
    url?: string;
}

const label = (i: { outputDir: string }) => `ExtensionCatalog ${path.join(i.outputDir, CATALOG_FILE)}`;

/** The http(s) URL of a blob, as the OCI distribution API serves it. */
export function blobUrl(repository: string, digest: string, plainHttp: boolean): string {
    const slash = repository.indexOf("/");
    return `${plainHttp ? "http" : "https"}://${repository.slice(0, slash)}/v2/${repository.slice(slash + 1)}/blobs/${digest}`;
}

function crossField(i: Inputs): InputProblem[] {
    const problems: InputProblem[] = [];
    try {
        catalogOf(i);
    } catch (e) {
        if (!(e instanceof CatalogError)) throw e;
        problems.push(...e.problems.map((reason) => ({ property: "entries", reason })));
    }
    return [...problems, ...registryProblems("registry", i.registry, fs.existsSync)];
}

/** The catalog text and each name's latest version: a pure function of the entries and the repo name. */
function catalogOf(i: Inputs): { json: string; latest: Record<string, string> } {
    const catalog = buildCatalog(i.repo ?? i.repository ?? "pulumi-kairos", i.entries, i.latest ?? {});
    return { json: serializeCatalog(catalog).toString("utf8"), latest: Object.fromEntries(catalog.layers.map((l) => [l.name, l.latest])) };
}

export const extensionCatalogHandler: Handler = {
    artifactPaths: (p) => [path.join(p.outputDir, CATALOG_FILE)],
    check: (olds, news) =>
        checkInputs<Inputs>(EXTENSION_CATALOG_TOKEN, olds, news, {
            crossField,
            async derive(i) {
                i.hashParts = { catalog: sha256Hex(catalogOf(i).json), place: placePart(i.repository, i.tag), builder: BUILDER_VERSION };
                i.inputHash = sha256Hex(canonicalJson(i.hashParts));
                return [];
            },
        }),

    ...releaseLifecycle<Inputs, Outputs>({
        label, make: write, id: (o) => o.path, recorded: ["registry", "deleteOnDestroy"], fileFields: ["outputDir"], localFile: (o) => o,
    }),
};

async function write(i: Inputs, log: BuildLog): Promise<Outputs> {
    const { json, latest } = catalogOf(i);
    const outs = { ...i, path: path.join(i.outputDir, CATALOG_FILE), sha256: sha256Hex(json), catalog: json, latest, drift: [] as string[] } as Outputs;
    // Published first: a failed push leaves the previous catalog file, and the state that names it, as they were.
    if (i.repository) {
        const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-catalog-"));
        try {
            const layout = writeJsonArtifactLayout(path.join(work, "layout"), Buffer.from(json), CATALOG_ARTIFACT_TYPE, CATALOG_FILE);
            const target = tagged(i.repository, i.tag);
            const digest = await log.step(`push ${target}`, () => pushLayout(path.join(work, "layout"), layout.tag, target, accessOf(i.registry)));
            Object.assign(outs, { digest, reference: pinned(i.repository, digest), taggedReference: target, url: blobUrl(i.repository, layout.layerDigest, i.registry?.plainHttp === true) });
            log.say(`published ${outs.reference}; nodes fetch it from ${outs.url}`);
        } finally {
            fs.rmSync(work, { recursive: true, force: true });
        }
    }
    await log.step("write releases.json", () => stageThenMove(i.outputDir, async (staging) => fs.writeFileSync(path.join(staging, CATALOG_FILE), json), 0o755));
    return { ...outs, lastBuild: log.report() };
}

/** A Kairos releases.json extension catalog, written to a file and optionally published to a registry. */
export class ExtensionCatalog extends pulumi.dynamic.Resource {
    constructor(name: string, args: ExtensionCatalogArgs, opts?: pulumi.CustomResourceOptions) {
        const outputs = registeredOutputs("ExtensionCatalog");
        const restoreStackTraces = withoutPromiseStackTraces();
        try {
            super(packageProvider(EXTENSION_CATALOG_TOKEN), name, { ...outputs, ...args }, opts, "kairos", "ExtensionCatalog");
        } finally {
            restoreStackTraces();
        }
    }
}

export interface ExtensionCatalog extends contract.ExtensionCatalogOutputFields {}

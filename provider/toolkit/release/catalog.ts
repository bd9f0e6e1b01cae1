// Kairos' extension catalog, `releases.json` (kairos-io/kairos `sdk/extensions/catalog.go`, read at
// commit 46b50a71; kairos-day2.md §3): `{repo, layers: [{name, latest, tags: [{tag, sysext: {<goarch>:
// {oci}}}]}]}`, where every `oci` is an immutable `repo@sha256:<64 hex>` manifest reference.
//
// Kairos' Go types carry `sysext` only. Confext entries go under a `confext` key of the same shape:
// Kairos' JSON decoder ignores keys it does not know, so the file stays valid for its agent, which
// then simply does not offer confexts from it (`resolve(..., "confext")` here does).
//
// Built catalogs are deterministic: layers sorted by name, tags newest first (semver order, as
// Kairos' hadron-layers publishes them; versions that are not semver after them, by string), arch
// keys sorted, fixed key order, 2-space JSON with a final newline. `latest` is the highest release
// version (a prerelease only when a layer has no release at all); versions that are not semver are
// never picked as `latest`, so a layer with none that is semver needs an explicit `latest`.
import { compareVersions, parseConstraint, parseVersion } from "./semver";

export type GoArch = "amd64" | "arm64";
export type CatalogKind = "sysext" | "confext";

export interface CatalogEntry {
    name: string;
    version: string;
    arch: GoArch;
    kind: CatalogKind;
    /** `repo@sha256:<64 hex>` (the manifest digest of the raw artifact). */
    reference: string;
}

export interface CatalogArtifact {
    oci: string;
}
export interface CatalogTag {
    tag: string;
    sysext?: Record<string, CatalogArtifact>;
    confext?: Record<string, CatalogArtifact>;
}
export interface CatalogLayer {
    name: string;
    latest: string;
    tags: CatalogTag[];
}
export interface Catalog {
    repo: string;
    layers: CatalogLayer[];
}

export interface Resolved {
    repository: string;
    name: string;
    version: string;
    architecture: string;
    oci: string;
}

/** Kairos' `immutableOCIReference`. */
export const IMMUTABLE_OCI_REFERENCE = /^[^@\s]+@sha256:[0-9a-fA-F]{64}$/;
/** Kairos' request-part rule for names and versions (`name@version` on the agent's command line). */
const REQUEST_PART = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const ARCHES: readonly string[] = ["amd64", "arm64"];
const KINDS: readonly string[] = ["sysext", "confext"];

export class CatalogError extends Error {
    readonly code = "CATALOG_INVALID";
    constructor(readonly problems: string[]) {
        super(`the extension catalog is invalid:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    }
}

/**
 * Builds the catalog. Every problem (bad reference, name, version, arch, kind, duplicate, unknown or
 * missing `latest`) is collected and thrown together in one CatalogError.
 */
export function buildCatalog(repo: string, entries: CatalogEntry[], latest: Record<string, string> = {}): Catalog {
    const problems: string[] = [];
    const byName = new Map<string, Map<string, CatalogTag>>();
    const seen = new Set<string>();
    entries.forEach((e, i) => {
        const at = `entries[${i}] (${e.name} ${e.version} ${e.kind} ${e.arch})`;
        if (!REQUEST_PART.test(e.name ?? "")) problems.push(`${at}: name \`${e.name}\` must match ${REQUEST_PART}`);
        if (!REQUEST_PART.test(e.version ?? "")) problems.push(`${at}: version \`${e.version}\` must match ${REQUEST_PART}`);
        if (!ARCHES.includes(e.arch)) problems.push(`${at}: arch \`${e.arch}\` must be one of ${ARCHES.join(", ")} (Go architecture names)`);
        if (!KINDS.includes(e.kind)) problems.push(`${at}: kind \`${e.kind}\` must be sysext or confext`);
        if (!IMMUTABLE_OCI_REFERENCE.test(e.reference ?? "")) problems.push(`${at}: reference \`${e.reference}\` must be repo@sha256:<64 hex> (a manifest digest, never a tag)`);
        const key = `${e.name}\0${e.version}\0${e.kind}\0${e.arch}`;
        if (seen.has(key)) problems.push(`${at}: given twice`);
        seen.add(key);
        const tags = byName.get(e.name) ?? new Map<string, CatalogTag>();
        byName.set(e.name, tags);
        const tag = tags.get(e.version) ?? { tag: e.version };
        tags.set(e.version, tag);
        (tag[e.kind] ??= {})[e.arch] = { oci: e.reference };
    });
    for (const name of Object.keys(latest)) {
        if (!byName.has(name)) problems.push(`latest.${name}: no entry is named \`${name}\``);
        else if (!byName.get(name)!.has(latest[name])) problems.push(`latest.${name}: \`${latest[name]}\` is not one of its versions`);
    }

    const layers: CatalogLayer[] = [];
    for (const name of [...byName.keys()].sort(byString)) {
        const tags = [...byName.get(name)!.values()].sort((a, b) => newestFirst(a.tag, b.tag));
        const chosen = latest[name] ?? highestVersion(tags.map((t) => t.tag));
        if (chosen === undefined) problems.push(`${name}: no version is semver (${tags.map((t) => t.tag).join(", ")}), so \`latest\` cannot be chosen; name it in latest`);
        layers.push({ name, latest: chosen ?? "", tags: tags.map(canonicalTag) });
    }
    if (problems.length) throw new CatalogError(problems);
    return { repo, layers };
}

/** The catalog as bytes: fixed key order, 2-space indent, final newline. */
export function serializeCatalog(catalog: Catalog): Buffer {
    const ordered = {
        repo: catalog.repo,
        layers: catalog.layers.map((l) => ({ name: l.name, latest: l.latest, tags: l.tags.map(canonicalTag) })),
    };
    return Buffer.from(`${JSON.stringify(ordered, null, 2)}\n`);
}

/** Reads a catalog (ours or Kairos'), keeping the fields Kairos reads; fails on a malformed shape. */
export function parseCatalog(json: Buffer | string): Catalog {
    const doc = JSON.parse(json.toString()) as Partial<Catalog>;
    const problems: string[] = [];
    if (typeof doc !== "object" || doc === null || !Array.isArray(doc.layers)) throw new CatalogError(["`layers` must be a list"]);
    const layers = doc.layers.map((l, i) => {
        if (typeof l?.name !== "string" || !Array.isArray(l.tags)) problems.push(`layers[${i}]: needs a string \`name\` and a list \`tags\``);
        return {
            name: String(l?.name),
            latest: typeof l?.latest === "string" ? l.latest : "",
            tags: (Array.isArray(l?.tags) ? l.tags : []).map((t) => ({ tag: String(t?.tag), ...(t?.sysext ? { sysext: t.sysext } : {}), ...(t?.confext ? { confext: t.confext } : {}) })),
        };
    });
    if (problems.length) throw new CatalogError(problems);
    return { repo: typeof doc.repo === "string" ? doc.repo : "", layers };
}

/** The entries a catalog holds (to add to and rebuild it); references are checked as buildCatalog does. */
export function catalogEntries(catalog: Catalog): CatalogEntry[] {
    const out: CatalogEntry[] = [];
    for (const layer of catalog.layers)
        for (const t of layer.tags)
            for (const kind of KINDS as CatalogKind[])
                for (const [arch, a] of Object.entries(t[kind] ?? {})) out.push({ name: layer.name, version: t.tag, arch: arch as GoArch, kind, reference: a.oci });
    return out;
}

/**
 * Kairos' Catalog.Resolve (same order, same rules, same messages): the first layer named `name`;
 * no version → its `latest`; a version equal to a published tag → that tag (so non-semver tags
 * work); otherwise a Masterminds semver constraint → the highest satisfying tag; a string that is
 * neither is reported as a missing version. Then the artifact for `arch`, whose reference must be
 * immutable.
 */
export function resolve(catalog: Catalog, name: string, version: string | undefined, arch: string, kind: CatalogKind = "sysext"): Resolved {
    const layer = catalog.layers.find((l) => l.name === name);
    if (!layer) throw new Error(`layer "${name}" is not available`);
    const resolvedVersion = resolveVersion(layer, version ?? "");
    const tag = layer.tags.find((t) => t.tag === resolvedVersion);
    if (!tag) throw new Error(`version "${resolvedVersion}" is not available for layer "${name}"`);
    const artifact = tag[kind]?.[arch];
    if (!artifact) throw new Error(`architecture "${arch}" is not available for layer "${name}" version "${resolvedVersion}"`);
    if (!IMMUTABLE_OCI_REFERENCE.test(artifact.oci ?? "")) {
        throw new Error(`OCI reference for layer "${name}" version "${resolvedVersion}" architecture "${arch}" must end with @sha256: and 64 hexadecimal characters`);
    }
    return { repository: catalog.repo, name, version: resolvedVersion, architecture: arch, oci: artifact.oci };
}

function resolveVersion(layer: CatalogLayer, requested: string): string {
    if (requested === "") return layer.latest;
    if (layer.tags.some((t) => t.tag === requested)) return requested;
    const constraint = parseConstraint(requested);
    if (!constraint) return requested;
    let best: { v: NonNullable<ReturnType<typeof parseVersion>>; tag: string } | undefined;
    for (const t of layer.tags) {
        const v = parseVersion(t.tag);
        if (!v || !constraint.check(v)) continue;
        if (!best || compareVersions(v, best.v) > 0) best = { v, tag: t.tag };
    }
    if (!best) throw new Error(`no version of layer "${layer.name}" satisfies "${requested}"`);
    return best.tag;
}

function highestVersion(tags: string[]): string | undefined {
    const parsed = tags.map((tag) => ({ tag, v: parseVersion(tag) })).filter((x) => x.v);
    const releases = parsed.filter((x) => x.v!.pre === "");
    const pool = releases.length ? releases : parsed;
    return pool.sort((a, b) => newestFirst(a.tag, b.tag))[0]?.tag;
}

/** Semver descending; equal semver (`v1.0` and `1.0.0`) and non-semver by string, after. */
function newestFirst(a: string, b: string): number {
    const va = parseVersion(a);
    const vb = parseVersion(b);
    if (va && vb) return compareVersions(vb, va) || byString(a, b);
    if (va) return -1;
    if (vb) return 1;
    return byString(a, b);
}

function byString(a: string, b: string): number {
    return a < b ? -1 : a > b ? 1 : 0;
}

function canonicalTag(t: CatalogTag): CatalogTag {
    const sortArch = (m?: Record<string, CatalogArtifact>) =>
        m && Object.fromEntries(Object.keys(m).sort(byString).map((k) => [k, { oci: m[k].oci }]));
    return { tag: t.tag, ...(t.sysext ? { sysext: sortArch(t.sysext) } : {}), ...(t.confext ? { confext: sortArch(t.confext) } : {}) };
}

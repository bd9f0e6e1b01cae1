// What the four release resources (SysextRelease, ExtensionCatalog, OsRelease, PromotedRelease) share:
// a release is a manifest in a registry, named by its digest and pointed at by a tag. Our state records
// both; refresh asks the registry what the tag points at now (drift when it moved or went), an update
// publishes again, and delete leaves what nodes may still be taking unless the program asked otherwise.
import type { BuildReport } from "../build-log";
import { logLine } from "../build-log";
import type { InputProblem } from "../validation/schema-validator";
import { containsUnknown, samePath } from "../check-kit";
import { RegistryAccess, deleteManifest, isNotFound, resolveDigest } from "../toolkit/release/oras";
import * as contract from "../generated/contract";

/** The registry options a program gives, as the toolkit takes them (credentials never pass here). */
export function accessOf(input: contract.RegistryAccess | undefined): RegistryAccess {
    return { plainHttp: input?.plainHttp === true, caFile: input?.caFile, insecure: input?.insecure === true };
}

export const tagged = (repository: string, tag: string) => `${repository}:${tag}`;
export const pinned = (repository: string, digest: string) => `${repository}@${digest}`;

/** The fields every published release records about where it is. */
export interface PublishedRecord {
    registry?: contract.RegistryAccess;
    /** `repository@digest` (absent: not published). */
    reference?: string;
    deleteOnDestroy?: boolean;
    /** The manifest digest (absent: not published, e.g. a catalog kept only as a file). */
    digest?: string;
    /** `repository:tag` (absent: not published). */
    taggedReference?: string;
    inputHash: string;
    drift?: string[];
}

/** The run fields every release's outputs carry. */
export interface ReleaseRun {
    hashParts: Record<string, string>;
    inputHash: string;
    drift: string[];
    lastBuild: BuildReport;
}

/**
 * What refresh finds: [] when `taggedReference` still names `digest`, else one line saying that the tag
 * is gone or points elsewhere (the next `up` publishes again). An unreachable registry is an error,
 * not drift: refresh must not turn "cannot tell" into "changed".
 */
export async function registryDrift(p: PublishedRecord): Promise<string[]> {
    if (!p.taggedReference || !p.digest) return [];
    const now = await resolveDigest(p.taggedReference, accessOf(p.registry));
    if (now === p.digest) return [];
    return [`${p.taggedReference}: ${now === undefined ? "missing" : `points at ${now}`}`];
}

/** Inputs that change what refresh and destroy do, not what is published: an update records them, nothing is pushed. */
const RECORDED_ONLY = ["registry", "sourceRegistry", "deleteOnDestroy"];

/**
 * A release's diff: publish again when what it is or where it goes changed (both are in the input hash)
 * or refresh found the tag moved; replace when a local file gets another name or folder; record a new
 * registry option or deleteOnDestroy (refresh and destroy read them from the state). A replace of a
 * release that deletes on destroy deletes first: the new one publishes the same digest, which the old
 * one's delete would otherwise remove.
 */
export function releaseDiff(olds: PublishedRecord & Record<string, any>, news: Record<string, any>, fileFields: string[] = []) {
    const replaces = fileFields.filter((f) => news[f] !== undefined && !containsUnknown(news[f]) && !samePath(olds[f], news[f]));
    const recorded = RECORDED_ONLY.some((f) => JSON.stringify(olds[f] ?? null) !== JSON.stringify(news[f] ?? null));
    return {
        changes: olds.inputHash !== news.inputHash || replaces.length > 0 || recorded || (olds.drift ?? []).length > 0,
        replaces,
        deleteBeforeReplace: replaces.length > 0 && olds.deleteOnDestroy === true,
    };
}

/** Whether an update only records inputs (nothing to publish): the same hash, no drift. */
export function onlyRecords(olds: PublishedRecord, news: { inputHash: string }): boolean {
    return olds.inputHash === news.inputHash && (olds.drift ?? []).length === 0;
}

/**
 * After an update published elsewhere (another repository, tag or digest), the old manifest goes too
 * when the old state asked for deletion: it would otherwise outlive every state that knows of it.
 */
export async function retireOld(label: string, olds: PublishedRecord & { reference?: string }, newReference: string | undefined): Promise<void> {
    if (olds.reference && olds.reference !== newReference) await deletePublished(label, olds, olds.reference);
}

/** The hash part naming where a release is published: repository and tag (absent: not published). */
export function placePart(repository: string | undefined, tag: string | undefined): string {
    return repository ? tagged(repository, tag ?? "") : "not published";
}

/**
 * Delete: the manifest goes only when the program asked (deleteOnDestroy); else it stays for the nodes.
 * It goes by digest, so every tag naming those bytes in that repository goes with it; one already gone
 * counts as deleted.
 */
export async function deletePublished(label: string, p: PublishedRecord, reference: string | undefined): Promise<void> {
    if (!reference) return;
    if (p.deleteOnDestroy !== true) {
        logLine(`${label}: ${reference} stays in the registry (deleteOnDestroy is off; nodes may still take it)`);
        return;
    }
    try {
        await deleteManifest(reference, accessOf(p.registry));
        logLine(`${label}: deleted ${reference} from the registry`);
    } catch (e) {
        if (!isNotFound(e)) throw e;
        logLine(`${label}: ${reference} was already gone from the registry`);
    }
}

/** The default tag for a version: OCI tags allow no `+` (semver build metadata, as in v1.31.2+k3s1), so it becomes `_`. */
export function tagForVersion(version: string): string {
    return version.replace(/\+/g, "_");
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** The tag a resource will push under must be a valid OCI tag, whether given or defaulted. */
export function tagProblems(property: string, tag: string): InputProblem[] {
    return TAG.test(tag) ? [] : [{ property, reason: `the tag \`${tag}\` is not a valid OCI tag (letters, digits, _ . -; at most 128); set tag` }];
}

/** caFile must exist; plainHttp and insecure contradict each other. */
export function registryProblems(property: string, r: contract.RegistryAccess | undefined, exists: (f: string) => boolean): InputProblem[] {
    const problems: InputProblem[] = [];
    if (r?.caFile && !exists(r.caFile)) problems.push({ property: `${property}.caFile`, reason: `${r.caFile} does not exist` });
    if (r?.plainHttp && r?.insecure) problems.push({ property, reason: "plainHttp and insecure exclude each other: plain HTTP has no certificate to accept" });
    return problems;
}

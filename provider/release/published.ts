// What the four release resources (SysextRelease, ExtensionCatalog, OsRelease, PromotedRelease) share:
// a release is a manifest in a registry, named by its digest and pointed at by a tag. Our state records
// both; refresh asks the registry what the tag points at now (drift when it moved or went), an update
// publishes again, and delete leaves what nodes may still be taking unless the program asked otherwise.
import type { BuildReport } from "../build-log";
import { logLine } from "../build-log";
import type { InputProblem } from "../validation/schema-validator";
import { containsUnknown, samePath } from "../check-kit";
import { RegistryAccess, deleteManifest, resolveDigest } from "../toolkit/release/oras";
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

/**
 * A release's diff: publish again when what it is or where it goes changed (both are in the input hash)
 * or refresh found the tag moved; replace when a local file gets another name or folder.
 */
export function releaseDiff(olds: PublishedRecord & Record<string, any>, news: Record<string, any>, fileFields: string[] = []) {
    const replaces = fileFields.filter((f) => news[f] !== undefined && !containsUnknown(news[f]) && !samePath(olds[f], news[f]));
    return { changes: olds.inputHash !== news.inputHash || replaces.length > 0 || (olds.drift ?? []).length > 0, replaces };
}

/** The hash part naming where a release is published: repository and tag (absent: not published). */
export function placePart(repository: string | undefined, tag: string | undefined): string {
    return repository ? tagged(repository, tag ?? "") : "not published";
}

/** Delete: the manifest goes only when the program asked (deleteOnDestroy); else it stays for the nodes. */
export async function deletePublished(label: string, p: PublishedRecord, reference: string | undefined): Promise<void> {
    if (!reference) return;
    if (p.deleteOnDestroy !== true) {
        logLine(`${label}: ${reference} stays in the registry (deleteOnDestroy is off; nodes may still take it)`);
        return;
    }
    await deleteManifest(reference, accessOf(p.registry));
    logLine(`${label}: deleted ${reference} from the registry`);
}

/** caFile must exist; plainHttp and insecure contradict each other. */
export function registryProblems(property: string, r: contract.RegistryAccess | undefined, exists: (f: string) => boolean): InputProblem[] {
    const problems: InputProblem[] = [];
    if (r?.caFile && !exists(r.caFile)) problems.push({ property: `${property}.caFile`, reason: `${r.caFile} does not exist` });
    if (r?.plainHttp && r?.insecure) problems.push({ property, reason: "plainHttp and insecure exclude each other: plain HTTP has no certificate to accept" });
    return problems;
}

// The Pulumi lifecycle every release shares (diff, create, read, update, delete), around the one thing
// each resource does differently: make the release and publish it. A release lives in a registry (and
// maybe also as a local file), so refresh asks both, an update that only changes how the registry is
// reached or what destroy does is recorded without a push, and delete leaves published manifests
// unless the program asked otherwise (published.ts).
import * as fs from "fs";
import type { Handler } from "../artifact-contract";
import { BuildLog, driftOf, updateAction, updateReasons } from "../build-log";
import { sha256FileIfExists } from "../toolkit/files";
import { PublishedRecord, ReleaseRun, deletePublished, onlyRecords, registryDrift, releaseDiff, retireOld } from "./published";

export interface ReleaseSpec<I, O> {
    label(p: I | O): string;
    /** Makes and publishes the release (a failure leaves the previous one, local file included). */
    make(i: I, log: BuildLog): Promise<O>;
    id(o: O): string;
    /** Inputs an update records without publishing (how the registry is reached, what destroy does). */
    recorded: string[];
    /** Inputs naming the local file: a change replaces the resource. */
    fileFields?: string[];
    /** The local file this release also writes, if any. */
    localFile?(o: O): { path: string; sha256: string };
}

type Release = PublishedRecord & ReleaseRun & { reference?: string; repository?: string };

export function releaseLifecycle<I extends { inputHash: string; hashParts: Record<string, string>; repository?: string }, O extends Release>(
    spec: ReleaseSpec<I, O>,
): Omit<Handler, "check"> {
    const action = (i: I, reasons: string[]) => (updateAction(reasons) === "restored" ? "restored" : i.repository ? "published" : "updated");
    return {
        async diff(_id, olds: O, news: I) {
            return releaseDiff(olds, news as any, spec.fileFields);
        },
        async create(inputs: I) {
            const outs = await spec.make(inputs, new BuildLog(spec.label(inputs), inputs.repository ? "published" : "created", ["new"]));
            return { id: spec.id(outs), outs };
        },
        async read(id, props: O) {
            const file = spec.localFile?.(props);
            const local = file ? driftOf(file.path, file.sha256, await sha256FileIfExists(file.path)) : [];
            return { id, props: { ...props, drift: [...local, ...(await registryDrift(props))] } };
        },
        async update(_id, olds: O, news: I) {
            if (onlyRecords(olds, news)) return { outs: { ...olds, ...Object.fromEntries(spec.recorded.map((f) => [f, (news as any)[f]])) } };
            const reasons = updateReasons(olds, news);
            const outs = await spec.make(news, new BuildLog(spec.label(news), action(news, reasons), reasons));
            await retireOld(spec.label(olds), olds, outs.reference);
            return { outs };
        },
        async delete(_id, props: O) {
            await deletePublished(spec.label(props), props, props.reference);
            const file = spec.localFile?.(props);
            if (file) fs.rmSync(file.path, { force: true });
        },
    };
}

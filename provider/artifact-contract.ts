// The artifact contract: what every resource's handler returns about its artifact, and the only thing
// the artifact store (store/stored-artifacts.ts), the output lock (output/output-lock.ts, through
// handlers.ts), moves (artifact-move.ts) and the state-version wrapper (handlers.ts) read from a
// handler's outputs. Each resource's own outputs (file paths, digests, certificates) ride beside it.
import type * as pulumi from "@pulumi/pulumi";
import type { BuildReport } from "./build-log";

/** The `store` output: where this resource's artifacts are kept besides the local files. */
export interface StoreOutput {
    location: string;
    manifest: string;
    /** Local path (as in the other outputs) -> object URI. */
    objects: Record<string, string>;
    /**
     * false: this runner had no publisher key, so no manifest was written; a later run with the key
     * publishes. Absent (states from before this field): published.
     */
    published?: boolean;
}

/** The fields every resource's outputs carry about its artifact and the run that made it. */
export interface ArtifactRecord {
    /** Digest of the inputs that reach the artifact: the artifact store's key and a move's sameness test. */
    inputHash: string;
    /** Recorded files found changed or missing at the last read ([] when intact). */
    drift: string[];
    /** What the last create/update did, step by step. */
    lastBuild: BuildReport;
    /** Where the artifact store keeps it (absent without a store). */
    store?: StoreOutput;
    /** The state contract the outputs were written under (handlers.ts). */
    stateVersion?: number;
}

/** A resource's outputs: its own fields and the artifact record. */
export type ArtifactOutputs = Record<string, any> & ArtifactRecord;

/** The record's fields that describe one run, not the artifact: never put in a manifest, never taken from one. */
export const RUN_FIELDS: readonly (keyof ArtifactRecord)[] = ["drift", "lastBuild", "store", "stateVersion"];

/**
 * The outputs that describe the artifact itself, as a manifest records them: the handler's own
 * outputs, without the inputs it echoes back and without the run fields.
 */
export function artifactFields(outs: Record<string, any>, inputs: Record<string, any>): Record<string, any> {
    return Object.fromEntries(Object.entries(outs).filter(([k]) => !(k in inputs) && !(RUN_FIELDS as readonly string[]).includes(k)));
}

/** One resource's handler: the Pulumi provider calls, and what its artifact is. */
export type Handler = Required<Pick<pulumi.dynamic.ResourceProvider, "check" | "diff" | "create" | "read" | "update" | "delete">> & {
    /** `pulumi import`: take what exists at `id` as it is; returns its outputs and the inputs that describe it. */
    adopt?(id: string): Promise<{ id: string; props: Record<string, any>; inputs: Record<string, any> }>;
    /**
     * The artifact's primary paths (files or owned folders) for these inputs or outputs: what a
     * create/update/delete writes, and so what the output lock guards.
     */
    artifactPaths?(props: Record<string, any>): string[];
    /** Whether an update from `olds` to `news` leaves the old place alone (a move: artifact-move.ts), so the output lock need not guard it. */
    leavesOldPlace?(olds: Record<string, any>, news: Record<string, any>): boolean;
};

// Shared plumbing for the dynamic resources. Pulumi serialises each resource's provider object into
// the state and replays it in a separate process, so the provider we hand to Pulumi captures nothing
// but a module path and an export name, and loads the real handler there at call time.
import * as path from "path";
import type * as pulumi from "@pulumi/pulumi";
import { UNKNOWN } from "./validation/schema-validator";

export type Handler = Required<Pick<pulumi.dynamic.ResourceProvider, "check" | "diff" | "create" | "read" | "update" | "delete">>;

/** A provider whose serialised form is two strings; `modulePath` must export `exportName`: Handler. */
export function lazyProvider(modulePath: string, exportName: string): pulumi.dynamic.ResourceProvider {
    const load = (): Handler => {
        if (modulePath.endsWith(".ts")) {
            // Running from source (tests, examples): compile on the fly in the provider process too.
            const flag = Symbol.for("pulumi-kairos.ts-node");
            const g = globalThis as any;
            if (!g[flag]) {
                const tsNode = require(require.resolve("ts-node", { paths: [modulePath] }));
                tsNode.register({ transpileOnly: true, skipProject: true, compilerOptions: { module: "commonjs", target: "es2022", esModuleInterop: true } });
                g[flag] = true;
            }
        }
        return require(modulePath)[exportName];
    };
    return {
        check: (olds, news) => load().check(olds, news),
        diff: (id, olds, news) => load().diff(id, olds, news),
        create: (inputs) => load().create(inputs),
        read: (id, props) => load().read(id, props),
        update: (id, olds, news) => load().update(id, olds, news),
        delete: (id, props) => load().delete(id, props),
    };
}

/** True if any value inside `v` is still unknown (a preview with computed inputs). */
export function containsUnknown(v: unknown): boolean {
    if (v === UNKNOWN) return true;
    if (Array.isArray(v)) return v.some(containsUnknown);
    if (v && typeof v === "object") return Object.values(v).some(containsUnknown);
    return false;
}

/** Removes Pulumi's bookkeeping keys (`__provider`) and undefined values. */
export function userInputs<T extends Record<string, any>>(raw: T): T {
    return Object.fromEntries(Object.entries(raw).filter(([k, v]) => !k.startsWith("__") && v !== undefined)) as T;
}

/** Resolves a user path against the Pulumi project directory (the provider's working directory). */
export function absolutePath(p: string): string {
    return path.resolve(p);
}

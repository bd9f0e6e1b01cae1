// Shared plumbing for the component resources: collected input validation (every problem reported
// at once, each with its property path, as CDK's validateAllProps and Pulumi's InputPropertiesError
// do) and a test for values that are known while the program runs.
import * as pulumi from "@pulumi/pulumi";

// One problem with an input, as the providers' check reports it too: `property` is where (e.g.
// `extensions[1].name`), `reason` what is wrong, the bad value and what is allowed.
export type { InputProblem } from "../provider/validation/schema-validator";
import type { InputProblem } from "../provider/validation/schema-validator";

/**
 * Throws one `pulumi.InputPropertiesError` listing every problem (the engine prints each with its
 * path); does nothing when the list is empty.
 */
export function throwIfProblems(typeName: string, name: string, problems: InputProblem[]): void {
    if (problems.length === 0) return;
    const lines = problems.map((p) => `  - ${p.property}: ${p.reason}`);
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    throw new pulumi.InputPropertiesError({
        message: `${typeName} "${name}" has ${count} in its arguments:\n${lines.join("\n")}`,
        errors: problems.map((p) => ({ propertyPath: p.property, reason: p.reason })), // Pulumi's name for it
    });
}

/** True when `v` is a plain value now (not an Output or a Promise), so it can be checked early. */
export function isKnown<T>(v: pulumi.Input<T> | undefined): v is T {
    return v !== undefined && !pulumi.Output.isInstance(v) && !(v instanceof Promise);
}

/** Extension names as the Kairos runtime matches them (systemd cuts image names at '_' and '+'). */
export const EXTENSION_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/;

export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

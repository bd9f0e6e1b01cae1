// The check kit: what every resource's check() and diff() share. Schema defaults and validation
// (validation/schema-validator.ts) with the cross-field rules, unknown values in previews, paths
// compared by the place they name, and the signing-key and source rules several resources apply.
import * as fs from "fs";
import * as path from "path";
import { X509Certificate, createPrivateKey } from "crypto";
import { InputProblem, UNKNOWN, inputDefaults, validateInputs } from "./validation/schema-validator";
import { keyMatchesCertificate } from "./toolkit/keys/openssl";
import { memoByFiles } from "./toolkit/file-memo";
import { ExtensionSourceSpec, sourceForms } from "./toolkit/source/extension-source";
import { DockerfileSpec, dockerfilePath } from "./toolkit/source/dockerfile-build";
import { isPkcs11Uri, tokenKeyProblem } from "./toolkit/keys/pkcs11";
import { pinCarryingInputs, redactPin, redactedDeep } from "./toolkit/pin";

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

/**
 * Whether two user paths name the same place. State keeps paths as the user wrote them; a relative one
 * resolves against the Pulumi project folder (the provider process's working directory), so the same
 * project checked out elsewhere has the same state.
 */
export function samePath(a: string | undefined, b: string | undefined): boolean {
    if (a === undefined || b === undefined) return a === b;
    return path.resolve(a) === path.resolve(b);
}

export interface CheckSteps<T> {
    /** Rules schema.json cannot express; all problems at once. `olds` are the previous inputs, if any. */
    crossField(inputs: T, olds: Record<string, any>): InputProblem[];
    /** Computes what preview must know (content digests, input hashes); may find more problems. */
    derive(inputs: T, olds: Record<string, any>): Promise<InputProblem[]>;
}

/**
 * The shared shape of every resource's check(): schema defaults and validation from schema.json and
 * the cross-field rules, reported together so one round of fixes is enough; then (only once every
 * value is known and valid) the derived hashes.
 */
export async function checkInputs<T extends object>(token: string, olds: Record<string, any>, news: Record<string, any>, steps: CheckSteps<T>) {
    const inputs = { ...inputDefaults(token), ...userInputs(news) } as T;
    const result = (failures: InputProblem[]) => ({ inputs: { ...news, ...inputs }, failures });
    // A key URI with a PIN in it (any key input, at any depth) is refused before anything reads it, and
    // neither the refusal nor the inputs handed back show the PIN.
    const pinned = pinCarryingInputs(inputs);
    if (pinned.length > 0) {
        const flagged = new Set(pinned.map((p) => p.property));
        const others = validateInputs(token, inputs).filter((p) => !flagged.has(p.property)).map((p) => ({ ...p, reason: redactPin(p.reason) }));
        return { inputs: redactedDeep({ ...news, ...inputs }), failures: [...pinned, ...others] };
    }
    const schemaProblems = validateInputs(token, inputs);
    if (containsUnknown(inputs)) return result(schemaProblems);
    if (schemaProblems.length > 0) {
        const flagged = new Set(schemaProblems.map((p) => p.property));
        return result([...schemaProblems, ...rulesOnMalformedInputs(() => steps.crossField(inputs, olds)).filter((p) => !flagged.has(p.property))]);
    }
    const ruleProblems = steps.crossField(inputs, olds);
    if (ruleProblems.length > 0) return result(ruleProblems);
    return result(await steps.derive(inputs, olds));
}

/** The rules' findings on inputs the schema already refused; a rule that cannot judge such inputs says nothing. */
function rulesOnMalformedInputs(rules: () => InputProblem[]): InputProblem[] {
    try {
        return rules();
    } catch {
        return [];
    }
}

const LOCAL_SOURCE_FORMS = ["dir", "ociLayout", "dockerArchive"] as const;

/** Exactly one source form, and local sources that exist. */
export function sourceProblems(source: ExtensionSourceSpec): InputProblem[] {
    const problems: InputProblem[] = [];
    const forms = sourceForms(source);
    if (forms.length !== 1) {
        problems.push({ property: "source", reason: forms.length === 0 ? "names no source; give one of dir, ociLayout, dockerArchive, image, dockerfile" : `names ${forms.join(" and ")}; give exactly one` });
    }
    for (const f of LOCAL_SOURCE_FORMS) {
        const p = source[f];
        if (p && !fs.existsSync(p)) problems.push({ property: `source.${f}`, reason: `${p} does not exist` });
    }
    if (source.dockerfile) problems.push(...dockerfileProblems(source.dockerfile));
    return problems;
}

/** A context folder and a Dockerfile that exist, TLS files that exist, a daemon address buildctl takes. */
function dockerfileProblems(spec: DockerfileSpec): InputProblem[] {
    const problems: InputProblem[] = [];
    const add = (property: string, reason: string) => problems.push({ property: `source.dockerfile.${property}`, reason });
    if (!fs.existsSync(spec.context)) add("context", `${spec.context} does not exist`);
    else if (!fs.statSync(spec.context).isDirectory()) add("context", `${spec.context} is not a directory`);
    else if (!fs.existsSync(dockerfilePath(spec))) add("dockerfile", `${dockerfilePath(spec)} does not exist${spec.dockerfile ? "" : " (the default: <context>/Dockerfile)"}`);
    if (spec.buildArgs && "SOURCE_DATE_EPOCH" in spec.buildArgs) add("buildArgs", "SOURCE_DATE_EPOCH is set from the resource's sourceDateEpoch (it is what the image's timestamps become); set that instead");
    if (spec.buildkitHost !== undefined && !/^[a-z][a-z0-9+-]*:\/\/./.test(spec.buildkitHost)) add("buildkitHost", `${JSON.stringify(spec.buildkitHost)} is not a daemon address (unix:///path/buildkitd.sock or tcp://host:port)`);
    for (const f of ["caCertificate", "certificate", "key"] as const) {
        const file = spec.tls?.[f];
        if (file && !fs.existsSync(file)) add(`tls.${f}`, `${file} does not exist`);
    }
    for (const [field, list] of [["cacheFrom", spec.cacheFrom], ["cacheTo", spec.cacheTo]] as const) {
        for (const entry of list ?? []) if (!/^type=[a-z0-9-]+/.test(entry)) add(field, `${JSON.stringify(entry)} is not a BuildKit cache spec (type=registry,ref=… or type=s3,…)`);
    }
    return problems;
}

/** A signing key and certificate that exist and belong together. */
export function signingPairProblems(property: string, pair: { key: string; certificate: string }): InputProblem[] {
    if (isPkcs11Uri(pair.key)) {
        if (!fs.existsSync(pair.certificate)) return [{ property, reason: `${pair.certificate} does not exist` }];
        const unreadable = certificateProblems(property, pair.certificate);
        if (unreadable.length > 0) return unreadable;
        const problem = tokenKeyProblem(pair.key);
        if (problem) return [{ property, reason: problem }];
        if (!keyMatchesCertificate(pair.key, pair.certificate)) return [{ property, reason: `the token key ${pair.key} does not match the certificate ${pair.certificate}` }];
        return [];
    }
    const missing = [pair.key, pair.certificate].filter((f) => !fs.existsSync(f));
    if (missing.length > 0) return [{ property, reason: `${missing.join(" and ")} ${missing.length > 1 ? "do" : "does"} not exist` }];
    const unreadable = [...privateKeyProblems(property, pair.key), ...certificateProblems(property, pair.certificate)];
    if (unreadable.length > 0) return unreadable.slice(0, 1);
    if (!keyMatchesCertificate(pair.key, pair.certificate)) return [{ property, reason: `the key ${pair.key} does not match the certificate ${pair.certificate}` }];
    return [];
}

/** `file` holds a private key openssl can use (PEM or DER); a certificate or garbage is named as such. */
export function privateKeyProblems(property: string, file: string): InputProblem[] {
    if (isPkcs11Uri(file)) {
        const problem = tokenKeyProblem(file);
        return problem ? [{ property, reason: problem }] : [];
    }
    const error = privateKeyError(file);
    return error ? [{ property, reason: `${file} is not a private key (${error})` }] : [];
}

function certificateProblems(property: string, file: string): InputProblem[] {
    const error = certificateError(file);
    return error ? [{ property, reason: `${file} is not an X.509 certificate (${error})` }] : [];
}

const privateKeyError = memoByFiles((file: string): string | undefined => {
    try {
        createPrivateKey(fs.readFileSync(file));
        return undefined;
    } catch (e) {
        return readableCryptoError(e);
    }
});

const certificateError = memoByFiles((file: string): string | undefined => {
    try {
        new X509Certificate(fs.readFileSync(file));
        return undefined;
    } catch (e) {
        return readableCryptoError(e);
    }
});

/** "error:0480006C:PEM routines::no start line" -> "PEM routines: no start line"; EISDIR and the like as they are. */
function readableCryptoError(e: unknown): string {
    const m = (e as Error).message;
    return m.replace(/^error:[0-9A-F]+:/, "").replace(/::/, ": ");
}

/**
 * The fields whose change means a new artifact (a replace). A field still unknown in a preview is not
 * listed (the update decides once it is known), and paths are compared by the place they name.
 */
export function replacedFields<T extends Record<string, any>>(olds: T, news: T, fields: (keyof T & string)[], pathFields: (keyof T & string)[] = []): string[] {
    return fields.filter((f) => {
        if (containsUnknown(news[f]) || news[f] === undefined) return false;
        if (pathFields.includes(f) && typeof news[f] === "string") return !samePath(olds[f], news[f]);
        return olds[f] !== news[f];
    });
}

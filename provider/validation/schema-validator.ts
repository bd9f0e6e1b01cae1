// Input validation derived from schema.json. Pulumi's package schema is not JSON Schema, so each
// resource's inputProperties are translated (types -> $defs, enums -> enum, language.jsonSchema ->
// extra keywords) and compiled once with ajv. Every problem is reported at once, with its path.
import Ajv, { ErrorObject, ValidateFunction } from "ajv";
import * as fs from "fs";
import * as path from "path";

/** schema.json at the package root: found by walking up, so it works from sources and from bin/. */
export const SCHEMA_PATH = findPackageFile(__dirname, "schema.json");

function findPackageFile(start: string, name: string): string {
    for (let dir = start; ; dir = path.dirname(dir)) {
        if (fs.existsSync(path.join(dir, name)) && fs.existsSync(path.join(dir, "package.json"))) return path.join(dir, name);
        if (path.dirname(dir) === dir) throw new Error(`cannot find ${name} above ${start}`);
    }
}
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"; // pulumi's unknown-value sentinel in previews

type Json = Record<string, any>;

/** One problem with an input (providers' check and the components' constructors alike). */
export interface InputProblem {
    /** Where the problem is, e.g. `extensions[1].name` (Pulumi's CheckFailure.property). */
    property: string;
    /** What is wrong, the bad value, and what is allowed. */
    reason: string;
}

export class InputValidationError extends Error {
    readonly code = "INVALID_INPUT";
    constructor(readonly resourceType: string, readonly problems: InputProblem[]) {
        super(`invalid inputs for ${resourceType}:\n${problems.map((p) => `  - ${p.property}: ${p.reason}`).join("\n")}`);
    }
}

let packageSchema: Json | undefined;
const compiled = new Map<string, ValidateFunction>();

export function loadPackageSchema(): Json {
    return (packageSchema ??= JSON.parse(fs.readFileSync(SCHEMA_PATH, "utf8")));
}

/** The JSON Schema (draft 2019+/ajv) for one resource's inputs. */
export function inputJsonSchema(token: string): Json {
    const schema = loadPackageSchema();
    const resource = schema.resources?.[token];
    if (!resource) throw new Error(`schema.json has no resource ${token}`);
    const defs: Json = {};
    const translateType = (typeToken: string): void => {
        if (defs[typeToken]) return;
        const spec = schema.types?.[typeToken];
        if (!spec) throw new Error(`schema.json has no type ${typeToken}`);
        if (spec.enum) {
            defs[typeToken] = { type: spec.type, enum: spec.enum.map((e: Json) => e.value) };
            return;
        }
        defs[typeToken] = {}; // reserve the name before recursing
        defs[typeToken] = objectSchema(spec.properties ?? {}, spec.required ?? []);
    };
    const property = (spec: Json): Json => {
        let out: Json;
        if (spec.$ref) {
            const typeToken = decodeURIComponent(String(spec.$ref).replace(/^#\/types\//, ""));
            translateType(typeToken);
            out = { $ref: `#/$defs/${defName(typeToken)}` };
        } else if (spec.type === "array") {
            out = { type: "array", items: property(spec.items) };
        } else if (spec.type === "object") {
            out = { type: "object", additionalProperties: spec.additionalProperties ? property(spec.additionalProperties) : true };
        } else {
            out = { type: spec.type };
        }
        return { ...out, ...(spec.language?.jsonSchema ?? {}) };
    };
    const objectSchema = (props: Json, required: string[]): Json => ({
        type: "object",
        properties: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, property(v as Json)])),
        required,
        additionalProperties: false,
    });
    const root = objectSchema(resource.inputProperties ?? {}, resource.requiredInputs ?? []);
    return { ...root, $defs: Object.fromEntries(Object.entries(defs).map(([k, v]) => [defName(k), v])) };
}

/** "kairos:index:RsaKeySize" -> "kairos_index_RsaKeySize": a JSON-pointer-safe $defs key. */
function defName(typeToken: string): string {
    return typeToken.replace(/[^A-Za-z0-9]/g, "_");
}

/** Defaults declared in schema.json for a resource's top-level inputs. */
export function inputDefaults(token: string): Json {
    const resource = loadPackageSchema().resources[token];
    const out: Json = {};
    for (const [name, spec] of Object.entries<Json>(resource.inputProperties ?? {})) {
        if (spec.default !== undefined) out[name] = spec.default;
    }
    return out;
}

/** Checks inputs against schema.json; values still unknown (preview) are not judged. */
export function validateInputs(token: string, inputs: Json): InputProblem[] {
    let validate = compiled.get(token);
    if (!validate) {
        const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
        validate = ajv.compile(inputJsonSchema(token));
        compiled.set(token, validate);
    }
    if (validate(inputs)) return [];
    const errors = (validate.errors ?? []).filter((e) => valueAt(inputs, e.instancePath) !== UNKNOWN && !isUnknownParent(inputs, e));
    // An empty string also fails its pattern; "must not be empty" says all there is to say.
    const empty = new Set(errors.filter((e) => e.keyword === "minLength" && e.params.limit === 1).map((e) => e.instancePath));
    return errors.filter((e) => !(e.keyword === "pattern" && empty.has(e.instancePath))).map((e) => describe(e, inputs));
}

export function assertValidInputs(token: string, inputs: Json): void {
    const problems = validateInputs(token, inputs);
    if (problems.length > 0) throw new InputValidationError(token, problems);
}

function isUnknownParent(inputs: Json, e: ErrorObject): boolean {
    // an error inside a value that is unknown as a whole (e.g. an unknown object)
    const parts = e.instancePath.split("/").slice(1);
    for (let i = 0; i < parts.length; i++) {
        if (valueAt(inputs, "/" + parts.slice(0, i).join("/")) === UNKNOWN) return true;
    }
    return false;
}

function valueAt(obj: unknown, pointer: string): unknown {
    if (pointer === "" || pointer === "/") return obj;
    return pointer
        .split("/")
        .slice(1)
        .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
        .reduce<any>((v, key) => (v == null ? undefined : v[key]), obj);
}

function propertyPath(pointer: string): string {
    const parts = pointer.split("/").slice(1);
    return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), "");
}

function describe(e: ErrorObject, inputs: Json): InputProblem {
    const at = propertyPath(e.instancePath);
    const value = JSON.stringify(valueAt(inputs, e.instancePath));
    const join = (p: string) => (at ? `${at}.${p}` : p);
    switch (e.keyword) {
        case "required":
            return { property: join(e.params.missingProperty), reason: "is required" };
        case "additionalProperties": {
            const allowed = Object.keys((e.parentSchema as Json)?.properties ?? {});
            return { property: join(e.params.additionalProperty), reason: `is not a known property; allowed: ${allowed.join(", ")}` };
        }
        case "enum":
            return { property: at, reason: `${value} is not allowed; allowed: ${(e.params.allowedValues as unknown[]).join(", ")}` };
        case "type":
            return { property: at, reason: `${value} is not of type ${e.params.type}` };
        case "pattern":
            return { property: at, reason: `${value} does not match ${e.params.pattern}` };
        case "minimum":
        case "maximum":
            return { property: at, reason: `${value} must be ${e.params.comparison} ${e.params.limit}` };
        case "minLength":
            return { property: at, reason: e.params.limit === 1 ? "must not be empty" : `${value} must be at least ${e.params.limit} characters` };
        case "maxLength":
            return { property: at, reason: `${value} must be at most ${e.params.limit} characters` };
        default:
            return { property: at, reason: `${value} ${e.message}` };
    }
}

import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import Ajv2020 from "ajv/dist/2020";
import { inputDefaults, inputJsonSchema, loadPackageSchema, validateInputs, UNKNOWN } from "../../provider/validation/schema-validator";

const TOKEN = "kairos:index:SigningKeys";

/** Pulumi's own metaschema ships in the pkg/v3 Go module the setup builds the CLI from. */
function pulumiMetaschemaPath(): string {
    const modcache = execFileSync("go", ["env", "GOMODCACHE"]).toString().trim();
    const version = fs.readFileSync(path.join(__dirname, "..", "..", "scripts", "install-pulumi.sh"), "utf8").match(/PULUMI_VERSION:-([0-9.]+)/)![1];
    return path.join(modcache, "github.com", "pulumi", "pulumi", "pkg", `v3@v${version}`, "codegen", "schema", "pulumi.json");
}

describe("schema.json", () => {
    it("is a valid Pulumi package schema (checked against Pulumi's metaschema)", () => {
        const ajv = new Ajv2020({ strict: false, allErrors: true });
        const validate = ajv.compile(JSON.parse(fs.readFileSync(pulumiMetaschemaPath(), "utf8")));
        const ok = validate(loadPackageSchema());
        assert.ok(ok, JSON.stringify(validate.errors, null, 2));
    });

    it("derives defaults and a closed JSON Schema for SigningKeys inputs", () => {
        assert.deepStrictEqual(inputDefaults(TOKEN), { keySize: 2048, validityDays: 3650, rotation: 0, deleteOnDestroy: false });
        const schema = inputJsonSchema(TOKEN);
        assert.deepStrictEqual(schema.required, ["name", "outputDir"]);
        assert.strictEqual(schema.additionalProperties, false);
        assert.deepStrictEqual(schema.$defs.kairos_index_RsaKeySize.enum, [2048, 3072, 4096]);
    });
});

describe("input validation from schema.json", () => {
    it("accepts a minimal valid input", () => {
        assert.deepStrictEqual(validateInputs(TOKEN, { name: "acme", outputDir: "/tmp/k" }), []);
    });

    it("reports every problem at once, with path, bad value and what is allowed", () => {
        const problems = validateInputs(TOKEN, {
            name: "",
            keySize: 1024,
            validityDays: 0,
            authTimestamp: "yesterday",
            import: { PK: { key: "/k" } },
            colour: "blue",
        });
        const byPath = Object.fromEntries(problems.map((p) => [p.property, p.reason]));
        assert.strictEqual(byPath["outputDir"], "is required");
        assert.strictEqual(byPath["name"], "must not be empty");
        assert.strictEqual(byPath["keySize"], "1024 is not allowed; allowed: 2048, 3072, 4096");
        assert.strictEqual(byPath["validityDays"], "0 must be >= 1");
        assert.match(byPath["authTimestamp"], /"yesterday" does not match/);
        assert.strictEqual(byPath["import.PK.certificate"], "is required");
        assert.match(byPath["colour"], /is not a known property; allowed: name, outputDir/);
        assert.strictEqual(problems.length, 7);
    });

    it("does not judge values that are still unknown during a preview", () => {
        assert.deepStrictEqual(validateInputs(TOKEN, { name: UNKNOWN, outputDir: UNKNOWN, keySize: UNKNOWN }), []);
    });
});

// schema.json is the one contract: each resource class declares exactly the outputs schema.json lists
// (its `declare readonly` fields and the `outputs` object it registers), and every property in the
// schema carries a description, because those descriptions are the generated SDKs' docs.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";
import { loadPackageSchema } from "../../provider/validation/schema-validator";

const PROVIDER = path.resolve(__dirname, "..", "..", "provider");
const RESOURCE_FILES: Record<string, string> = {
    "kairos:index:SigningKeys": "signing-keys.ts",
    "kairos:index:SystemExtension": "system-extension.ts",
    "kairos:index:KairosUkiImage": "kairos-uki-image.ts",
    "kairos:index:BootMedia": "boot-media.ts",
    "kairos:index:PromotedArtifact": "promoted-artifact.ts",
};

/** The output names a resource class declares (`declare readonly x`) and registers (`const outputs = { x: undefined }`). */
function classOutputs(file: string): { declared: string[]; registered: string[] } {
    const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
    const declared: string[] = [];
    const registered: string[] = [];
    const visit = (node: ts.Node): void => {
        if (ts.isPropertyDeclaration(node) && node.modifiers?.some((m) => m.kind === ts.SyntaxKind.DeclareKeyword)) declared.push(node.name.getText());
        if (ts.isVariableDeclaration(node) && node.name.getText() === "outputs" && node.initializer && ts.isObjectLiteralExpression(node.initializer)) {
            for (const p of node.initializer.properties) if (p.name) registered.push(p.name.getText());
        }
        ts.forEachChild(node, visit);
    };
    visit(source);
    return { declared: declared.sort(), registered: registered.sort() };
}

describe("schema.json as the one contract", () => {
    const schema = loadPackageSchema();

    for (const [token, file] of Object.entries(RESOURCE_FILES)) {
        it(`${token}: the class declares and registers exactly the outputs schema.json lists`, () => {
            const listed = Object.keys(schema.resources[token].properties).sort();
            const { declared, registered } = classOutputs(path.join(PROVIDER, file));
            assert.deepEqual(declared, listed, `declare readonly fields of ${file} vs schema.json properties`);
            assert.deepEqual(registered, listed, `the outputs object of ${file} vs schema.json properties`);
        });
    }

    it("every property of every resource and type has a description", () => {
        const undocumented: string[] = [];
        const check = (where: string, props: Record<string, any> | undefined) => {
            for (const [name, p] of Object.entries(props ?? {})) if (!p.description?.trim()) undocumented.push(`${where}.${name}`);
        };
        for (const [token, r] of Object.entries<any>(schema.resources)) {
            check(`${token} input`, r.inputProperties);
            check(`${token} output`, r.properties);
        }
        for (const [token, t] of Object.entries<any>(schema.types)) check(token, t.properties);
        assert.deepEqual(undocumented, []);
    });

    it("names the package's own version", () => {
        const pkg = JSON.parse(fs.readFileSync(path.join(PROVIDER, "..", "package.json"), "utf8"));
        assert.equal(schema.version, pkg.version);
    });
});

// schema.json is the one contract: each resource's Args, its output fields and the outputs it registers
// come from provider/generated/contract.ts, which scripts/gen-contract.ts writes from schema.json; this
// test fails when that file is stale, when a class declares an output by hand instead of merging with
// the generated fields, when an Args interface adds an input schema.json lacks (beyond the listed
// shorthands), when a handler's Outputs lacks an output schema.json lists, or when an input has no role in
// input-roles.ts (the table the input hash is computed from). Every property in the schema carries a
// description, because those descriptions are the generated SDKs' docs.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";
import { loadPackageSchema } from "../../provider/validation/schema-validator";
import { INPUT_ROLES } from "../../provider/validation/input-roles";
import { OUTPUT_NAMES } from "../../provider/generated/contract";
import { CONTRACT_PATH, renderContract } from "../../scripts/gen-contract";

const ROOT = path.resolve(__dirname, "..", "..");
const PROVIDER = path.join(ROOT, "provider");
interface ResourceFiles {
    /** The file with the resource class and its public Args. */
    file: string;
    /** The file declaring the handler's `interface Outputs` (what build() returns). */
    outputs: string;
    /** Args members that are program-side shorthands, not schema.json inputs (they turn into inputs). */
    shorthands: string[];
}
const RESOURCES: Record<string, ResourceFiles> = {
    "kairos:index:SigningKeys": { file: "signing-keys.ts", outputs: "signing-keys/key-set.ts", shorthands: [] },
    "kairos:index:SystemExtension": { file: "system-extension.ts", outputs: "system-extension.ts", shorthands: ["signingKeys"] },
    "kairos:index:KairosUkiImage": { file: "kairos-uki-image.ts", outputs: "kairos-uki-image/uki-image.ts", shorthands: ["signingKeys"] },
    "kairos:index:BootMedia": { file: "boot-media.ts", outputs: "boot-media/media.ts", shorthands: ["ukiImage", "signingKeys"] },
    "kairos:index:PromotedArtifact": { file: "promoted-artifact.ts", outputs: "promoted-artifact.ts", shorthands: [] },
    "kairos:index:SysextRelease": { file: "sysext-release.ts", outputs: "sysext-release.ts", shorthands: [] },
    "kairos:index:ExtensionCatalog": { file: "extension-catalog.ts", outputs: "extension-catalog.ts", shorthands: [] },
    "kairos:index:OsRelease": { file: "os-release.ts", outputs: "os-release.ts", shorthands: [] },
    "kairos:index:PromotedRelease": { file: "promoted-release.ts", outputs: "promoted-release.ts", shorthands: [] },
};
/** Outputs every resource gets from handlers.ts (stateVersion) and the store wrapper (store), not from build(). */
const WRAPPER_OUTPUTS = ["stateVersion", "store"];

const shortName = (token: string) => token.split(":").pop()!;

/** What a resource file says about its class, read with the type checker. */
function classShape(program: ts.Program, file: string, className: string) {
    const checker = program.getTypeChecker();
    const source = program.getSourceFile(file)!;
    const handDeclared: string[] = [];
    let registers: string | undefined;
    let merged = false;
    let args: string[] = [];
    let instance: string[] = [];
    const visit = (node: ts.Node): void => {
        if (ts.isPropertyDeclaration(node) && node.modifiers?.some((m) => m.kind === ts.SyntaxKind.DeclareKeyword)) handDeclared.push(node.name.getText());
        if (ts.isVariableDeclaration(node) && node.name.getText() === "outputs" && node.initializer) registers = node.initializer.getText();
        if (ts.isInterfaceDeclaration(node) && node.name.text === className) {
            merged = (node.heritageClauses ?? []).some((h) => h.types.some((t) => t.getText() === `contract.${className}OutputFields`));
        }
        if (ts.isInterfaceDeclaration(node) && node.name.text === `${className}Args`) {
            args = checker.getTypeAtLocation(node.name).getProperties().map((p) => p.name);
        }
        if (ts.isClassDeclaration(node) && node.name?.text === className) {
            instance = checker.getTypeAtLocation(node.name).getProperties().map((p) => p.name);
        }
        ts.forEachChild(node, visit);
    };
    visit(source);
    return { handDeclared, registers, merged, args: args.sort(), instance };
}

/** The property names of `interface Outputs` in `file`, with what it extends. */
function handlerOutputs(program: ts.Program, file: string): string[] {
    const checker = program.getTypeChecker();
    let names: string[] | undefined;
    const visit = (node: ts.Node): void => {
        if (ts.isInterfaceDeclaration(node) && node.name.text === "Outputs") names = checker.getTypeAtLocation(node.name).getProperties().map((p) => p.name);
        ts.forEachChild(node, visit);
    };
    visit(program.getSourceFile(file)!);
    assert.ok(names, `${file} declares no interface Outputs`);
    return names!;
}

describe("schema.json as the one contract", function () {
    this.timeout(120000);
    const schema = loadPackageSchema();
    let program: ts.Program;

    before(() => {
        const files = Object.values(RESOURCES).flatMap((r) => [r.file, r.outputs]).map((f) => path.join(PROVIDER, f));
        program = ts.createProgram([...new Set(files)], { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, strict: true, esModuleInterop: true, skipLibCheck: true, noEmit: true, types: ["node"] });
    });

    it("provider/generated/contract.ts is what scripts/gen-contract.ts makes from schema.json (run npm run gen-contract)", () => {
        assert.equal(fs.readFileSync(CONTRACT_PATH, "utf8"), renderContract(schema), "provider/generated/contract.ts is stale: run npm run gen-contract");
    });

    for (const [token, r] of Object.entries(RESOURCES)) {
        const name = shortName(token);
        it(`${name}: the class takes its output fields and registered outputs from schema.json, and declares none by hand`, () => {
            const listed = Object.keys(schema.resources[token].properties).sort();
            assert.deepEqual([...OUTPUT_NAMES[name as keyof typeof OUTPUT_NAMES]].sort(), listed, "OUTPUT_NAMES vs schema.json properties");
            const shape = classShape(program, path.join(PROVIDER, r.file), name);
            assert.deepEqual(shape.handDeclared, [], `${r.file} declares fields by hand; the outputs come from contract.${name}OutputFields`);
            assert.ok(shape.merged, `${r.file} has no \`export interface ${name} extends contract.${name}OutputFields {}\``);
            assert.equal(shape.registers, `registeredOutputs("${name}")`, `${r.file} registers its outputs from the generated list`);
            const missing = listed.filter((o) => !shape.instance.includes(o));
            assert.deepEqual(missing, [], `${name} instances lack these schema.json outputs`);
        });

        it(`${name}: the Args are schema.json's inputs plus the named shorthands, nothing else`, () => {
            const inputs = Object.keys(schema.resources[token].inputProperties).sort();
            const { args } = classShape(program, path.join(PROVIDER, r.file), name);
            assert.deepEqual(args.filter((a) => !r.shorthands.includes(a)), inputs, `${name}Args vs schema.json inputProperties`);
            for (const s of r.shorthands) assert.ok(args.includes(s), `${name}Args has the shorthand ${s}`);
        });

        it(`${name}: the handler's Outputs (what build() must return) has every output schema.json lists`, () => {
            const have = handlerOutputs(program, path.join(PROVIDER, r.outputs));
            const listed = Object.keys(schema.resources[token].properties).filter((o) => !WRAPPER_OUTPUTS.includes(o));
            assert.deepEqual(listed.filter((o) => !have.includes(o)), [], `${r.outputs}: interface Outputs lacks these schema.json outputs`);
        });

        it(`${name}: every input has a role in input-roles.ts, the table the input hash is computed from`, () => {
            const inputs = Object.keys(schema.resources[token].inputProperties).sort();
            // (test/provider/input-roles.test.ts proves each role through the real check() and diff().)
            assert.deepEqual(Object.keys(INPUT_ROLES[token] ?? {}).sort(), inputs, "input-roles.ts vs schema.json inputProperties");
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
        const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
        assert.equal(schema.version, pkg.version);
    });
});

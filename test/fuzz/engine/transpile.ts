// Workers load the targets as JavaScript transpiled here, in the main thread, instead of through ts-node:
// V8's coverage snapshot walks every function in the isolate, and the TypeScript compiler ts-node would
// load into each worker made each snapshot about ten times slower. Paths stay the .ts paths, so __dirname,
// stack traces (with inline source maps) and crash signatures read as usual.
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";

const IMPORT = /(?:from\s+|import\s*\(\s*|require\s*\(\s*)["'](\.{1,2}\/[^"']+)["']/g;

/** JavaScript for `entry` and every .ts module it reaches through relative imports, keyed by file name. */
export function transpileGraph(entries: string[]): Record<string, string> {
    const out: Record<string, string> = {};
    const queue = [...entries];
    for (let file = queue.pop(); file; file = queue.pop()) {
        if (out[file] !== undefined) continue;
        const source = fs.readFileSync(file, "utf8");
        out[file] = ts.transpileModule(source, {
            fileName: file,
            compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, inlineSourceMap: true, inlineSources: false },
        }).outputText;
        for (const m of source.matchAll(IMPORT)) {
            const resolved = resolveTs(path.dirname(file), m[1]);
            if (resolved) queue.push(resolved);
        }
    }
    return out;
}

function resolveTs(dir: string, spec: string): string | undefined {
    const base = path.resolve(dir, spec);
    for (const candidate of [`${base}.ts`, path.join(base, "index.ts")]) if (fs.existsSync(candidate)) return candidate;
    return undefined;
}

/** In the worker: serve .ts requires from the transpiled map. */
export const INSTALL_HOOK = `
const Module = require("module");
process.setSourceMapsEnabled(true);
Module._extensions[".ts"] = function (module, filename) {
    const code = CODE[filename];
    if (code === undefined) throw new Error("fuzz worker: " + filename + " was not transpiled (import it with a relative path)");
    module._compile(code, filename);
};
`;

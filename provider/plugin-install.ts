// `pulumi-kairos install-plugin`: puts this installed package's provider plugin into Pulumi's plugin
// cache (`pulumi plugin install resource kairos <version> --file <folder>`), so `runtime: yaml`
// projects and other languages find `kairos:index:*` resources. The plugin folder holds one script
// that starts this package's plugin.js with this machine's node: the package stays where npm put it.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "./toolkit/run";
import { loadPackageSchema } from "./validation/schema-validator";
import { PLUGIN_NAME } from "./plugin";

export interface InstalledPlugin {
    name: string;
    version: string;
    /** What the plugin script runs. */
    entry: string;
}

/** The script Pulumi runs as `pulumi-resource-kairos`: node on this package's plugin entry. */
export function pluginScript(entry: string, nodePath = process.execPath): string {
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    if (entry.endsWith(".ts")) {
        // a source checkout: compile on the fly, with the checkout's compiler settings
        const root = path.resolve(path.dirname(entry), "..");
        const register = require.resolve("ts-node/register/transpile-only", { paths: [root] });
        return `#!/bin/sh\nTS_NODE_PROJECT=${quote(path.join(root, "tsconfig.json"))} exec ${quote(nodePath)} -r ${quote(register)} ${quote(entry)} "$@"\n`;
    }
    return `#!/bin/sh\nexec ${quote(nodePath)} ${quote(entry)} "$@"\n`;
}

export async function installPlugin(opts: { pulumi?: string; env?: Record<string, string | undefined> } = {}): Promise<InstalledPlugin> {
    const version: string = loadPackageSchema().version;
    const entry = path.join(__dirname, `plugin${path.extname(__filename)}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pulumi-resource-${PLUGIN_NAME}-`));
    try {
        fs.writeFileSync(path.join(dir, `pulumi-resource-${PLUGIN_NAME}`), pluginScript(entry), { mode: 0o755 });
        await run([opts.pulumi ?? "pulumi", "plugin", "install", "resource", PLUGIN_NAME, version, "--file", dir, "--reinstall"], { env: opts.env, timeoutMs: 120000 });
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
    return { name: PLUGIN_NAME, version, entry };
}

#!/usr/bin/env node
// The package's command line (`npx pulumi-kairos …`).
import { examine, formatReport } from "./doctor";

const USAGE = [
    "usage: pulumi-kairos <command>",
    "  doctor           check the tools the resources need on this machine",
    "  install-plugin   install the kairos resource plugin into Pulumi's plugin cache (for YAML and other languages)",
].join("\n");

async function main(args: string[]): Promise<number> {
    switch (args[0]) {
        case "doctor": {
            const report = await examine();
            console.log(formatReport(report));
            return report.missingRequired.length > 0 ? 1 : 0;
        }
        case "install-plugin": {
            const { installPlugin } = await import("./plugin-install"); // loads @pulumi/pulumi; doctor does not need it
            const p = await installPlugin();
            console.log(`installed resource plugin ${p.name} v${p.version} (runs ${p.entry})`);
            return 0;
        }
        default:
            console.error(USAGE);
            return args.length === 0 || args[0] === "--help" || args[0] === "-h" ? 0 : 2;
    }
}

main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
        console.error(e instanceof Error ? e.message : String(e));
        process.exit(1);
    },
);

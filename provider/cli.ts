#!/usr/bin/env node
// The package's command line: `npx pulumi-kairos doctor`.
import { examine, formatReport } from "./doctor";

const USAGE = "usage: pulumi-kairos doctor   (checks the tools the resources need on this machine)";

async function main(args: string[]): Promise<number> {
    if (args[0] !== "doctor") {
        console.error(USAGE);
        return args.length === 0 || args[0] === "--help" || args[0] === "-h" ? 0 : 2;
    }
    const report = await examine();
    console.log(formatReport(report));
    return report.missingRequired.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
        console.error(e instanceof Error ? e.message : String(e));
        process.exit(1);
    },
);

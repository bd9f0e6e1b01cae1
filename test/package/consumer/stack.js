// Runs one Pulumi operation on this project's "dev" stack and prints the result as JSON:
//   node stack.js up|preview|refresh|destroy|export
// Through the Automation API with the program inline, because `pulumi up` in a folder needs the Node.js
// language host, which cannot be built here. The state lives in .state/ next to this file; the Pulumi
// CLI comes from PULUMI_KAIROS_BIN (its folder).
const path = require("path");
const { LocalWorkspace, PulumiCommand } = require("@pulumi/pulumi/automation");
const program = require("./program");

async function main(operation) {
    const bin = process.env.PULUMI_KAIROS_BIN;
    if (!bin) throw new Error("PULUMI_KAIROS_BIN must name the folder holding the pulumi binary");
    const envVars = {
        PULUMI_BACKEND_URL: `file://${path.join(__dirname, ".state")}`,
        PULUMI_CONFIG_PASSPHRASE: "consumer-test",
        PULUMI_HOME: path.join(__dirname, ".state", "pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PATH: `${bin}:${process.env.PATH}`,
    };
    const pulumiCommand = await PulumiCommand.get({ root: path.dirname(bin) });
    const stack = await LocalWorkspace.createOrSelectStack({ projectName: "kairos-consumer", stackName: "dev", program }, { workDir: __dirname, pulumiCommand, envVars });
    const opts = { color: "never" };
    switch (operation) {
        case "up": {
            const r = await stack.up(opts);
            return { changes: r.summary.resourceChanges, outputs: Object.fromEntries(Object.entries(r.outputs).map(([k, v]) => [k, v.value])), stdout: r.stdout };
        }
        case "preview": {
            const r = await stack.preview({ ...opts, diff: true });
            return { changes: r.changeSummary, stdout: r.stdout };
        }
        case "refresh": {
            const r = await stack.refresh(opts);
            return { changes: r.summary.resourceChanges };
        }
        case "destroy": {
            const r = await stack.destroy(opts);
            return { changes: r.summary.resourceChanges };
        }
        case "export":
            return stack.exportStack();
        default:
            throw new Error(`unknown operation ${operation}; give up, preview, refresh, destroy or export`);
    }
}

main(process.argv[2]).then(
    (result) => console.log(JSON.stringify(result)),
    (e) => {
        console.error(e.stack || String(e));
        process.exit(1);
    },
);

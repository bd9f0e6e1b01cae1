// `npm run demo`: deploys the offline demo through the real Pulumi engine (local file backend under
// out/demo/.state), writes the stack outputs to out/demo/outputs.json and says what was built.
import * as fs from "fs";
import * as path from "path";
import { openLocalStack, REPO_ROOT } from "../../scripts/lib/local-engine";
import { demoProgram } from "./index";

const OUT_DIR = path.join(REPO_ROOT, "out", "demo");
// A fixed passphrase is fine for a local demo; real stacks take theirs from PULUMI_CONFIG_PASSPHRASE.
const DEMO_PASSPHRASE = process.env.PULUMI_CONFIG_PASSPHRASE ?? "pulumi-kairos-demo";

async function main(): Promise<void> {
    const started = Date.now();
    fs.mkdirSync(OUT_DIR, { recursive: true });
    const stack = await openLocalStack(demoProgram(OUT_DIR), {
        backendDir: path.join(OUT_DIR, ".state"),
        passphrase: DEMO_PASSPHRASE,
        projectName: "kairos-offline-demo",
        stackName: "demo",
    });
    const result = await stack.up({ color: "never", onOutput: (line) => process.stdout.write(line) });
    const outputs = Object.fromEntries(Object.entries(result.outputs).map(([k, v]) => [k, v.value]));
    fs.writeFileSync(path.join(OUT_DIR, "outputs.json"), JSON.stringify(outputs, null, 2) + "\n");

    const changes = Object.entries(result.summary.resourceChanges ?? {}).filter(([op]) => op !== "same");
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
        changes.length === 0
            ? `\ndemo: no changes — everything in ${OUT_DIR} is up to date (${seconds} s)`
            : `\ndemo: ${changes.map(([op, n]) => `${n} ${op}`).join(", ")} in ${seconds} s; artifacts in ${OUT_DIR}, outputs in out/demo/outputs.json`,
    );
}

main().catch((e) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
});

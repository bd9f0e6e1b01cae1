// A second process for the lock tests: `build <token> <inputs.json>` runs check + create as a provider
// process would and prints the outputs as JSON; `hold <target> <owner>` takes the output lock, says
// "held" and keeps it until killed.
import { handlerFor } from "../../provider/handlers";
import { withOutputLock } from "../../provider/output/output-lock";

async function main(): Promise<void> {
    const [mode, a, b] = process.argv.slice(2);
    if (mode === "hold") {
        await withOutputLock([a], b, () => {
            process.stdout.write("held\n");
            return new Promise<void>(() => void setInterval(() => undefined, 60000)); // an open timer keeps the process alive
        }, () => process.stdout.write("waiting\n"));
        return;
    }
    const handler = handlerFor(a);
    const { inputs, failures } = await handler.check({}, JSON.parse(b));
    if (failures?.length) throw new Error(JSON.stringify(failures));
    const { outs } = await handler.create(inputs);
    process.stdout.write(`${JSON.stringify({ outs })}\n`);
}

main().catch((e) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
});

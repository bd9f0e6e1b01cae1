// Drives the real Pulumi engine (the CLI built by scripts/install-pulumi.sh) through the Automation
// API with inline programs, on a file backend in a temp dir with a fixed test passphrase.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { InlineProgramArgs, Stack } from "@pulumi/pulumi/automation";
import { openLocalStack } from "../../scripts/lib/local-engine";

export const TEST_PASSPHRASE = "pulumi-kairos-test-passphrase";

export interface EngineStackOptions {
    backendDir?: string;
    projectName?: string;
    stackName?: string;
    /** The project folder (relative input paths resolve against it). */
    workDir?: string;
    /** A state backend other than a file one in backendDir (e.g. s3://…). */
    backendUrl?: string;
    env?: Record<string, string>;
}

/** A stack on a local file backend; `dispose()` removes the backend unless a dir was given. */
export async function engineStack(program: InlineProgramArgs["program"], opts: EngineStackOptions = {}): Promise<EngineStack> {
    const ownsBackend = !opts.backendDir;
    const backendDir = opts.backendDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "kairos-backend-"));
    const stack = await openLocalStack(program, {
        backendDir,
        passphrase: TEST_PASSPHRASE,
        projectName: opts.projectName ?? "kairos-test",
        stackName: opts.stackName ?? "dev",
        workDir: opts.workDir,
        backendUrl: opts.backendUrl,
        env: opts.env,
    });
    return new EngineStack(stack, backendDir, ownsBackend);
}

export class EngineStack {
    constructor(readonly stack: Stack, readonly backendDir: string, private readonly ownsBackend: boolean) {}

    up(opts: { onOutput?: (line: string) => void } = {}) {
        return this.stack.up({ color: "never", ...opts });
    }
    preview() {
        return this.stack.preview({ color: "never", diff: true });
    }
    refresh() {
        return this.stack.refresh({ color: "never" });
    }
    destroy() {
        return this.stack.destroy({ color: "never" });
    }
    /** The raw state file text as the backend stores it. */
    async stateText(): Promise<string> {
        return JSON.stringify(await this.stack.exportStack());
    }
    /** The outputs the state holds for one resource (refresh updates these; stack outputs need an up). */
    async resourceOutputs(name: string): Promise<Record<string, any>> {
        const deployment = (await this.stack.exportStack()).deployment;
        const res = (deployment.resources ?? []).find((r: any) => String(r.urn).endsWith(`::${name}`) && r.custom);
        if (!res) throw new Error(`no resource named ${name} in the state`);
        return res.outputs;
    }
    async dispose(): Promise<void> {
        await this.stack.workspace.removeStack(this.stack.name, { force: true }).catch(() => undefined);
        if (this.ownsBackend) fs.rmSync(this.backendDir, { recursive: true, force: true });
    }
}

export { tempDir } from "./temp";

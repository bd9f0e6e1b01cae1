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
        return retryLostEngineLink(() => this.stack.up({ color: "never", ...opts }));
    }
    preview() {
        return retryLostEngineLink(() => this.stack.preview({ color: "never", diff: true }));
    }
    /** A preview's steps other than "same", each as "op Type name" (e.g. "update ExtensionCatalog extensions"), sorted. */
    async previewSteps(): Promise<{ steps: string[]; stdout: string }> {
        let steps: string[] = [];
        const result = await retryLostEngineLink(() => {
            steps = [];
            return this.stack.preview({
                color: "never", diff: true,
                onEvent: (e) => {
                    const m = e.resourcePreEvent?.metadata;
                    if (m && m.op !== "same" && m.type !== "pulumi:pulumi:Stack") steps.push(`${m.op} ${m.type.split(":").pop()} ${m.urn.split("::").pop()}`);
                },
            });
        });
        return { steps: steps.sort(), stdout: result.stdout };
    }
    /** The stack's outputs, values only. */
    async outputValues(): Promise<Record<string, any>> {
        return Object.fromEntries(Object.entries(await this.stack.outputs()).map(([k, v]) => [k, v.value]));
    }
    refresh() {
        return retryLostEngineLink(() => this.stack.refresh({ color: "never" }));
    }
    destroy() {
        return retryLostEngineLink(() => this.stack.destroy({ color: "never" }));
    }
    /** The raw state file text as the backend stores it. */
    async stateText(): Promise<string> {
        return JSON.stringify(await this.stack.exportStack());
    }
    /** The outputs the state holds for one resource (refresh updates these; stack outputs need an up); `type` (e.g. "SysextRelease") picks among same-named ones. */
    async resourceOutputs(name: string, type?: string): Promise<Record<string, any>> {
        const deployment = (await this.stack.exportStack()).deployment;
        const res = (deployment.resources ?? []).find((r: any) => String(r.urn).endsWith(`::${name}`) && r.custom && (!type || String(r.type).endsWith(`:${type}`)));
        if (!res) throw new Error(`no resource named ${name} in the state`);
        return res.outputs;
    }
    async dispose(): Promise<void> {
        await this.stack.workspace.removeStack(this.stack.name, { force: true }).catch(() => undefined);
        if (this.ownsBackend) fs.rmSync(this.backendDir, { recursive: true, force: true });
    }
}

/**
 * The inline program's gRPC channel to the engine can fail before the program registers anything:
 * grpc-js answers the first call with `14 UNAVAILABLE: No connection established. Last error: null`
 * (seen once in ~700 engine runs in CI, 1 s into an `up` on a loaded machine). That is the transport
 * between the test process and the Pulumi CLI, not our providers, so an operation that failed with
 * exactly that and nothing else is run once more; any other failure, or that one twice, is the test's.
 */
export async function retryLostEngineLink<T>(operation: () => Promise<T>): Promise<T> {
    try {
        return await operation();
    } catch (e) {
        if (!isLostEngineLink(e)) throw e;
        console.log("      (the inline program lost its gRPC link to the engine before registering anything; running the operation once more)");
        return operation();
    }
}

export function isLostEngineLink(e: unknown): boolean {
    const text = String((e as Error)?.message ?? e);
    return /14 UNAVAILABLE: No connection established/.test(text) && /Resources:\s+1 errored/.test(text) && !/(created|updated|deleted|replaced)/.test(text.split("Resources:")[1] ?? "");
}

export { tempDir } from "./temp";

// Drives the real Pulumi engine (the CLI built by scripts/install-pulumi.sh) through the Automation
// API with inline programs, on a file backend in a temp dir with a fixed test passphrase.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { InlineProgramArgs, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";

const REPO = path.resolve(__dirname, "..", "..");
export const TEST_PASSPHRASE = "pulumi-kairos-test-passphrase";

export function pulumiBinDir(): string {
    const fromEnv = process.env.PULUMI_KAIROS_BIN;
    if (fromEnv) return fromEnv;
    const recorded = path.join(REPO, ".pulumi-bin");
    if (!fs.existsSync(recorded)) throw new Error("the Pulumi CLI is not set up: run `npm run setup` (or `npm test`, which does)");
    return fs.readFileSync(recorded, "utf8").trim();
}

/** Environment for the CLI and the plugins it starts (dynamic providers run in a child process). */
export function engineEnv(backendDir: string): Record<string, string> {
    const bin = pulumiBinDir();
    return {
        PULUMI_BACKEND_URL: `file://${backendDir}`,
        PULUMI_CONFIG_PASSPHRASE: TEST_PASSPHRASE,
        PULUMI_HOME: path.join(backendDir, ".pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_NODEJS_DYNAMIC_PROVIDER: path.join(REPO, "node_modules", "@pulumi", "pulumi", "cmd", "dynamic-provider"),
        PATH: `${bin}:${process.env.PATH}`,
    };
}

export interface EngineStackOptions {
    backendDir?: string;
    projectName?: string;
    stackName?: string;
}

/** A stack on a local file backend; `dispose()` removes the backend unless a dir was given. */
export async function engineStack(program: InlineProgramArgs["program"], opts: EngineStackOptions = {}): Promise<EngineStack> {
    const ownsBackend = !opts.backendDir;
    const backendDir = opts.backendDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "kairos-backend-"));
    const envVars = engineEnv(backendDir);
    const projectName = opts.projectName ?? "kairos-test";
    const pulumiCommand = await PulumiCommand.get({ root: path.dirname(pulumiBinDir()) });
    const stack = await LocalWorkspace.createOrSelectStack(
        { projectName, stackName: opts.stackName ?? "dev", program },
        {
            pulumiCommand,
            envVars,
            projectSettings: { name: projectName, runtime: "nodejs", backend: { url: envVars.PULUMI_BACKEND_URL } },
        },
    );
    return new EngineStack(stack, backendDir, ownsBackend);
}

export class EngineStack {
    constructor(readonly stack: Stack, readonly backendDir: string, private readonly ownsBackend: boolean) {}

    up() {
        return this.stack.up({ color: "never" });
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
    async dispose(): Promise<void> {
        await this.stack.workspace.removeStack(this.stack.name, { force: true }).catch(() => undefined);
        if (this.ownsBackend) fs.rmSync(this.backendDir, { recursive: true, force: true });
    }
}

export function tempDir(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `kairos-${prefix}-`));
}

// The local Pulumi engine as this repo sets it up: the CLI built by scripts/install-pulumi.sh, a file
// backend, and the Automation API with inline programs (the Node language host is not available as a
// Go module, so `pulumi up` in a project folder is not how the demo and the tests run it).
import * as fs from "fs";
import * as path from "path";
import { InlineProgramArgs, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { HANDLERS_MODULE_ENV } from "../../provider/dynamic-transport";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");

export function pulumiBinDir(): string {
    const fromEnv = process.env.PULUMI_KAIROS_BIN;
    if (fromEnv) return fromEnv;
    const recorded = path.join(REPO_ROOT, ".pulumi-bin");
    if (!fs.existsSync(recorded)) throw new Error("the Pulumi CLI is not set up: run `npm run setup` (npm test and npm run demo do)");
    return fs.readFileSync(recorded, "utf8").trim();
}

/** Environment for the CLI and the plugins it starts (dynamic providers run in a child process). */
export function engineEnv(backendDir: string, passphrase: string): Record<string, string> {
    return {
        PULUMI_BACKEND_URL: `file://${backendDir}`,
        PULUMI_CONFIG_PASSPHRASE: passphrase,
        PULUMI_HOME: path.join(backendDir, ".pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_NODEJS_DYNAMIC_PROVIDER: path.join(REPO_ROOT, "node_modules", "@pulumi", "pulumi", "cmd", "dynamic-provider"),
        // The providers run this checkout's source, not an installed pulumi-kairos (dynamic-transport.ts).
        [HANDLERS_MODULE_ENV]: process.env[HANDLERS_MODULE_ENV] ?? providerHandlersModule(),
        PATH: `${pulumiBinDir()}:${process.env.PATH}`,
    };
}

/**
 * The handler module the provider processes load: this checkout's compiled JavaScript (`npm run build`)
 * when it is newer than every provider source file, else the TypeScript source through ts-node, which
 * costs every provider process about 6 s of transpiling (scripts/run-tests.sh builds first).
 */
export function providerHandlersModule(): string {
    return compiledIfFresh("provider/handlers.ts", ["provider"]);
}

/**
 * The compiled twin (bin/…/.js) of a source file of this checkout when it is newer than every .ts file
 * under `sourceDirs` (what it is compiled from), else the source itself. A program process that loads
 * the package (e.g. each kill-test driver) skips about 4 s of ts-node transpiling this way.
 */
export function compiledIfFresh(sourceRel: string, sourceDirs: string[]): string {
    const source = path.join(REPO_ROOT, sourceRel);
    const compiled = path.join(REPO_ROOT, "bin", sourceRel.replace(/\.ts$/, ".js"));
    const builtAt = mtimeIfExists(compiled);
    if (builtAt === undefined) return source;
    const sources = [sourceRel, ...sourceDirs.flatMap((dir) =>
        fs.readdirSync(path.join(REPO_ROOT, dir), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts")).map((f) => path.join(dir, f)))];
    const newest = Math.max(...sources.map((f) => mtimeIfExists(path.join(REPO_ROOT, f)) ?? Infinity));
    return newest < builtAt ? compiled : source;
}

function mtimeIfExists(file: string): number | undefined {
    try {
        return fs.statSync(file).mtimeMs;
    } catch {
        return undefined;
    }
}

export interface LocalStackOptions {
    backendDir: string;
    passphrase: string;
    projectName: string;
    stackName: string;
    /**
     * The project folder: the dynamic providers' working directory, which relative paths in resource
     * inputs resolve against. A stable one keeps those paths meaning the same on every run (the
     * Automation API's default is a fresh temp dir). @default <backendDir>/workspace/<projectName>
     */
    workDir?: string;
    /** Another state backend (e.g. s3://…); backendDir then only holds PULUMI_HOME. @default file://<backendDir> */
    backendUrl?: string;
    /** More environment for the CLI and the providers (e.g. the S3 credentials). */
    env?: Record<string, string>;
}

export async function openLocalStack(program: InlineProgramArgs["program"], o: LocalStackOptions): Promise<Stack> {
    fs.mkdirSync(o.backendDir, { recursive: true });
    const workDir = o.workDir ?? path.join(o.backendDir, "workspace", o.projectName);
    fs.mkdirSync(workDir, { recursive: true });
    const envVars = { ...engineEnv(o.backendDir, o.passphrase), ...o.env, ...(o.backendUrl ? { PULUMI_BACKEND_URL: o.backendUrl } : {}) };
    const pulumiCommand = await PulumiCommand.get({ root: path.dirname(pulumiBinDir()) });
    return LocalWorkspace.createOrSelectStack(
        { projectName: o.projectName, stackName: o.stackName, program },
        {
            pulumiCommand,
            envVars,
            workDir,
            projectSettings: { name: o.projectName, runtime: "nodejs", backend: { url: envVars.PULUMI_BACKEND_URL } },
        },
    );
}

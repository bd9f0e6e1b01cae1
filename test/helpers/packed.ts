// This checkout as a user gets it: `npm pack` (once per test process) and `npm install` of that
// tarball into a folder outside the repository.
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { sha256File } from "../../provider/toolkit/files";
import { pulumiBinDir } from "../../scripts/lib/local-engine";
import { tempDir } from "./temp";

export const REPO = path.resolve(__dirname, "..", "..");
/** The @pulumi/pulumi version this repo develops and tests with (the peer range's floor). */
export const SDK_VERSION: string = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")).devDependencies["@pulumi/pulumi"];

/** A user's project: program.js (keys, an extension, UKI, ISO) and stack.js, its Automation API driver. */
export const CONSUMER_TEMPLATE = path.join(REPO, "test", "package", "consumer");

let packed: Promise<string> | undefined;

/** `npm pack` of this checkout (prepack builds bin/ first); the tarball's path. */
export function packedTarball(): Promise<string> {
    packed ??= (async () => {
        const dest = tempDir("pack");
        const { stdout } = await run(["npm", "pack", "--json", "--pack-destination", dest], { cwd: REPO, timeoutMs: 300000 });
        const [info] = JSON.parse(stdout.slice(stdout.indexOf("[")));
        return path.join(dest, info.filename);
    })();
    return packed;
}

/** Writes a package.json depending on `tarball` and @pulumi/pulumi, and runs `npm install` in `dir`. */
export async function installTarball(dir: string, tarball: string, name = "kairos-consumer"): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
        path.join(dir, "package.json"),
        JSON.stringify({ name, private: true, dependencies: { "@pulumi/pulumi": SDK_VERSION, "pulumi-kairos": `file:${tarball}` } }, null, 2),
    );
    await npmInstall(dir);
}

/** sha256 of each of `files` (relative to `dir`), by name: artifacts must come out byte-identical. */
export async function fileDigests(dir: string, files: string[]): Promise<Record<string, string>> {
    return Object.fromEntries(await Promise.all(files.map(async (f) => [f, await sha256File(path.join(dir, f))] as const)));
}

export function npmInstall(dir: string, ...packages: string[]) {
    return run(["npm", "install", "--no-audit", "--no-fund", "--prefer-offline", ...packages], { cwd: dir, timeoutMs: 600000 });
}

/** Runs `node stack.js <operation>` in a consumer project, with nothing from this checkout in its environment. */
export async function stackOp(dir: string, operation: "up" | "preview" | "refresh" | "destroy" | "export"): Promise<any> {
    const env = { PULUMI_KAIROS_BIN: pulumiBinDir(), PULUMI_KAIROS_HANDLERS: undefined, PULUMI_NODEJS_DYNAMIC_PROVIDER: undefined, NODE_OPTIONS: undefined };
    const { stdout } = await run(["node", "stack.js", operation], { cwd: dir, env, timeoutMs: 900000 });
    return JSON.parse(stdout.trim().split("\n").pop()!);
}

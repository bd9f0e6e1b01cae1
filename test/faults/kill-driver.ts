// One Pulumi operation on the kill tests' stack, in a process of its own: `kill-driver.ts up|refresh`.
// An inline program runs inside the process that calls the Automation API, and after a provider was
// killed its unfinished run stays there (its listeners and pending promises); a later up in the same
// process was seen registering no resources at all, so the engine deleted all five of them. A fresh process per
// operation keeps each run on its own. What to build comes from the environment:
//   KAIROS_KILL_BACKEND  the stack's file backend (test/helpers/engine.ts opens the same stack)
//   KAIROS_KILL_PROGRAM  "pipeline" (keys, extension, UKI, ISO, promoted copy) or "keys"
//   KAIROS_KILL_WORK     the folder the artifacts go to
//   KAIROS_KILL_SHARED   sources: genkey/, payload-N/, test-os.oci
//   KAIROS_KILL_PAYLOAD, KAIROS_KILL_CMDLINE, KAIROS_KILL_ROTATION
import * as path from "path";
import { engineStack } from "../helpers/engine";
import { compiledIfFresh } from "../../scripts/lib/local-engine";

// The package as `npm run build` compiled it when that is fresh: this process starts some fifty times
// per run, and ts-node would transpile every provider source each time.
const { SigningKeys, SystemExtension, KairosUkiImage, BootMedia, PromotedArtifact }: typeof import("../../index") =
    require(compiledIfFresh("index.ts", ["provider", "constructs"]));

const env = (name: string): string => {
    const v = process.env[name];
    if (v === undefined) throw new Error(`${name} is not set`);
    return v;
};

export async function killProgram(): Promise<void> {
    const work = env("KAIROS_KILL_WORK");
    if (env("KAIROS_KILL_PROGRAM") === "keys") {
        new SigningKeys("keys", { name: "rotate", outputDir: path.join(work, "keys"), rotation: Number(env("KAIROS_KILL_ROTATION")) });
        return;
    }
    const shared = env("KAIROS_KILL_SHARED");
    // Imported keys with a fixed owner and time, so everything downstream is reproducible; dependsOn
    // orders the builds, so the fault points come in one order every run.
    const keys = new SigningKeys("keys", {
        name: "kill",
        outputDir: path.join(work, "keys"),
        import: { dir: path.join(shared, "genkey") },
        ownerGuid: "11111111-2222-3333-4444-555555555555",
        authTimestamp: "2026-01-01T00:00:00Z",
    });
    const ext = new SystemExtension("alpha", { name: "alpha", outputDir: path.join(work, "extensions"), source: { dir: path.join(shared, env("KAIROS_KILL_PAYLOAD")) }, signingKeys: keys });
    const uki = new KairosUkiImage("os", { outputDir: path.join(work, "uki"), source: { ociLayout: path.join(shared, "test-os.oci") }, signingKeys: keys, extendCmdline: env("KAIROS_KILL_CMDLINE") }, { dependsOn: [ext] });
    const iso = new BootMedia("iso", { name: "kairos", outputDir: path.join(work, "media"), ukiImage: uki, signingKeys: keys, extensions: [ext], secureBootEnroll: "force" });
    new PromotedArtifact("prod-alpha", { source: ext.path, expectedSha256: ext.sha256, outputDir: path.join(work, "prod"), kind: "sysext" }, { dependsOn: [iso] });
}

async function main(): Promise<void> {
    const op = process.argv[2];
    const stack = await engineStack(killProgram, { backendDir: env("KAIROS_KILL_BACKEND") });
    const result = op === "up" ? await stack.up() : op === "refresh" ? await stack.refresh() : undefined;
    if (!result) throw new Error(`unknown operation ${op}`);
    process.stdout.write(`${JSON.stringify(result.summary.resourceChanges ?? {})}\n`);
}

if (require.main === module) {
    main().catch((e) => {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exit(1);
    });
}

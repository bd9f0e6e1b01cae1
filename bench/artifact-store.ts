// Benchmark (issue 13): the artifact store on this machine, against a real S3 server (SeaweedFS, started
// here on 127.0.0.1):
//   1. the server: the cached build check, and the time until it answers a signed request;
//   2. a 100 MB artifact (random bytes): upload and verified download through the store, vs copying and
//      hashing the same file on the local disk;
//   3. the demo stack (examples/offline-demo: keys, k3s sysext, confext, the systemd test OS as a UKI, the
//      ISO) with Pulumi state in the same server: runner A builds and publishes; runner B, an empty folder
//      whose only local files are the program's sources and the private keys a CI secret store hands it,
//      runs the same `up` and fetches.
// Usage: npx ts-node --transpile-only bench/artifact-store.ts [RUNS]
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../provider/toolkit/run";
import { ArtifactStore } from "../provider/store/artifact-store";
import { sha256File } from "../provider/toolkit/files";
import { openLocalStack } from "../scripts/lib/local-engine";
import { buildSystemdTestOsRootfs } from "../scripts/lib/systemd-test-os";
import { startDockerfileServices } from "../scripts/lib/buildkit";
import { startS3Server } from "../test/helpers/s3-server";
import { demoProgram } from "../examples/offline-demo/index";
import { median, timed } from "./timing";

const MB = 1e6;
const ARTIFACT_BYTES = 100 * MB;
const PRIVATE_KEYS = ["PK.key", "KEK.key", "db.key", "tpm2-pcr-private.pem"];

export interface StoreBenchResult {
    cachedBuildCheckSeconds: number;
    serverStartSeconds: number;
    uploadSeconds: number;
    downloadSeconds: number;
    localCopySeconds: number;
    demo: { buildSeconds: number; fetchSeconds: number; fetched: string[]; built: string[]; identical: boolean };
}

export async function artifactStoreBench(runs: number): Promise<StoreBenchResult> {
    const repo = path.resolve(__dirname, "..");
    const cachedBuildCheckSeconds = await timed(() => run(["bash", path.join(repo, "scripts/build-seaweedfs.sh")]));
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-store-"));
    let s3: Awaited<ReturnType<typeof startS3Server>> | undefined;
    const savedEnv = { ...process.env };
    try {
        const started = process.hrtime.bigint();
        s3 = await startS3Server({ buckets: ["bench", "state", "demo"] });
        const serverStartSeconds = Number(process.hrtime.bigint() - started) / 1e9;
        Object.assign(process.env, s3.env());

        // 2. 100 MB through the store; a new digest each run, so every upload really uploads.
        const up: number[] = [];
        const down: number[] = [];
        const local: number[] = [];
        const store = new ArtifactStore({ bucket: "bench", endpoint: s3.endpoint });
        for (let i = 0; i < runs; i++) {
            const file = path.join(work, `artifact-${i}.bin`);
            fs.writeFileSync(file, crypto.randomBytes(ARTIFACT_BYTES));
            const sha = await sha256File(file);
            up.push(await timed(() => store.putBlob(file, sha, ARTIFACT_BYTES)));
            down.push(await timed(() => store.getBlob(sha, ARTIFACT_BYTES, path.join(work, "back.bin"))));
            local.push(await timed(async () => {
                fs.copyFileSync(file, path.join(work, "copy.bin"));
                await sha256File(path.join(work, "copy.bin"));
            }));
            for (const f of [file, path.join(work, "back.bin"), path.join(work, "copy.bin")]) fs.rmSync(f, { force: true });
        }

        // 3. The demo stack on two runners.
        const testOs = path.join(work, "test-os");
        await buildSystemdTestOsRootfs(testOs);
        const runner = async (name: string) => {
            const dir = path.join(work, `runner-${name}`);
            fs.mkdirSync(dir);
            await run(["cp", "-a", testOs, path.join(dir, "test-os")]);
            // The project folder is the runner's: the payloads are written and their relative paths resolve there.
            const stack = await openLocalStack(demoProgram("out", "test-os", dir), {
                backendDir: path.join(work, `home-${name}`), passphrase: "bench", projectName: "kairos-demo-bench", stackName: "ci",
                // No initrd cache: runner A's number is a build from scratch, as on an empty CI runner.
                workDir: dir, backendUrl: s3!.pulumiBackendUrl("state"), env: { ...s3!.env(), PULUMI_KAIROS_INITRD_CACHE_MB: "0" },
            });
            await stack.setConfig("kairos:artifactStore.bucket", { value: "demo" }, true);
            await stack.setConfig("kairos:artifactStore.endpoint", { value: s3!.endpoint }, true);
            return { dir, stack };
        };
        const actions = async (stack: Awaited<ReturnType<typeof runner>>["stack"]): Promise<string[]> => {
            const resources = (await stack.exportStack()).deployment.resources ?? [];
            return resources.filter((r: any) => r.outputs?.lastBuild).map((r: any): string => `${String(r.urn).split("::").pop()}:${r.outputs.lastBuild.action}`);
        };
        // Runner A builds the k3s extension's Dockerfile; runner B must fetch it, with no BuildKit at all.
        // Started before runner A's workspace, which takes this process's environment (PATH, BUILDKIT_HOST).
        const dockerfileServices = await startDockerfileServices({ exportHost: true });
        const a = await runner("A");
        const buildSeconds = await timed(() => a.stack.up({ color: "never" })).finally(() => dockerfileServices.stop());
        delete process.env.BUILDKIT_HOST;
        const b = await runner("B");
        // What a CI secret store hands runner B: the private keys, nothing else.
        fs.mkdirSync(path.join(b.dir, "out", "keys"), { recursive: true, mode: 0o700 });
        for (const k of PRIVATE_KEYS) fs.copyFileSync(path.join(a.dir, "out", "keys", k), path.join(b.dir, "out", "keys", k));
        const fetchSeconds = await timed(() => b.stack.up({ color: "never" }));
        const got = await actions(b.stack);
        const isoA = path.join(a.dir, "out", "media", "kairos-demo.iso");
        const identical = (await sha256File(isoA)) === (await sha256File(path.join(b.dir, "out", "media", "kairos-demo.iso")));
        return {
            cachedBuildCheckSeconds, serverStartSeconds,
            uploadSeconds: median(up), downloadSeconds: median(down), localCopySeconds: median(local),
            demo: { buildSeconds, fetchSeconds, fetched: got.filter((x) => x.endsWith(":fetched")), built: got.filter((x) => !x.endsWith(":fetched")), identical },
        };
    } finally {
        process.env = savedEnv;
        await s3?.stop();
        fs.rmSync(work, { recursive: true, force: true });
    }
}

if (require.main === module) {
    artifactStoreBench(Number(process.argv[2] ?? 3)).then((r) => {
        const rate = (s: number) => `${(ARTIFACT_BYTES / MB / s).toFixed(0)} MB/s`;
        console.log(`SeaweedFS: cached build check ${r.cachedBuildCheckSeconds.toFixed(2)} s; server answers after ${r.serverStartSeconds.toFixed(2)} s`);
        console.log(`100 MB artifact: upload ${r.uploadSeconds.toFixed(2)} s (${rate(r.uploadSeconds)}), verified download ${r.downloadSeconds.toFixed(2)} s (${rate(r.downloadSeconds)}); local copy + sha256 ${r.localCopySeconds.toFixed(2)} s (${rate(r.localCopySeconds)})`);
        console.log(`demo stack: runner A build + publish ${r.demo.buildSeconds.toFixed(1)} s; runner B fetch ${r.demo.fetchSeconds.toFixed(1)} s (${(r.demo.fetchSeconds / r.demo.buildSeconds).toFixed(2)}x); ISO identical: ${r.demo.identical}`);
        console.log(`  runner B: ${r.demo.fetched.length} fetched (${r.demo.fetched.join(", ")}); not fetched: ${r.demo.built.join(", ") || "none"}`);
    }, (e) => {
        console.error(e);
        process.exit(1);
    });
}

// The k3s extension from examples/k3s-sysext/Dockerfile through SystemExtension's dockerfile source,
// on real buildkitd daemons: a cold build (its RUN apt-get reaches Debian's archive) that exports its
// cache to the local registry, the same build again (BuildKit's cache), then a second runner — an empty
// buildkitd over mTLS, as a remote builder — without the cache and with it imported from the registry;
// last, a changed context (a new k3s binary) on the first runner.
// Each build is a fresh SystemExtension create (check + BuildKit + sysext), so the times are what an
// `up` that rebuilds the extension spends; the sysext bytes must be the same for the same context.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { systemExtensionHandler as handler } from "../provider/system-extension";
import { withLogSink } from "../provider/build-log";
import { k3sDockerfileBuild } from "../examples/offline-demo/payloads";
import { startBuildkitd, startDockerfileServices, Buildkitd } from "../scripts/lib/buildkit";
import { makeCertificate } from "../test/helpers/pki";

export interface DockerfileBuildRow {
    label: string;
    seconds: number;
    steps: number;
    cachedSteps: number;
    sha256: string;
}

export async function dockerfileBench(): Promise<DockerfileBuildRow[]> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-dockerfile-"));
    const services = await startDockerfileServices();
    const remotes: Buildkitd[] = [];
    try {
        const signing = await makeCertificate(work, "db");
        const spec = await k3sDockerfileBuild(path.join(work, "context"));
        const cache = `type=registry,ref=${services.registry}/cache/k3s-sysext:buildcache`;
        const rows: DockerfileBuildRow[] = [];
        const build = async (label: string, dockerfile: Record<string, unknown>) => {
            const said: string[] = [];
            const started = Date.now();
            const outs = await withLogSink({ info: (m) => said.push(m), progress: () => undefined }, async () => {
                const { inputs, failures } = await handler.check({}, { name: "k3s", outputDir: path.join(work, `out-${rows.length}`), source: { dockerfile: { ...spec, ...dockerfile } }, signing });
                if (failures?.length) throw new Error(JSON.stringify(failures));
                return (await handler.create(inputs)).outs;
            });
            const m = /: (\d+) steps, (\d+) from its cache/.exec(said.join("\n"));
            if (!m) throw new Error(`no BuildKit summary in: ${said.join("\n")}`);
            rows.push({ label, seconds: (Date.now() - started) / 1000, steps: Number(m[1]), cachedSteps: Number(m[2]), sha256: outs.sha256 });
        };
        const remote = async () => {
            const daemon = await startBuildkitd({ mtls: true, dockerHubMirror: services.registry });
            remotes.push(daemon);
            const { caCertificate, certificate, key } = daemon.mtls!;
            return { buildkitHost: daemon.address, tls: { caCertificate, certificate, key } };
        };
        await build("runner 1, cold (exports its cache to the registry)", { buildkitHost: services.buildkitd.address, cacheTo: [cache] });
        await build("runner 1 again: BuildKit's cache", { buildkitHost: services.buildkitd.address });
        await build("runner 2 (empty daemon, mTLS), no cache", await remote());
        await build("runner 2' (empty daemon, mTLS), cache from the registry", { ...(await remote()), cacheFrom: [cache] });
        if (new Set(rows.map((r) => r.sha256)).size !== 1) throw new Error(`the builds gave different extensions: ${rows.map((r) => r.sha256).join(", ")}`);
        // A new k3s binary in the context: BuildKit keeps the apt-get step, reruns COPY and the heredoc.
        fs.appendFileSync(path.join(spec.context, "k3s"), "\n");
        await build("runner 1, a new k3s binary in the context", { buildkitHost: services.buildkitd.address });
        if (rows[rows.length - 1].sha256 === rows[0].sha256) throw new Error("a new k3s binary gave the same extension");
        return rows;
    } finally {
        for (const r of remotes) await r.stop();
        await services.stop();
        fs.rmSync(work, { recursive: true, force: true });
    }
}

if (require.main === module) {
    dockerfileBench().then((rows) => {
        for (const r of rows) console.log(`${r.label.padEnd(60)} ${r.seconds.toFixed(2).padStart(7)} s  ${r.cachedSteps}/${r.steps} steps cached`);
        console.log(`sysext sha256 (all builds): ${rows[0].sha256}`);
    }, (e) => {
        console.error(e);
        process.exit(1);
    });
}

// A Dockerfile built by BuildKit (`buildctl`, against a local or remote `buildkitd`) into an OCI image
// tarball, which the image path of extension-source.ts then reads like any other OCI layout. No Docker
// daemon is involved. Two steps, as for every source: a digest of what would be built (the context's
// tree, the Dockerfile, target, arguments, platform) that preview can compute, and the build itself.
import * as fs from "fs";
import * as path from "path";
import { canonicalJson, sha256File, sha256Hex } from "../files";
import { run, ToolFailedError } from "../run";
import { treeDigest } from "./tree-digest";

export interface DockerfileSpec {
    /** The build context folder. */
    context: string;
    /** The Dockerfile. @default `<context>/Dockerfile` */
    dockerfile?: string;
    /** The stage to build. @default the last stage */
    target?: string;
    /** `ARG` values (`--build-arg`). */
    buildArgs?: Record<string, string>;
    /** The BuildKit daemon. @default $BUILDKIT_HOST, else buildctl's own default (unix:///run/buildkit/buildkitd.sock) */
    buildkitHost?: string;
    /** Client certificate, key and the CA that signed the daemon's certificate (a tcp:// host with mTLS). */
    tls?: { caCertificate: string; certificate: string; key: string; serverName?: string };
    /** BuildKit cache sources (`--import-cache`, buildctl's syntax, e.g. `type=registry,ref=host/repo:cache`). */
    cacheFrom?: string[];
    /** BuildKit cache exports (`--export-cache`, e.g. `type=registry,ref=host/repo:cache,mode=max`). */
    cacheTo?: string[];
}

export function dockerfilePath(spec: DockerfileSpec): string {
    return spec.dockerfile ?? path.join(spec.context, "Dockerfile");
}

/** The daemon buildctl will be pointed at, for messages: the input, else BUILDKIT_HOST, else buildctl's default. */
export function buildkitHost(spec: DockerfileSpec): string {
    return spec.buildkitHost ?? process.env.BUILDKIT_HOST ?? "unix:///run/buildkit/buildkitd.sock";
}

/**
 * What the build is made of. Where it runs (host, certificates) and the caches are not part of it: a
 * build elsewhere, cached or not, gives the same image. Base images named by tag are not resolved
 * here; pin them by digest (`FROM name@sha256:…`) to make a moved base a change.
 */
export async function dockerfileDigest(spec: DockerfileSpec, platform: string): Promise<string> {
    return sha256Hex(canonicalJson({
        context: await treeDigest(spec.context, { cache: true }),
        dockerfile: await sha256File(dockerfilePath(spec)),
        target: spec.target ?? null,
        buildArgs: spec.buildArgs ?? {},
        platform,
    }));
}

export interface DockerfileBuildResult {
    /** The OCI image tarball BuildKit wrote. */
    ociArchive: string;
    /** Build steps BuildKit ran, and how many of them its cache answered. */
    steps: number;
    cachedSteps: number;
    seconds: number;
}

export class DockerfileBuildError extends Error {
    readonly code = "DOCKERFILE_BUILD";
}

/**
 * Builds the Dockerfile into `<workDir>/buildkit-image.tar`. SOURCE_DATE_EPOCH (as the build argument
 * BuildKit reads) and `rewrite-timestamp` clamp every timestamp in the layers and the config, so the
 * same context gives the same layer digests on any daemon, cached or not.
 */
export async function buildDockerfile(spec: DockerfileSpec, o: { platform: string; sourceDateEpoch: number; workDir: string }): Promise<DockerfileBuildResult> {
    const ociArchive = path.join(o.workDir, "buildkit-image.tar");
    const dockerfile = path.resolve(dockerfilePath(spec));
    const argv = ["buildctl", ...connectionArgs(spec), "build", "--progress=plain", "--frontend", "dockerfile.v0",
        "--local", `context=${path.resolve(spec.context)}`, "--local", `dockerfile=${path.dirname(dockerfile)}`,
        "--opt", `filename=${path.basename(dockerfile)}`, "--opt", `platform=${o.platform}`,
        "--opt", `build-arg:SOURCE_DATE_EPOCH=${o.sourceDateEpoch}`];
    if (spec.target) argv.push("--opt", `target=${spec.target}`);
    for (const [k, v] of Object.entries(spec.buildArgs ?? {}).sort(([a], [b]) => a.localeCompare(b))) argv.push("--opt", `build-arg:${k}=${v}`);
    for (const c of spec.cacheFrom ?? []) argv.push("--import-cache", c);
    for (const c of spec.cacheTo ?? []) argv.push("--export-cache", c);
    argv.push("--output", `type=oci,dest=${ociArchive},rewrite-timestamp=true`);
    const started = Date.now();
    let stderr: string;
    try {
        ({ stderr } = await run(argv, { env: { SOURCE_DATE_EPOCH: String(o.sourceDateEpoch) } }));
    } catch (e) {
        if (e instanceof ToolFailedError) throw buildkitFailure(spec, dockerfile, e);
        throw e;
    }
    if (!fs.existsSync(ociArchive)) throw new DockerfileBuildError(`buildctl finished but wrote no image to ${ociArchive}`);
    return { ociArchive, ...stepCounts(stderr), seconds: (Date.now() - started) / 1000 };
}

function connectionArgs(spec: DockerfileSpec): string[] {
    const args = spec.buildkitHost ? ["--addr", spec.buildkitHost] : [];
    const tls = spec.tls;
    if (tls) {
        args.push("--tlscacert", tls.caCertificate, "--tlscert", tls.certificate, "--tlskey", tls.key);
        const server = tls.serverName ?? hostOf(buildkitHost(spec));
        if (server) args.push("--tlsservername", server);
    }
    return args;
}

/** tcp://name:port -> name (the name the daemon's certificate must carry, by default). */
function hostOf(address: string): string | undefined {
    const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+)/.exec(address);
    return m?.[1].replace(/^\[|\]$/g, "");
}

/** `#5 [builder 2/4] RUN …` opens a step; `#5 CACHED` says the cache answered it. */
export function stepCounts(progress: string): { steps: number; cachedSteps: number } {
    const steps = new Set<string>();
    const cached = new Set<string>();
    for (const line of progress.split("\n")) {
        const m = /^#(\d+) (\[[^\]]*\d+\/\d+\]|CACHED$)/.exec(line.trim());
        if (!m) continue;
        if (m[2] === "CACHED") cached.add(m[1]);
        else steps.add(m[1]);
    }
    return { steps: steps.size, cachedSteps: [...cached].filter((s) => steps.has(s)).length };
}

const CONNECTION_FAILURE = /connection error|connection refused|connection reset|broken pipe|Unavailable|no such host|dial (?:tcp|unix)|transport: |context deadline exceeded|tls: |x509: |certificate/i;
/** How a daemon with mTLS turns a client away: an alert in the handshake, or (racing it) a closed connection. */
const TLS_REFUSAL = /tls: |x509: |certificate|broken pipe|connection reset|EOF/i;
/** A RUN step's process line carries its whole script (a heredoc: dozens of lines); the message keeps its start. */
const SHOWN_PROCESS_CHARS = 60;

/**
 * One message for a failed build, naming what the user must fix: the Dockerfile line for a parse
 * error, a failing RUN or a missing context file (BuildKit prints `Dockerfile:N` with an excerpt),
 * the daemon for one that cannot be reached or refuses the client certificate.
 */
export function buildkitFailure(spec: DockerfileSpec, dockerfile: string, e: ToolFailedError): DockerfileBuildError {
    const lines = e.stderr.split("\n").map((l) => l.trimEnd());
    const final = [...lines].reverse().find((l) => /^error: /.test(l))?.replace(/^error: (failed to solve: )?/, "") ?? lines.filter((l) => l.trim()).slice(-1)[0] ?? `exit status ${e.exitCode}`;
    const at = dockerfileLine(lines);
    const ranSteps = lines.some((l) => /^#\d+ \[/.test(l));
    if (!at && !ranSteps && CONNECTION_FAILURE.test(final)) {
        const host = buildkitHost(spec);
        const refused = !!spec.tls && TLS_REFUSAL.test(final);
        return new DockerfileBuildError(refused
            ? `BuildKit at ${host} refused the connection (TLS: check source.dockerfile.tls, the daemon's CA and a client certificate it trusts): ${final}`
            : `cannot reach BuildKit at ${host} (start buildkitd there, or set BUILDKIT_HOST or source.dockerfile.buildkitHost): ${final}`);
    }
    const shortened = final.replace(/process "((?:[^"\\]|\\.)*)"/, (whole, script: string) =>
        script.length > SHOWN_PROCESS_CHARS ? `process "${script.slice(0, SHOWN_PROCESS_CHARS).replace(/\\n/g, "; ")}…"` : whole);
    const parseLine = /dockerfile parse error on line (\d+)/i.exec(final)?.[1];
    const line = at ?? (parseLine ? Number(parseLine) : undefined);
    const where = line !== undefined ? `${dockerfile}:${line}` : dockerfile;
    const output = failedStepOutput(lines);
    return new DockerfileBuildError(`${where}: ${shortened}${output ? `\n  the step's last output:\n${output}` : ""}`);
}

/** BuildKit's `Dockerfile:N` (or `name.Dockerfile:N-M`) line that introduces the failing instruction's excerpt. */
function dockerfileLine(lines: string[]): number | undefined {
    for (const l of lines) {
        const m = /^[^\s#][^\s]*:(\d+)(?:-\d+)?$/.exec(l.trim());
        if (m && !/^(error|#)/.test(l)) return Number(m[1]);
    }
    return undefined;
}

const SHOWN_OUTPUT_LINES = 8;

/** The last lines the failing step printed (`#N 0.123 …` for the step that reports `#N ERROR:`). */
function failedStepOutput(lines: string[]): string {
    const failed = lines.map((l) => /^#(\d+) ERROR: /.exec(l)?.[1]).find((n) => n !== undefined);
    if (!failed) return "";
    const out = lines.filter((l) => new RegExp(`^#${failed} \\d+\\.\\d+ `).test(l)).map((l) => l.replace(/^#\d+ \d+\.\d+ /, ""));
    return out.slice(-SHOWN_OUTPUT_LINES).map((l) => `    ${l}`).join("\n");
}

// The registry client for releases: the oras CLI (v1.3.6 is what this repo builds and tests),
// through the one process runner. No hand-written HTTP: oras does the distribution protocol, the
// token dance and TLS.
//
// The binary: $PULUMI_KAIROS_ORAS when set, else `oras` on PATH.
//
// Credentials come ONLY from where oras 1.3.6 looks by itself (oras `internal/credential/store.go`
// → oras-go v2.7.0 `credentials.NewStoreFromDocker`): `$DOCKER_CONFIG/config.json`, else
// `~/.docker/config.json`, with its `auths` entries and `credsStore`/`credHelpers` credential
// helpers. oras reads no username/password environment variables, and we never pass `-u`/`-p`,
// `--identity-token` or `--registry-config`: an argument would end up in Pulumi state with the
// resource inputs. Basic credentials are sent to the registry or, for token auth, to the realm the
// registry's `WWW-Authenticate: Bearer` names, which returns the bearer token oras retries with.
//
// Connection options (RegistryAccess) map to oras flags: plainHttp → `--plain-http` (oras also
// uses plain HTTP for `localhost` by itself), caFile → `--ca-file` (trusted in place of the system
// roots; without it Go's system pool applies, which honours SSL_CERT_FILE/SSL_CERT_DIR), insecure
// → `--insecure` (TLS without certificate checks). Proxies follow Go's HTTPS_PROXY/NO_PROXY.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ToolFailedError, run } from "../run";

export interface RegistryAccess {
    /** Talk HTTP, not HTTPS (a registry on a trusted loopback or test network). */
    plainHttp?: boolean;
    /** PEM file with the CA that signed the registry's certificate. */
    caFile?: string;
    /** HTTPS without verifying the certificate (never for production). */
    insecure?: boolean;
}

export class RegistryError extends Error {
    readonly code = "REGISTRY_ERROR";
    constructor(
        message: string,
        readonly registry: string,
        readonly cause?: Error,
    ) {
        super(message);
    }
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const RUN_TIMEOUT_MS = 30 * 60 * 1000; // a large OS image over a slow link; a hung oras must still end

export function orasBinary(): string {
    return process.env.PULUMI_KAIROS_ORAS || "oras";
}

/** `host[:port]` of a reference (`registry.example.com/a/b:tag` → `registry.example.com`). */
export function registryOf(ref: string): string {
    return ref.split("/")[0];
}

/** The oras flags for one side of a command (`prefix` is `from-`/`to-` for `oras cp`). */
export function accessArgs(access: RegistryAccess = {}, prefix = ""): string[] {
    const args: string[] = [];
    if (access.plainHttp) args.push(`--${prefix}plain-http`);
    if (access.caFile) args.push(`--${prefix}ca-file`, access.caFile);
    if (access.insecure) args.push(`--${prefix}insecure`);
    return args;
}

async function oras(what: string, ref: string, args: string[]): Promise<string> {
    try {
        return (await run([orasBinary(), ...args], { timeoutMs: RUN_TIMEOUT_MS })).stdout;
    } catch (e) {
        throw explain(what, ref, e as Error);
    }
}

/** True when oras says the registry answered "not found" (tag, manifest, blob or repository missing). */
export function isNotFound(e: unknown): boolean {
    const stderr = e instanceof RegistryError ? (e.cause as ToolFailedError | undefined)?.stderr : e instanceof ToolFailedError ? e.stderr : undefined;
    return !!stderr && /^Error response from registry: .*: not found\s*$/m.test(stderr);
}

/** A failure, worded for someone who has to fix it: which registry, what kind of problem, what to check. */
function explain(what: string, ref: string, e: Error): Error {
    if (!(e instanceof ToolFailedError)) return e;
    const registry = registryOf(ref);
    const s = e.stderr;
    let hint = "";
    if (/unauthorized|authentication required|credential not found|\b401\b|denied|\b403\b|forbidden/i.test(s)) {
        hint = `the registry refused the credentials (or got none). oras reads them from ${dockerConfigPath()} (set DOCKER_CONFIG to use another folder): run \`oras login ${registry}\` or \`docker login ${registry}\``;
    } else if (/x509|certificate|tls:/i.test(s)) {
        hint = `TLS verification failed: give the registry's CA with caFile, or fix the server certificate`;
    } else if (/server gave HTTP response to HTTPS client/.test(s)) {
        hint = `the registry speaks plain HTTP: set plainHttp if that is intended`;
    } else if (/connection refused|no such host|i\/o timeout|network is unreachable|connection reset|EOF/i.test(s)) {
        hint = `the registry is unreachable`;
    }
    const msg = `${what} ${ref} failed at registry ${registry}${hint ? `: ${hint}` : ""}\n${e.message}`;
    return new RegistryError(msg, registry, e);
}

function dockerConfigPath(): string {
    return path.join(process.env.DOCKER_CONFIG || path.join(os.homedir(), ".docker"), "config.json");
}

/** The manifest digest `ref` (tag or digest reference) resolves to, or undefined when it does not exist. */
export async function resolveDigest(ref: string, access?: RegistryAccess): Promise<string | undefined> {
    try {
        const digest = (await oras("resolving", ref, ["resolve", ...accessArgs(access), ref])).trim();
        if (!DIGEST.test(digest)) throw new RegistryError(`resolving ${ref}: oras printed \`${digest}\`, not a sha256 digest`, registryOf(ref));
        return digest;
    } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
    }
}

/** The manifest bytes exactly as the registry serves them. */
export async function fetchManifest(ref: string, access?: RegistryAccess): Promise<Buffer> {
    return fetchToFile("fetching the manifest of", ref, ["manifest", "fetch", ...accessArgs(access)]);
}

/** One blob (`repo@sha256:…`), verified by oras against its digest. */
export async function fetchBlob(refAtDigest: string, access?: RegistryAccess): Promise<Buffer> {
    if (!/@sha256:[0-9a-f]{64}$/.test(refAtDigest)) throw new Error(`fetchBlob needs repo@sha256:<64 hex>, got \`${refAtDigest}\``);
    return fetchToFile("fetching the blob", refAtDigest, ["blob", "fetch", ...accessArgs(access)]);
}

/** oras writes to a file so binary content never passes through a string. */
async function fetchToFile(what: string, ref: string, args: string[]): Promise<Buffer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-oras-"));
    try {
        const out = path.join(dir, "content");
        await oras(what, ref, [...args, "--output", out, ref]);
        return fs.readFileSync(out);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * Pushes the manifest tagged `layoutTag` in an OCI layout (and its blobs) to `destRef`, byte for
 * byte; returns the digest after checking the registry resolves `destRef` to the layout's digest.
 */
export async function pushLayout(layoutDir: string, layoutTag: string, destRef: string, access?: RegistryAccess): Promise<string> {
    const expected = layoutDigest(layoutDir, layoutTag);
    await oras("pushing to", destRef, ["cp", "--no-tty", "--from-oci-layout", ...accessArgs(access, "to-"), `${layoutDir}:${layoutTag}`, destRef]);
    return verifyDigest(destRef, expected, access);
}

/**
 * Copies `src` (`repo@sha256:…`) to `destRef` (a tag or another repository) without re-encoding
 * anything, so the digest is preserved (promotion). Returns the digest after checking it.
 */
export async function copyByDigest(src: string, destRef: string, access?: RegistryAccess, destAccess: RegistryAccess | undefined = access): Promise<string> {
    const m = /@(sha256:[0-9a-f]{64})$/.exec(src);
    if (!m) throw new Error(`copyByDigest copies by digest: the source must be repo@sha256:<64 hex>, got \`${src}\``);
    await oras("copying to", destRef, ["cp", "--no-tty", ...accessArgs(access, "from-"), ...accessArgs(destAccess, "to-"), src, destRef]);
    return verifyDigest(destRef, m[1], destAccess);
}

/** Adds tags to an existing manifest (`repo@sha256:…`). */
export async function tagManifest(refAtDigest: string, tags: string[], access?: RegistryAccess): Promise<void> {
    await oras("tagging", refAtDigest, ["tag", ...accessArgs(access), refAtDigest, ...tags]);
}

/** Deletes a manifest by digest (only when a user asks: tags pointing at it disappear with it). */
export async function deleteManifest(refAtDigest: string, access?: RegistryAccess): Promise<void> {
    if (!/@sha256:[0-9a-f]{64}$/.test(refAtDigest)) throw new Error(`deleteManifest deletes by digest only, got \`${refAtDigest}\``);
    await oras("deleting", refAtDigest, ["manifest", "delete", "--force", ...accessArgs(access), refAtDigest]);
}

async function verifyDigest(ref: string, expected: string, access?: RegistryAccess): Promise<string> {
    const got = await resolveDigest(ref, access);
    if (got !== expected) {
        throw new RegistryError(`${ref} resolves to ${got ?? "nothing"} after the push, not ${expected}: the registry rewrote or lost the manifest`, registryOf(ref));
    }
    return got;
}

/** The digest `tag` names in a layout's index.json. */
export function layoutDigest(layoutDir: string, tag: string): string {
    const index = JSON.parse(fs.readFileSync(path.join(layoutDir, "index.json"), "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    const entry = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
    if (!entry) throw new Error(`OCI layout ${layoutDir} has no manifest tagged \`${tag}\``);
    return entry.digest;
}

// A BuildKit daemon for the tests and the demo: the buildkitd the set-up built (scripts/build-buildkit.sh,
// its folder in .buildkit-bin), with the OCI worker on Debian's runc and its state in a temp folder.
// It listens on a unix socket, or — as a "remote" builder — on loopback TCP with mTLS (a CA, a server
// certificate for 127.0.0.1 and a client certificate, made with openssl here). Docker Hub is out of
// reach, so docker.io is mirrored to a local registry holding the set-up's Debian base image
// (scripts/build-debian-base-image.sh): `FROM debian:bookworm` resolves there, as it would upstream.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { freePort, startRegistry } from "../../test/helpers/registry";

const REPO = path.resolve(__dirname, "..", "..");

/** Puts the set-up's buildctl/buildkitd first on PATH (a no-op without .buildkit-bin); returns their folder. */
export function useBuildkitFromSetup(): string | undefined {
    const marker = path.join(REPO, ".buildkit-bin");
    if (!fs.existsSync(marker)) return undefined;
    const dir = fs.readFileSync(marker, "utf8").trim();
    const parts = (process.env.PATH ?? "").split(path.delimiter);
    if (!parts.includes(dir)) process.env.PATH = [dir, ...parts].join(path.delimiter);
    return dir;
}

/** The set-up's Debian base image (an OCI layout, tag `bookworm`). */
export function debianBaseLayout(): string {
    const marker = path.join(REPO, ".debian-base-image");
    const layout = fs.existsSync(marker) ? fs.readFileSync(marker, "utf8").trim() : "";
    if (!layout || !fs.existsSync(path.join(layout, "index.json"))) throw new Error("no Debian base image: run `npm run setup` (scripts/build-debian-base-image.sh)");
    return layout;
}

export interface BuildkitMtls {
    caCertificate: string;
    /** The client's certificate and key (chained to caCertificate). */
    certificate: string;
    key: string;
    /** A client certificate from another CA, which the daemon must refuse. */
    strangerCertificate: string;
    strangerKey: string;
}

export interface Buildkitd {
    /** buildctl's --addr: unix:///…/buildkitd.sock, or tcp://127.0.0.1:PORT with `mtls`. */
    address: string;
    mtls?: BuildkitMtls;
    logFile: string;
    stop(): Promise<void>;
}

export interface BuildkitdOptions {
    /** Serve docker.io from this plain-HTTP registry (it holds library/debian:bookworm), which also takes caches. */
    dockerHubMirror?: string;
    /** Listen on loopback TCP with mTLS instead of a unix socket. */
    mtls?: true;
}

export async function startBuildkitd(opts: BuildkitdOptions = {}): Promise<Buildkitd> {
    useBuildkitFromSetup();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-buildkitd-"));
    const mtls = opts.mtls ? await makeMtls(path.join(dir, "pki")) : undefined;
    const address = mtls ? `tcp://127.0.0.1:${await freePort()}` : `unix://${path.join(dir, "buildkitd.sock")}`;
    const config = [
        `root = ${JSON.stringify(path.join(dir, "state"))}`,
        "[grpc]",
        `  address = [${JSON.stringify(address)}]`,
        ...(mtls ? ["  [grpc.tls]", `    cert = ${JSON.stringify(mtls.server.certificate)}`, `    key = ${JSON.stringify(mtls.server.key)}`, `    ca = ${JSON.stringify(mtls.caCertificate)}`] : []),
        "[worker.oci]",
        "  enabled = true",
        '  snapshotter = "overlayfs"',
        "[worker.containerd]",
        "  enabled = false",
        ...(opts.dockerHubMirror ? [
            '[registry."docker.io"]', `  mirrors = [${JSON.stringify(opts.dockerHubMirror)}]`,
            `[registry.${JSON.stringify(opts.dockerHubMirror)}]`, "  http = true", "  insecure = true",
        ] : []),
        "",
    ].join("\n");
    fs.writeFileSync(path.join(dir, "buildkitd.toml"), config);
    const logFile = path.join(dir, "buildkitd.log");
    const log = fs.openSync(logFile, "w");
    const child = spawn("buildkitd", ["--config", path.join(dir, "buildkitd.toml")], { stdio: ["ignore", log, log] });
    const clientArgs = mtls ? ["--tlscacert", mtls.caCertificate, "--tlscert", mtls.certificate, "--tlskey", mtls.key, "--tlsservername", "127.0.0.1"] : [];
    await waitForWorkers(address, clientArgs, child, logFile);
    return {
        address,
        mtls: mtls && { caCertificate: mtls.caCertificate, certificate: mtls.certificate, key: mtls.key, strangerCertificate: mtls.stranger.certificate, strangerKey: mtls.stranger.key },
        logFile,
        async stop() {
            if (child.exitCode === null && child.signalCode === null) {
                child.kill("SIGTERM");
                await new Promise((r) => child.once("exit", r));
            }
            fs.closeSync(log);
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}

async function waitForWorkers(address: string, clientArgs: string[], child: ChildProcess, logFile: string): Promise<void> {
    const deadline = Date.now() + 30000;
    let last = "";
    while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`buildkitd exited with ${child.exitCode}:\n${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
        try {
            const { stdout } = await run(["buildctl", "--addr", address, ...clientArgs, "debug", "workers"], { timeoutMs: 5000 });
            if (/\S+\s+\S+/.test(stdout.split("\n").slice(1).join("\n"))) return;
        } catch (e) {
            last = (e as Error).message;
        }
        await new Promise((r) => setTimeout(r, 200));
    }
    child.kill("SIGKILL");
    throw new Error(`buildkitd on ${address} had no worker within 30 s: ${last}\n${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
}

interface Pki {
    caCertificate: string;
    server: { certificate: string; key: string };
    certificate: string;
    key: string;
    stranger: { certificate: string; key: string };
}

/** A CA, the daemon's certificate for IP 127.0.0.1, a client certificate, and a self-signed stranger. */
async function makeMtls(dir: string): Promise<Pki> {
    fs.mkdirSync(dir, { recursive: true });
    const f = (n: string) => path.join(dir, n);
    const ssl = (args: string[]) => run(["openssl", ...args], { env: { OPENSSL_CONF: "/dev/null" } });
    const selfSigned = (name: string, cn: string, ext: string[]) =>
        ssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-subj", `/CN=${cn}/`, ...ext.flatMap((e) => ["-addext", e]), "-keyout", f(`${name}.key`), "-out", f(`${name}.pem`)]);
    const issued = async (name: string, cn: string, extensions: string) => {
        await ssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${cn}/`, "-keyout", f(`${name}.key`), "-out", f(`${name}.csr`)]);
        fs.writeFileSync(f(`${name}.ext`), extensions);
        await ssl(["x509", "-req", "-sha256", "-days", "2", "-in", f(`${name}.csr`), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-extfile", f(`${name}.ext`), "-out", f(`${name}.pem`)]);
    };
    await selfSigned("ca", "buildkit test CA", ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"]);
    await issued("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    await issued("client", "pulumi-kairos", "extendedKeyUsage=clientAuth\n");
    await selfSigned("stranger", "stranger", ["extendedKeyUsage=clientAuth"]);
    return {
        caCertificate: f("ca.pem"),
        server: { certificate: f("server.pem"), key: f("server.key") },
        certificate: f("client.pem"),
        key: f("client.key"),
        stranger: { certificate: f("stranger.pem"), key: f("stranger.key") },
    };
}

export interface DockerfileServices {
    /** The local registry: docker.io's mirror (library/debian:bookworm), and a place for caches. */
    registry: string;
    buildkitd: Buildkitd;
    stop(): Promise<void>;
}

/**
 * What a Dockerfile build needs on this machine: a registry holding the Debian base image as docker.io's
 * library/debian:bookworm, and a buildkitd that mirrors docker.io to it. `exportHost` also sets
 * BUILDKIT_HOST, which the providers (started later, by the engine) inherit.
 */
export async function startDockerfileServices(opts: { exportHost?: boolean } = {}): Promise<DockerfileServices> {
    const registry = await startRegistry();
    try {
        await registry.push(debianBaseLayout(), "bookworm", "library/debian:bookworm");
        const buildkitd = await startBuildkitd({ dockerHubMirror: registry.host });
        if (opts.exportHost) process.env.BUILDKIT_HOST = buildkitd.address;
        return {
            registry: registry.host,
            buildkitd,
            async stop() {
                await buildkitd.stop();
                await registry.stop();
            },
        };
    } catch (e) {
        await registry.stop();
        throw e;
    }
}

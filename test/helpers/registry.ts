// A real OCI registry for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1, started
// on a free port with its storage in a temp dir, and stopped after the tests. Optionally with TLS (a
// throwaway CA and a server certificate for IP 127.0.0.1, made with openssl) and htpasswd basic auth.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as net from "net";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "./engine";

export interface RegistryOptions {
    /** Serve HTTPS with a certificate from a fresh CA (`caFile`). */
    tls?: true;
    /** Require these basic credentials (htpasswd, bcrypt: distribution accepts no other hash). */
    htpasswd?: { user: string; password: string };
}

export interface TestRegistry {
    host: string; // 127.0.0.1:PORT
    /** The CA that signed the server certificate (with `tls`). */
    caFile?: string;
    stop(): Promise<void>;
    /** Pushes an OCI layout (dir:tag) to <host>/<repo>:<tag> with skopeo. */
    push(layoutDir: string, layoutTag: string, repoTag: string): Promise<void>;
    /**
     * Flips a byte in the middle of a stored blob, as a writer with access to the registry's storage
     * could: the registry then serves other bytes under the same digest (it does not re-check on reads).
     */
    corruptBlob(digest: string): void;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). */
export async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
        });
    });
}

/** Status of GET /v2/ (over HTTPS trusting `ca` when given). */
/** Each try is bounded: something else that grabbed the port and never answers must not hang the wait. */
function probe(host: string, ca?: string): Promise<number> {
    if (!ca) return fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status);
    return new Promise((resolve, reject) => {
        const req = https.get(`https://${host}/v2/`, { ca: fs.readFileSync(ca), timeout: 2000 }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.on("timeout", () => req.destroy(new Error("no answer within 2 s")));
    });
}

async function waitForRegistry(host: string, child: ChildProcess, logFile: string, ca?: string): Promise<void> {
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}:\n${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
        try {
            // 401: up, and asking for the credentials it was configured with
            if ([200, 401].includes(await probe(host, ca))) return;
        } catch {
            // not listening yet
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`docker-registry did not answer on ${host} within 15 s`);
}

/** A CA and a server certificate for IP 127.0.0.1 signed by it (openssl; not code under test). */
export async function makeServerPki(dir: string): Promise<{ caFile: string; cert: string; key: string }> {
    const ssl = (args: string[]) => run(["openssl", ...args], { env: { OPENSSL_CONF: "/dev/null" } });
    const f = (n: string) => path.join(dir, n);
    await ssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-subj", "/CN=test registry CA/", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", "-keyout", f("ca.key"), "-out", f("ca.crt")]);
    await ssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1/", "-keyout", f("server.key"), "-out", f("server.csr")]);
    fs.writeFileSync(f("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    await ssl(["x509", "-req", "-sha256", "-days", "2", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-extfile", f("server.ext"), "-out", f("server.crt")]);
    return { caFile: f("ca.crt"), cert: f("server.crt"), key: f("server.key") };
}

/**
 * An htpasswd line with a bcrypt hash. Python's crypt module (libxcrypt, `$2b$`) makes it: Debian's
 * python3 has it and nothing else here does bcrypt without apache2-utils. Cost 4 (rounds=16) keeps
 * each authenticated request cheap; distribution checks with golang.org/x/crypto/bcrypt.
 */
export async function htpasswdLine(user: string, password: string): Promise<string> {
    const py = "import crypt,sys,warnings; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))";
    const { stdout } = await run(["python3", "-W", "ignore::DeprecationWarning", "-c", py], { input: password });
    const hash = stdout.trim();
    if (!/^\$2[aby]\$04\$/.test(hash)) throw new Error(`python3 crypt did not make a bcrypt hash: ${hash}`);
    return `${user}:${hash}\n`;
}

/** A DOCKER_CONFIG folder whose config.json holds basic credentials for `host` (as `docker login` writes them). */
export function dockerConfigWith(host: string, user: string, password: string): string {
    const dir = tempDir("docker-config");
    const auth = Buffer.from(`${user}:${password}`).toString("base64");
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ auths: { [host]: { auth } } }), { mode: 0o600 });
    return dir;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
    const dir = tempDir("registry");
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const config = path.join(dir, "config.yml");
    const pki = opts.tls ? await makeServerPki(dir) : undefined;
    const extra: string[] = [];
    if (pki) extra.push("  tls:", `    certificate: ${pki.cert}`, `    key: ${pki.key}`);
    if (opts.htpasswd) {
        fs.writeFileSync(path.join(dir, "htpasswd"), await htpasswdLine(opts.htpasswd.user, opts.htpasswd.password));
        extra.push("auth:", "  htpasswd:", "    realm: test-registry", `    path: ${path.join(dir, "htpasswd")}`);
    }
    fs.writeFileSync(
        config,
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            `    rootdirectory: ${path.join(dir, "data")}`,
            "  delete:",
            "    enabled: true",
            "http:",
            `  addr: ${host}`,
            ...extra,
            "",
        ].join("\n"),
    );
    const logFile = path.join(dir, "registry.log");
    const log = fs.openSync(logFile, "w");
    const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", log, log] });
    await waitForRegistry(host, child, logFile, pki?.caFile);
    return {
        host,
        caFile: pki?.caFile,
        async stop() {
            if (child.exitCode === null) {
                child.kill("SIGTERM");
                await new Promise((r) => child.once("exit", r));
            }
            fs.closeSync(log);
            fs.rmSync(dir, { recursive: true, force: true });
        },
        async push(layoutDir, layoutTag, repoTag) {
            await run(["skopeo", "copy", "--dest-tls-verify=false", `oci:${layoutDir}:${layoutTag}`, `docker://${host}/${repoTag}`]);
        },
        corruptBlob(digest) {
            const hex = digest.replace(/^sha256:/, "");
            const file = path.join(dir, "data", "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
            const bytes = fs.readFileSync(file);
            bytes[Math.floor(bytes.length / 2)] ^= 0x01;
            fs.writeFileSync(file, bytes);
        },
    };
}

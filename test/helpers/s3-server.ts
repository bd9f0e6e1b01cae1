// A real S3 server for the tests: SeaweedFS's `weed mini` (master, volume server, filer and S3
// gateway in one process), built from Go modules by scripts/build-seaweedfs.sh into a cache outside the
// repo (its path is in .seaweedfs-bin, written by `npm run setup`). Each server listens on 127.0.0.1 only,
// on free ports, keeps its data in a temp dir, and checks SigV4 signatures against one static admin
// identity, so a wrong key is refused as on AWS. It also serves as a Pulumi state backend
// (pulumiBackendUrl).
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { CreateBucketCommand, ListBucketsCommand, S3Client, S3ClientConfig } from "@aws-sdk/client-s3";

export interface S3ServerOptions {
    /** Buckets to create once the server answers. */
    buckets?: string[];
    /** The weed binary; default: the path in <repo>/.seaweedfs-bin. */
    weedBin?: string;
    /** How long to wait for the S3 gateway to answer (ms); default 60000. */
    startTimeoutMs?: number;
}

export interface S3Server {
    /** http://127.0.0.1:PORT */
    endpoint: string;
    accessKeyId: string;
    secretAccessKey: string;
    region: "us-east-1";
    /** The server's temp folder: data, config and weed.log; removed by stop() (unless KEEP_TEST_DIRS=1). */
    dataDir: string;
    /** weed's combined stdout/stderr. */
    logFile: string;
    /** weed's process id (also its process group id). */
    pid: number;
    /** Kills the server (its whole process group) and removes dataDir. Safe to call twice. */
    stop(): Promise<void>;
    /** AWS_* variables for a child process (the Pulumi CLI, a provider) that talks to this server. */
    env(): Record<string, string>;
    /** A client for this server (path-style addressing, the static credentials); overrides win. */
    client(overrides?: Partial<S3ClientConfig>): S3Client;
    /** The Pulumi state backend URL for a bucket of this server (log in with env() set). */
    pulumiBackendUrl(bucket: string): string;
    /** The last bytes of weed's log, for error messages. */
    logTail(bytes?: number): string;
}

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const REGION = "us-east-1";

/** The cached weed binary (scripts/build-seaweedfs.sh, run by `npm run setup`). */
export function weedBinary(): string {
    const marker = path.join(REPO_ROOT, ".seaweedfs-bin");
    const bin = fs.existsSync(marker) ? fs.readFileSync(marker, "utf8").trim() : "";
    if (!bin || !fs.existsSync(bin)) {
        throw new Error(`the SeaweedFS binary is missing (${bin ? `${bin} named in .seaweedfs-bin does not exist` : "no .seaweedfs-bin at the repo root"}): run \`npm run setup\` (or \`bash scripts/build-seaweedfs.sh > .seaweedfs-bin\`)`);
    }
    return bin;
}

/** The lowest port Linux hands out as the source port of an outgoing connection. */
function ephemeralFloor(): number {
    try {
        return Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
    } catch {
        return 32768;
    }
}

function listenOn(port: number): Promise<net.Server | undefined> {
    return new Promise((resolve) => {
        const srv = net.createServer();
        srv.once("error", () => resolve(undefined));
        srv.listen(port, "127.0.0.1", () => resolve(srv));
    });
}

/**
 * `count` distinct free TCP ports on 127.0.0.1, below the ephemeral range: weed binds its ports one
 * after another while its services already dial each other, and an outgoing connection could take a
 * free port from the ephemeral range before weed binds it.
 */
async function freePorts(count: number): Promise<number[]> {
    const low = 10000;
    const high = ephemeralFloor();
    const held: net.Server[] = [];
    try {
        for (let tries = 0; held.length < count && tries < 1000; tries++) {
            const port = high - low > 1000 ? low + crypto.randomInt(high - low) : 0; // 0: any free port
            const srv = await listenOn(port);
            if (srv) held.push(srv);
        }
        if (held.length < count) throw new Error(`found only ${held.length} of ${count} free ports on 127.0.0.1`);
        return held.map((s) => (s.address() as net.AddressInfo).port);
    } finally {
        await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    }
}

// Each weed runs in its own process group, so neither Ctrl-C on mocha nor mocha's exit would reach a
// server a test forgot to stop (or one left by a failure): kill them, and remove their data, when this
// process ends.
const running = new Map<ChildProcess, string[]>(); // -> what to remove once it is dead
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

function killRunning(): void {
    for (const [child, leftovers] of running) {
        try {
            process.kill(-child.pid!, "SIGKILL");
        } catch {
            // already gone
        }
        for (const p of leftovers) {
            try {
                fs.rmSync(p, { recursive: true, force: true, maxRetries: 3 });
            } catch {
                // best effort
            }
        }
    }
}

function onStopSignal(signal: NodeJS.Signals): void {
    killRunning();
    // Without other listeners Node would have ended the process on this signal: do so.
    if (process.listenerCount(signal) === 1) {
        for (const sig of STOP_SIGNALS) process.removeListener(sig, onStopSignal);
        process.kill(process.pid, signal);
    }
}

function track(child: ChildProcess, leftovers: string[]): void {
    if (running.size === 0) {
        process.on("exit", killRunning);
        for (const sig of STOP_SIGNALS) process.on(sig, onStopSignal);
    }
    running.set(child, leftovers);
}

function untrack(child: ChildProcess): void {
    if (!running.delete(child) || running.size > 0) return;
    process.removeListener("exit", killRunning);
    for (const sig of STOP_SIGNALS) process.removeListener(sig, onStopSignal);
}

function readTail(file: string, bytes: number): string {
    try {
        const fd = fs.openSync(file, "r");
        try {
            const size = fs.fstatSync(fd).size;
            const len = Math.min(bytes, size);
            const buf = Buffer.alloc(len);
            fs.readSync(fd, buf, 0, len, size - len);
            return buf.toString("utf8");
        } finally {
            fs.closeSync(fd);
        }
    } catch {
        return "(no log)";
    }
}

export async function startS3Server(opts: S3ServerOptions = {}): Promise<S3Server> {
    const weed = opts.weedBin ?? weedBinary();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-s3-"));
    const logFile = path.join(dataDir, "weed.log");
    const accessKeyId = `KAIROS${crypto.randomBytes(7).toString("hex").toUpperCase()}`;
    const secretAccessKey = crypto.randomBytes(24).toString("base64url");
    // weed's identity file: one admin identity; without any identity weed accepts every request.
    const s3Config = path.join(dataDir, "s3.json");
    fs.writeFileSync(
        s3Config,
        JSON.stringify({ identities: [{ name: "admin", credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }], actions: ["Admin", "Read", "List", "Tagging", "Write"] }] }),
        { mode: 0o600 },
    );
    const data = path.join(dataDir, "data");
    fs.mkdirSync(data);

    // Every port explicit: weed otherwise puts each gRPC port at HTTP port + 10000, where another
    // server's port may be.
    const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc, admin, adminGrpc] = await freePorts(10);
    const endpoint = `http://127.0.0.1:${s3}`;
    const args = [
        "-logtostderr", // glog would otherwise also write weed.* files into /tmp
        // `weed mini`: master, volume server, filer, S3 gateway (and an admin server with a maintenance
        // worker, which cannot be turned off) in one process. `weed server -filer -s3` runs without the
        // admin part at the same memory, but its filer waits about 8 s after startup before it joins the
        // cluster, and every write waits for that (its object-write lock has no lock server until then).
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        `-dir=${data}`,
        `-master.port=${master}`,
        `-master.port.grpc=${masterGrpc}`,
        "-master.telemetry=false",
        // The least volume size mini picks itself; objects are stored in 4 MB chunks, so a bigger object
        // spans volumes (mini grows one volume at a time per bucket, up to free disk / this size).
        "-master.volumeSizeLimitMB=64",
        `-volume.port=${volume}`,
        `-volume.port.grpc=${volumeGrpc}`,
        `-filer.port=${filer}`,
        `-filer.port.grpc=${filerGrpc}`,
        `-filer.localSocket=${path.join(dataDir, "filer.sock")}`,
        `-s3.port=${s3}`,
        `-s3.port.grpc=${s3Grpc}`,
        `-s3.localSocket=${path.join(dataDir, "s3.sock")}`,
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        `-s3.config=${s3Config}`,
        // As on AWS: writing to a bucket that does not exist fails instead of creating it.
        "-s3.autoCreateBucket=false",
        "-webdav=false",
        "-admin.ui=false",
        `-admin.port=${admin}`,
        `-admin.port.grpc=${adminGrpc}`,
        "-admin.port.legacy=0",
    ];
    // weed registers its gRPC unix sockets under /tmp by port, and a killed weed leaves them.
    const grpcSockets = Object.entries({ master: masterGrpc, volume: volumeGrpc, filer: filerGrpc, s3: s3Grpc, admin: adminGrpc }).map(
        ([svc, port]) => `/tmp/seaweedfs-${svc}-grpc-${port}.sock`,
    );
    const log = fs.openSync(logFile, "w");
    const child = spawn(weed, args, {
        cwd: dataDir,
        detached: true, // its own process group, so stop() kills everything it started
        stdio: ["ignore", log, log],
        env: {
            ...process.env,
            // Caps weed's heap: after 100 MB up- and downloads its RSS was about 390 MB with this,
            // 690 MB without, and 170 MB with 256MiB (which also halved the upload speed).
            GOMEMLIMIT: process.env.GOMEMLIMIT ?? "512MiB",
        },
    });
    track(child, [...(process.env.KEEP_TEST_DIRS ? [] : [dataDir]), ...grpcSockets]);
    child.unref(); // a server a test forgot to stop must not keep mocha alive (the exit hook kills it)
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    let stopped = false;

    const clientFor = (overrides: Partial<S3ClientConfig> = {}) =>
        new S3Client({ endpoint, region: REGION, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, ...overrides });

    const server: S3Server = {
        endpoint,
        accessKeyId,
        secretAccessKey,
        region: REGION,
        dataDir,
        logFile,
        pid: child.pid!,
        async stop() {
            if (stopped) return;
            stopped = true;
            if (child.exitCode === null && child.signalCode === null) {
                // SIGKILL straight away: the data is thrown away, and weed's graceful shutdown takes
                // seconds (`weed server` took over 15 s).
                child.ref(); // so this process waits for the exit
                try {
                    process.kill(-child.pid!, "SIGKILL");
                } catch {
                    // already gone
                }
                await exited;
            }
            untrack(child);
            fs.closeSync(log);
            if (!process.env.KEEP_TEST_DIRS) fs.rmSync(dataDir, { recursive: true, force: true });
            for (const sock of grpcSockets) fs.rmSync(sock, { force: true });
        },
        env() {
            return {
                AWS_ACCESS_KEY_ID: accessKeyId,
                AWS_SECRET_ACCESS_KEY: secretAccessKey,
                AWS_REGION: REGION,
                AWS_DEFAULT_REGION: REGION,
                // Deliberately no AWS_ENDPOINT_URL_S3 (which the JS v3 and Go v2 SDKs, so also the Pulumi
                // CLI, honour when no endpoint is given): code under test must pass the endpoint itself.
            };
        },
        client: clientFor,
        pulumiBackendUrl(bucket: string) {
            // gocloud.dev v0.46 (AWS SDK for Go v2) in Pulumi 3.248: the endpoint needs its scheme, and
            // path-style addressing (else the SDK resolves <bucket>.127.0.0.1).
            return `s3://${bucket}?endpoint=${endpoint}&use_path_style=true&region=${REGION}`;
        },
        logTail(bytes = 4000) {
            return readTail(logFile, bytes);
        },
    };

    try {
        await waitForS3(server, child, opts.startTimeoutMs ?? 60000);
        const s3c = clientFor();
        try {
            for (const bucket of opts.buckets ?? []) await s3c.send(new CreateBucketCommand({ Bucket: bucket }));
        } finally {
            s3c.destroy();
        }
    } catch (err) {
        const tail = server.logTail();
        await server.stop();
        throw new Error(`SeaweedFS S3 server (${weed}) failed to start: ${(err as Error).message}\n--- weed log (tail) ---\n${tail}`);
    }
    return server;
}

/** Waits until a signed ListBuckets succeeds: the gateway is up and has loaded the identity file. */
async function waitForS3(server: S3Server, child: ChildProcess, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const probe = server.client({ maxAttempts: 1, requestHandler: { requestTimeout: 2000, connectionTimeout: 1000 } });
    let last = "no answer";
    try {
        while (Date.now() < deadline) {
            if (child.exitCode !== null || child.signalCode !== null) throw new Error(`weed exited (${child.exitCode ?? child.signalCode})`);
            try {
                await probe.send(new ListBucketsCommand({}));
                return;
            } catch (err) {
                last = `${(err as Error).name}: ${(err as Error).message}`;
            }
            await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`S3 did not answer a signed ListBuckets on ${server.endpoint} within ${timeoutMs / 1000} s (last: ${last})`);
    } finally {
        probe.destroy();
    }
}

// A real OCI registry for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1, started
// on a free port with its storage in a temp dir, and stopped after the tests.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "./engine";

export interface TestRegistry {
    host: string; // 127.0.0.1:PORT
    stop(): Promise<void>;
    /** Pushes an OCI layout (dir:tag) to <host>/<repo>:<tag> with skopeo. */
    push(layoutDir: string, layoutTag: string, repoTag: string): Promise<void>;
}

async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
        });
    });
}

async function waitForRegistry(host: string, child: ChildProcess, logFile: string): Promise<void> {
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}:\n${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
        try {
            const res = await fetch(`http://${host}/v2/`);
            if (res.status === 200) return;
        } catch {
            // not listening yet
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`docker-registry did not answer on ${host} within 15 s`);
}

export async function startRegistry(): Promise<TestRegistry> {
    const dir = tempDir("registry");
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const config = path.join(dir, "config.yml");
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
            "",
        ].join("\n"),
    );
    const logFile = path.join(dir, "registry.log");
    const log = fs.openSync(logFile, "w");
    const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", log, log] });
    await waitForRegistry(host, child, logFile);
    return {
        host,
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
    };
}

// A throwaway software TPM (swtpm) on free localhost TCP ports, for tools that want a TPM only as a
// calculator (systemd-measure 252 `sign` computes the policy digest in a trial session). swtpm runs as a
// daemon with a pid file, so run() starts it and stop() kills exactly that pid.
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { run } from "../../provider/toolkit/run";

export interface Swtpm {
    /** The data port, for `--tpm2-device=swtpm:host=127.0.0.1,port=<port>`. */
    port: number;
    device: string;
    stop(): void;
}

function portFree(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const srv = net.createServer();
        srv.once("error", () => resolve(false));
        srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
}

async function freePortPair(): Promise<number> {
    for (let i = 0; i < 50; i++) {
        const port = 20000 + 2 * Math.floor(Math.random() * 10000);
        if ((await portFree(port)) && (await portFree(port + 1))) return port;
    }
    throw new Error("no two free consecutive TCP ports for swtpm");
}

function connectable(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("connect", () => {
            s.destroy();
            resolve(true);
        });
        s.once("error", () => resolve(false));
    });
}

/** Starts swtpm (TPM 2.0, already initialised and started up) with its state in `dir`. */
export async function startSwtpm(dir: string): Promise<Swtpm> {
    fs.mkdirSync(dir, { recursive: true });
    const pidFile = path.join(dir, "swtpm.pid");
    for (let attempt = 0; ; attempt++) {
        const port = await freePortPair();
        try {
            await run([
                "swtpm", "socket", "--tpm2", "--daemon",
                "--server", `type=tcp,port=${port},bindaddr=127.0.0.1`,
                "--ctrl", `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
                "--tpmstate", `dir=${dir}`,
                "--pid", `file=${pidFile}`,
                "--flags", "not-need-init,startup-clear",
            ], { timeoutMs: 10000 });
        } catch (e) {
            if (attempt < 3) continue; // lost a race for the port
            throw e;
        }
        const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
        const stop = () => {
            try {
                process.kill(pid, "SIGTERM");
            } catch {
                /* already gone */
            }
        };
        for (let i = 0; i < 50 && !(await connectable(port)); i++) await new Promise((r) => setTimeout(r, 100));
        return { port, device: `swtpm:host=127.0.0.1,port=${port}`, stop };
    }
}

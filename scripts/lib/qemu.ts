// Boots a medium under QEMU (TCG, no KVM) with OVMF's SMM Secure Boot firmware and watches the serial
// port for the test OS's marker line. The command line is the one proven in the feasibility probe
// (shared/reference/probe-uki-iso-boot.md §5). Every run has a timeout; qemu is killed as soon as the
// marker line (or a Secure Boot refusal plus a short grace) has been seen, and swtpm always.
// This needs a streaming child process, so it uses spawn directly instead of toolkit/run.ts.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const OVMF_CODE_SECBOOT = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
export const OVMF_VARS_BLANK = "/usr/share/OVMF/OVMF_VARS_4M.fd";

export interface BootOptions {
    media: string;
    as: "cdrom" | "disk";
    /** A writable VARS file (see freshVars); enrolled keys persist in it between boots. */
    vars: string;
    /** Attach a software TPM 2.0 (swtpm, tpm-tis). */
    tpm?: boolean;
    /**
     * Keep the TPM's state in this folder (created if missing) instead of a throwaway one, so keys
     * it sealed in one boot (an enrolled disk) open in the next. Implies tpm.
     */
    tpmStateDir?: string;
    /** Writable virtio disks (raw images) attached after the medium: an installer's target. */
    disks?: string[];
    /** With as "disk": the medium itself takes the guest's writes (an installed disk), not a throwaway overlay. */
    writable?: boolean;
    timeoutMs: number;
    /** The word that starts the busybox test OS's report line ("MARKER sb=… pcr11=… cmdline=…"). */
    marker?: string;
    /**
     * A line that ends the run instead of the marker line (the systemd test OS's report end); the
     * boot counts as booted when it is seen. @default the marker line ends the run
     */
    endMarker?: string;
    /** Guest memory. @default 1024 */
    memoryMB?: number;
    /**
     * Virtual CPUs, each a host thread (multi-threaded TCG with more than one). On an idle 2-core host a
     * systemd test OS boot took the same with one or two (46 s and 48 s, medians of three); with the test
     * suite's lanes beside it, two guests of two each took twice as long as guests of one (the four
     * threads compete for two cores), so one is the default.
     * @default 1
     */
    cpus?: number;
    /** After "Access Denied", wait this long (for the log) before killing qemu. @default 3000 */
    refusalGraceMs?: number;
    /** Where to keep the serial log; default: a temp file that is removed. */
    logFile?: string;
    /** A NIC on an isolated user-mode network (see GuestNetwork). @default no NIC at all */
    network?: GuestNetwork;
    /** Files for the guest: name -> host file, read in the guest at /sys/firmware/qemu_fw_cfg/by_name/opt/org.pulumi-kairos/<name>/raw. */
    fwCfg?: Record<string, string>;
}

/**
 * QEMU user networking with restrict=on (the guest reaches nothing outside) on a virtio-net NIC, plus a
 * guestfwd per entry: a TCP connection to guest:port inside the guest is connected to host:port on the
 * host (e.g. 10.0.2.100:5000 -> 127.0.0.1:5000, the test registry). The guest's address is static
 * (10.0.2.15/24, systemd-networkd in the test OS).
 */
export interface GuestNetwork {
    forwards: Array<{ guestPort: number; hostPort: number; guestAddr?: string; hostAddr?: string }>;
}
/** The guest address a forward listens on unless it names another. */
export const GUEST_FORWARD_ADDR = "10.0.2.100";
/** The fw_cfg folder the test OS reads (usr/lib/kairos-test/steps copies every file to /run/kairos-test/). */
export const FW_CFG_PREFIX = "opt/org.pulumi-kairos/";

export function networkArgs(n: GuestNetwork): string[] {
    const fwd = n.forwards.map((f) => `,guestfwd=tcp:${f.guestAddr ?? GUEST_FORWARD_ADDR}:${f.guestPort}-tcp:${f.hostAddr ?? "127.0.0.1"}:${f.hostPort}`).join("");
    // romfile= : no iPXE option ROM, so the firmware neither loads nor tries to network-boot it.
    // addr: QEMU creates -device NICs before if=virtio drives, so an unpinned NIC would take the disk's
    // PCI slot (0x2): the firmware's saved boot entry for the installed disk would then name the NIC.
    return ["-netdev", `user,id=net0,restrict=on,net=10.0.2.0/24${fwd}`, "-device", "virtio-net-pci,netdev=net0,romfile=,addr=0x10"];
}

export function fwCfgArgs(files: Record<string, string>): string[] {
    return Object.entries(files).flatMap(([name, file]) => {
        if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new Error(`fw_cfg name "${name}": use lower-case letters, digits, ".", "_" and "-"`);
        if (file.includes(",")) throw new Error(`fw_cfg file "${file}": QEMU's option syntax cannot take a comma in a path`);
        return ["-fw_cfg", `name=${FW_CFG_PREFIX}${name},file=${file}`];
    });
}

export interface BootResult {
    booted: boolean;
    /** The marker line, from the marker to the end of the line. */
    markerLine?: string;
    /** Parsed fields of the marker line (sb, pcr11, cmdline). */
    fields?: { sb: string; pcr11: string; cmdline: string };
    /** The firmware or systemd-boot refused an image ("Access Denied" / "Security Violation"). */
    accessDenied: boolean;
    /** systemd-boot enrolled keys from loader/keys/auto ("Enrolling secure boot keys"). */
    enrolled: boolean;
    /** Wall time from qemu's start to the marker line (or to the end of the run). */
    seconds: number;
    timedOut: boolean;
    /** The serial output, carriage returns removed. */
    log: string;
}

/** A copy of the blank (setup mode) 4M VARS file. */
export function freshVars(dir: string, name = "OVMF_VARS.fd"): string {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, name);
    fs.copyFileSync(OVMF_VARS_BLANK, file);
    fs.chmodSync(file, 0o644);
    return file;
}

export function qemuArgs(o: {
    media: string; as: "cdrom" | "disk"; vars: string; tpmSocket?: string; memoryMB?: number; cpus?: number; disks?: string[]; writable?: boolean;
    network?: GuestNetwork; fwCfg?: Record<string, string>;
}): string[] {
    const cpus = o.cpus ?? 1;
    if (!Number.isInteger(cpus) || cpus < 1) throw new Error(`cpus must be a positive integer, got ${cpus}`);
    return [
        "-machine", "q35,smm=on",
        "-accel", `tcg,thread=${cpus > 1 ? "multi" : "single"}`,
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-global", "ICH9-LPC.disable_s3=1",
        "-drive", `if=pflash,format=raw,unit=0,file=${OVMF_CODE_SECBOOT},readonly=on`,
        "-drive", `if=pflash,format=raw,unit=1,file=${o.vars}`,
        "-m", String(o.memoryMB ?? 1024), "-smp", String(cpus),
        "-nographic", "-serial", "mon:stdio",
        "-no-user-config", "-nodefaults",
        // a raw disk / USB stick: writes go to a throwaway overlay, the medium is never changed (unless writable)
        ...(o.as === "cdrom" ? ["-cdrom", o.media] : ["-drive", `file=${o.media},format=raw,if=virtio${o.writable ? "" : ",snapshot=on"}`]),
        ...(o.disks ?? []).flatMap((d) => ["-drive", `file=${d},format=raw,if=virtio`]),
        ...(o.tpmSocket
            ? ["-chardev", `socket,id=chrtpm,path=${o.tpmSocket}`, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"]
            : []),
        ...(o.network ? networkArgs(o.network) : []),
        ...(o.fwCfg ? fwCfgArgs(o.fwCfg) : []),
    ];
}

const REFUSAL = /Access Denied|Security Violation/;
const ENROLL = "Enrolling secure boot keys";

export async function bootMedia(o: BootOptions): Promise<BootResult> {
    if (!(o.timeoutMs > 0)) throw new Error("bootMedia needs a timeout");
    if (!o.marker && !o.endMarker) throw new Error("bootMedia needs a marker or an endMarker to know when the guest is done");
    for (const f of [o.media, o.vars, OVMF_CODE_SECBOOT, ...(o.disks ?? []), ...Object.values(o.fwCfg ?? {})]) if (!fs.existsSync(f)) throw new Error(`${f} does not exist`);
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-qemu-"));
    let swtpm: ChildProcess | undefined;
    try {
        let tpmSocket: string | undefined;
        if (o.tpm || o.tpmStateDir) {
            tpmSocket = path.join(scratch, "swtpm.sock");
            const state = o.tpmStateDir ?? path.join(scratch, "tpm");
            fs.mkdirSync(state, { recursive: true });
            swtpm = spawn("swtpm", ["socket", "--tpm2", "--tpmstate", `dir=${state}`, "--ctrl", `type=unixio,path=${tpmSocket}`, "--flags", "not-need-init", "--terminate"], {
                stdio: ["ignore", "ignore", "pipe"],
            });
            let swtpmErr = "";
            swtpm.stderr!.on("data", (b: Buffer) => (swtpmErr += b.toString()));
            const deadline = Date.now() + 10000;
            while (!fs.existsSync(tpmSocket)) {
                if (swtpm.exitCode !== null || Date.now() > deadline) throw new Error(`swtpm did not start: ${swtpmErr}`);
                await new Promise((r) => setTimeout(r, 50));
            }
        }
        return await runQemu(o, qemuArgs({ media: o.media, as: o.as, vars: o.vars, tpmSocket, memoryMB: o.memoryMB, cpus: o.cpus, disks: o.disks, writable: o.writable, network: o.network, fwCfg: o.fwCfg }));
    } finally {
        if (swtpm && swtpm.exitCode === null && swtpm.signalCode === null) {
            swtpm.kill("SIGKILL");
            await new Promise((r) => swtpm!.once("close", r));
        }
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

function runQemu(o: BootOptions, args: string[]): Promise<BootResult> {
    return new Promise((resolve, reject) => {
        const start = Date.now();
        const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "pipe", "pipe"] });
        let log = "";
        let stderr = "";
        let markerLine: string | undefined;
        let markerAt: number | undefined;
        let accessDenied = false;
        let timedOut = false;
        let killTimer: NodeJS.Timeout | undefined;
        let ended = false;
        const kill = () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        };
        const timeout = setTimeout(() => {
            timedOut = !ended;
            kill();
        }, o.timeoutMs);
        const scan = () => {
            const marker = o.marker;
            if (marker && markerLine === undefined && log.includes(marker)) {
                const lines = log.split("\n");
                lines.pop(); // only complete lines
                const line = lines.find((l) => l.includes(marker) && /\bsb=/.test(l));
                if (line !== undefined) {
                    markerLine = line.slice(line.indexOf(marker)).replace(/\s+$/, "");
                }
            }
            if (!ended && (o.endMarker ? completeLineHas(log, o.endMarker) : markerLine !== undefined)) {
                ended = true;
                markerAt = Date.now();
                // the test OS powers off by itself; give it a moment, then make sure
                killTimer = setTimeout(kill, 5000);
            }
            if (!accessDenied && !ended && REFUSAL.test(log)) {
                accessDenied = true;
                killTimer = setTimeout(kill, o.refusalGraceMs ?? 3000);
            }
        };
        child.stdout!.on("data", (b: Buffer) => {
            log += b.toString("latin1").replace(/\r/g, "");
            if (o.logFile) fs.appendFileSync(o.logFile, b);
            scan();
        });
        child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
        child.on("error", (e) => {
            clearTimeout(timeout);
            if (killTimer) clearTimeout(killTimer);
            reject(e);
        });
        child.on("close", (code, signal) => {
            clearTimeout(timeout);
            if (killTimer) clearTimeout(killTimer);
            const end = markerAt ?? Date.now();
            if (!ended && !timedOut && !accessDenied && signal === null && code !== 0) {
                reject(new Error(`qemu exited with status ${code}: ${stderr.trim()}\n${log.slice(-2000)}`));
                return;
            }
            resolve({
                booted: ended,
                markerLine,
                fields: markerLine ? parseMarker(markerLine) : undefined,
                accessDenied,
                enrolled: log.includes(ENROLL),
                seconds: Math.round((end - start) / 100) / 10,
                timedOut,
                log: stderr ? `${log}\n[qemu stderr]\n${stderr}` : log,
            });
        });
    });
}

function completeLineHas(log: string, text: string): boolean {
    const at = log.indexOf(text);
    return at >= 0 && log.indexOf("\n", at) >= 0;
}

/** "MARKER sb=enabled pcr11=none cmdline=a b c" -> fields; cmdline is the rest of the line. */
export function parseMarker(line: string): { sb: string; pcr11: string; cmdline: string } {
    const m = line.match(/\bsb=(\S+)\s+pcr11=(\S+)\s+cmdline=(.*)$/);
    if (!m) throw new Error(`not a marker line: ${line}`);
    return { sb: m[1], pcr11: m[2], cmdline: m[3] };
}

// A virtual machine that keeps what a real one keeps between boots: its disk (a sparse raw image), the
// firmware's variable store (the Secure Boot keys systemd-boot enrolled) and its TPM's state (what
// the installer sealed). The demo and the installed-node test boot our ISO on it with the blank disk
// attached (the installer's target), then the disk alone.
import * as fs from "fs";
import * as path from "path";
import { BootResult, GUEST_FORWARD_ADDR, bootMedia, freshVars } from "./qemu";
import { SYSTEMD_REPORT_END, parseSystemdReport } from "./systemd-test-os";

export const NODE_DISK_BYTES = 2 * 1024 ** 3;

export type SystemdReport = NonNullable<ReturnType<typeof parseSystemdReport>>;

export interface NodeBoot {
    boot: BootResult;
    /** Undefined when the guest sent none (see the serial log). */
    report?: SystemdReport;
    logFile: string;
}

export interface NodeBootOptions {
    /** Boot this ISO as a CD-ROM with the disk attached (the live medium); without it, the disk alone. */
    iso?: string;
    timeoutMs: number;
    /**
     * Shell steps the installed guest runs as root after its boot stage, each into the report as section
     * "step <n>" ("$ CMD", its output, "exit=RC"). A step `reboot` ends the list: the report says
     * reboot-requested=yes and the guest powers off; boot the node again for the next boot.
     */
    steps?: string[];
    /** Registries (127.0.0.1:PORT) the guest may reach: a restricted user network with a guestfwd to each. */
    registries?: string[];
    /** More fw_cfg files: name -> text (the guest copies them to /run/kairos-test/<name>). */
    files?: Record<string, string>;
}

export class VirtualNode {
    readonly disk: string;
    readonly vars: string;
    readonly tpmState: string;

    /** A node with a blank disk, a blank (setup mode) variable store and a new TPM, all under `dir` (emptied first). */
    constructor(readonly dir: string, opts: { diskBytes?: number; memoryMB?: number } = {}) {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true });
        this.disk = path.join(dir, "disk.img");
        fs.writeFileSync(this.disk, "");
        fs.truncateSync(this.disk, opts.diskBytes ?? NODE_DISK_BYTES);
        this.vars = freshVars(dir);
        this.tpmState = path.join(dir, "tpm");
        this.memoryMB = opts.memoryMB ?? 1536;
    }

    private readonly memoryMB: number;

    /** The node a previous run left in `dir` (its disk, variables and TPM kept), to boot it again. */
    static reopen(dir: string, opts: { memoryMB?: number } = {}): VirtualNode {
        const node: VirtualNode = Object.create(VirtualNode.prototype);
        for (const f of ["disk.img", "OVMF_VARS.fd"]) if (!fs.existsSync(path.join(dir, f))) throw new Error(`${dir} has no ${f}: not a node folder`);
        Object.assign(node, { dir, disk: path.join(dir, "disk.img"), vars: path.join(dir, "OVMF_VARS.fd"), tpmState: path.join(dir, "tpm"), memoryMB: opts.memoryMB ?? 1536 });
        return node;
    }

    /**
     * Boots `iso` as a CD-ROM with the disk attached (the live medium), or with no iso the disk alone,
     * until the test OS's report ends; the serial log goes to <dir>/serial-<label>.log.
     */
    async boot(label: string, o: NodeBootOptions): Promise<NodeBoot> {
        const slug = label.replace(/[^a-z0-9-]+/gi, "-");
        const logFile = path.join(this.dir, `serial-${slug}.log`);
        fs.rmSync(logFile, { force: true });
        const fwCfg: Record<string, string> = {};
        const put = (name: string, text: string) => {
            fwCfg[name] = path.join(this.dir, `fwcfg-${slug}-${name}`);
            fs.writeFileSync(fwCfg[name], text);
        };
        if (o.steps?.length) put("steps", `${o.steps.join("\n")}\n`);
        const forwards = (o.registries ?? []).map((host) => {
            const port = Number(host.split(":").pop());
            if (!Number.isInteger(port) || port <= 0) throw new Error(`registry "${host}": expected HOST:PORT`);
            return { host, port };
        });
        // Published references name the registry as the host reaches it (127.0.0.1:PORT); the guest reaches
        // it at GUEST_FORWARD_ADDR:PORT (guestfwd). The agent stand-in maps one to the other through this
        // mirror file, as containerd's and Kairos' registry mirrors do; references and digests stay as published.
        if (forwards.length) put("registry-mirrors", forwards.map((f) => `${f.host}=http://${GUEST_FORWARD_ADDR}:${f.port}\n`).join(""));
        for (const [name, text] of Object.entries(o.files ?? {})) put(name, text);
        const boot = await bootMedia({
            ...(o.iso ? { media: o.iso, as: "cdrom" as const, disks: [this.disk] } : { media: this.disk, as: "disk" as const, writable: true }),
            vars: this.vars, tpmStateDir: this.tpmState, timeoutMs: o.timeoutMs, endMarker: SYSTEMD_REPORT_END, memoryMB: this.memoryMB, logFile,
            ...(forwards.length ? { network: { forwards: forwards.map((f) => ({ guestPort: f.port, hostPort: f.port })) } } : {}),
            ...(Object.keys(fwCfg).length ? { fwCfg } : {}),
        });
        return { boot, report: boot.booted ? parseSystemdReport(boot.log) : undefined, logFile };
    }
}

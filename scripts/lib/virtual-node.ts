// A virtual machine that keeps what a real one keeps between boots: its disk (a sparse raw image), the
// firmware's variable store (the Secure Boot keys systemd-boot enrolled) and its TPM's state (what
// the installer sealed). The demo and the installed-node test boot our ISO on it with the blank disk
// attached (the installer's target), then the disk alone.
import * as fs from "fs";
import * as path from "path";
import { BootResult, bootMedia, freshVars } from "./qemu";
import { SYSTEMD_REPORT_END, parseSystemdReport } from "./systemd-test-os";

export const NODE_DISK_BYTES = 2 * 1024 ** 3;

export type SystemdReport = NonNullable<ReturnType<typeof parseSystemdReport>>;

export interface NodeBoot {
    boot: BootResult;
    /** Undefined when the guest sent none (see the serial log). */
    report?: SystemdReport;
    logFile: string;
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

    /**
     * Boots `iso` as a CD-ROM with the disk attached (the live medium), or with no iso the disk alone,
     * until the test OS's report ends; the serial log goes to <dir>/serial-<label>.log.
     */
    async boot(label: string, o: { iso?: string; timeoutMs: number }): Promise<NodeBoot> {
        const logFile = path.join(this.dir, `serial-${label.replace(/[^a-z0-9-]+/gi, "-")}.log`);
        fs.rmSync(logFile, { force: true });
        const boot = await bootMedia({
            ...(o.iso ? { media: o.iso, as: "cdrom" as const, disks: [this.disk] } : { media: this.disk, as: "disk" as const, writable: true }),
            vars: this.vars, tpmStateDir: this.tpmState, timeoutMs: o.timeoutMs, endMarker: SYSTEMD_REPORT_END, memoryMB: this.memoryMB, logFile,
        });
        return { boot, report: boot.booted ? parseSystemdReport(boot.log) : undefined, logFile };
    }
}

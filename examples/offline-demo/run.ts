// `npm run demo`: deploys the offline demo through the real Pulumi engine (local file backend under
// out/demo/.state; out/demo is the demo's Pulumi project folder, so every path in its state and outputs
// is relative to it, and a moved checkout builds nothing), writes the stack outputs to
// out/demo/outputs.json, says what was built and why,
// then boots the ISO in QEMU/OVMF with Secure Boot from a blank key store and a vTPM, and prints what
// the booted system reports: `systemd-sysext status`, the k3s service started from the extension,
// and PCR 13 measured against the prediction. KAIROS_DEMO_BOOT=0 skips the boot.
import * as fs from "fs";
import * as path from "path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { openLocalStack, REPO_ROOT } from "../../scripts/lib/local-engine";
import { SYSTEMD_REPORT_END, buildSystemdTestOsRootfs, parseSystemdReport } from "../../scripts/lib/systemd-test-os";
import { bootMedia, freshVars } from "../../scripts/lib/qemu";
import { demoProgram } from "./index";

const OUT_DIR = path.resolve(process.env.KAIROS_DEMO_OUT ?? path.join(REPO_ROOT, "out", "demo"));
/** As the program names it: relative to the project folder, OUT_DIR. */
const TEST_OS = "test-os";
const TEST_OS_DIR = path.join(OUT_DIR, TEST_OS);
// A fixed passphrase is fine for a local demo; real stacks take theirs from PULUMI_CONFIG_PASSPHRASE.
const DEMO_PASSPHRASE = process.env.PULUMI_CONFIG_PASSPHRASE ?? "pulumi-kairos-demo";
const BOOT_TIMEOUT_MS = 600000;

function seconds(since: number): string {
    return ((Date.now() - since) / 1000).toFixed(1);
}

/** The systemd test OS rootfs, written once (its content is fixed, so reruns change nothing). */
async function ensureTestOs(): Promise<void> {
    const done = path.join(OUT_DIR, ".systemd-test-os.complete");
    if (fs.existsSync(done)) return;
    fs.rmSync(TEST_OS_DIR, { recursive: true, force: true });
    await buildSystemdTestOsRootfs(TEST_OS_DIR);
    fs.writeFileSync(done, "");
}

function indented(text: string | undefined): string {
    return (text ?? "(not reported)").split("\n").map((l) => `    ${l}`).join("\n");
}

async function main(): Promise<void> {
    const started = Date.now();
    fs.mkdirSync(OUT_DIR, { recursive: true });
    await ensureTestOs();
    const stack = await openLocalStack(demoProgram(".", TEST_OS, OUT_DIR), {
        backendDir: path.join(OUT_DIR, ".state"),
        passphrase: DEMO_PASSPHRASE,
        projectName: "kairos-offline-demo",
        stackName: "demo",
        // The project folder: the providers run there, and the program's relative paths resolve there.
        workDir: OUT_DIR,
    });
    const ops = new Map<string, string>();
    const onEvent = (e: EngineEvent) => {
        const m = e.resOutputsEvent?.metadata;
        if (m && m.type.startsWith("pulumi-nodejs:dynamic/kairos:")) ops.set(m.urn, m.op);
    };
    const upStarted = Date.now();
    const result = await stack.up({ color: "never", onOutput: (line) => process.stdout.write(line), onEvent });
    const upSeconds = seconds(upStarted);
    const outputs = Object.fromEntries(Object.entries(result.outputs).map(([k, v]) => [k, v.value]));
    writeIfChanged(path.join(OUT_DIR, "outputs.json"), JSON.stringify(outputs, null, 2) + "\n");

    console.log("\nWhat happened:");
    const state = (await stack.exportStack()).deployment.resources ?? [];
    for (const [urn, op] of ops) {
        const res = state.find((r: { urn: string }) => r.urn === urn);
        const name = urn.split("::").pop();
        const kind = urn.split("::")[2].split(":").pop();
        const b = res?.outputs?.lastBuild;
        const what = op === "same" || !b ? "unchanged" : `${b.action} (${b.reasons.join("; ")}) in ${b.seconds.toFixed(2)} s: ${b.steps.map((s: { step: string; seconds: number }) => `${s.step} ${s.seconds.toFixed(2)} s`).join(", ")}`;
        console.log(`  ${kind} ${name}: ${what}`);
    }
    const changes = Object.entries(result.summary.resourceChanges ?? {}).filter(([op]) => op !== "same");
    console.log(
        changes.length === 0
            ? `demo: no changes — everything in ${OUT_DIR} is up to date (up took ${upSeconds} s)`
            : `demo: ${changes.map(([op, n]) => `${n} ${op}`).join(", ")} in ${upSeconds} s; outputs in ${path.join(OUT_DIR, "outputs.json")}`,
    );

    const iso = path.resolve(OUT_DIR, outputs.iso.path as string);
    if (process.env.KAIROS_DEMO_BOOT === "0") {
        console.log(`demo: total ${seconds(started)} s (boot skipped: KAIROS_DEMO_BOOT=0)`);
        return;
    }
    console.log(`\nBooting ${path.relative(REPO_ROOT, iso)} in QEMU/OVMF (Secure Boot, blank key store, vTPM); under TCG this takes a few minutes...`);
    const boot = await bootMedia({
        media: iso, as: "cdrom", vars: freshVars(path.join(OUT_DIR, ".vars")), tpm: true, timeoutMs: BOOT_TIMEOUT_MS,
        endMarker: SYSTEMD_REPORT_END, memoryMB: 1536, logFile: freshLog(path.join(OUT_DIR, "boot.log")),
    });
    const report = parseSystemdReport(boot.log);
    console.log(`  keys enrolled by systemd-boot: ${boot.enrolled ? "yes" : "no"}`);
    if (!report) {
        console.log(`  the guest sent no report (${boot.timedOut ? "timed out" : "stopped"} after ${boot.seconds.toFixed(1)} s); serial log in ${path.join(OUT_DIR, "boot.log")}`);
        process.exit(2);
    }
    const f = report.facts;
    console.log(`  Secure Boot in the guest: ${f.sb}; systemd ${f.systemd}, kernel ${f.kernel}; report after ${boot.seconds.toFixed(1)} s`);
    console.log(`\n  $ systemd-sysext status\n${indented(report.sections["systemd-sysext status"])}`);
    console.log(`\n  $ systemd-confext status\n${indented(report.sections["systemd-confext status"])}`);
    console.log(`\n  $ ls -l /usr/local/bin /usr/local/lib/systemd/system\n${indented(report.sections["ls /usr/local/bin /usr/local/lib/systemd/system"])}`);
    console.log(`\n  $ systemctl status k3s  (started by the cloud-config's boot stage)\n${indented(report.sections["extension services"])}`);
    const pcr13 = outputs.pcr13 as { sha256: string };
    const pcr13Match = f.pcr13 === pcr13.sha256;
    console.log(`\n  PCR 13 (extensions) predicted ${pcr13.sha256}\n                     measured  ${f.pcr13} -> ${pcr13Match ? "equal" : "DIFFERENT"}`);
    console.log(`  k3s.service: ${f["service k3s"]}; cloud-config boot stage: ${f["boot-stage-commands"]} commands, ${f["boot-stage-failed"]} failed; serial log in ${path.join(OUT_DIR, "boot.log")}`);
    console.log(`demo: total ${seconds(started)} s`);
    if (f.sb !== "enabled" || f["service k3s"] !== "active/enabled" || f["boot-stage-failed"] !== "0" || !/\/usr\s+k3s/.test(report.sections["systemd-sysext status"] ?? "") || !pcr13Match) process.exit(2);
}

/** A run that changes nothing leaves the file as it was (its time included). */
function writeIfChanged(file: string, content: string): void {
    if (fs.existsSync(file) && fs.readFileSync(file, "utf8") === content) return;
    fs.writeFileSync(file, content);
}

/** The serial log of this run only. */
function freshLog(file: string): string {
    fs.rmSync(file, { force: true });
    return file;
}

main().catch((e) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
});

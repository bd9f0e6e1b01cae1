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
import { buildSystemdTestOsRootfs, systemdTestOsFingerprint } from "../../scripts/lib/systemd-test-os";
import { startDockerfileServices } from "../../scripts/lib/buildkit";
import { VirtualNode } from "../../scripts/lib/virtual-node";
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

/**
 * The systemd test OS rootfs, written again only when what it is made of changed (the cached base or a
 * guest file, e.g. after a pull), so an unchanged checkout reruns as a no-op.
 */
async function ensureTestOs(): Promise<void> {
    const done = path.join(OUT_DIR, ".systemd-test-os.complete");
    const fingerprint = await systemdTestOsFingerprint();
    if (fs.existsSync(done) && fs.readFileSync(done, "utf8") === fingerprint) return;
    fs.rmSync(TEST_OS_DIR, { recursive: true, force: true });
    await buildSystemdTestOsRootfs(TEST_OS_DIR);
    fs.writeFileSync(done, fingerprint);
}

function indented(text: string | undefined): string {
    return (text ?? "(not reported)").split("\n").map((l) => `    ${l}`).join("\n");
}

async function main(): Promise<void> {
    const started = Date.now();
    fs.mkdirSync(OUT_DIR, { recursive: true });
    await ensureTestOs();
    // The k3s extension's Dockerfile is built by a local buildkitd (BUILDKIT_HOST, which the providers
    // inherit), with docker.io mirrored to a local registry holding the Debian base image.
    const dockerfileServices = await startDockerfileServices({ exportHost: true });
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
    const result = await stack.up({ color: "never", onOutput: (line) => process.stdout.write(line), onEvent }).finally(() => dockerfileServices.stop());
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
    const ok = await installAndBoot(iso, outputs);
    console.log(`demo: total ${seconds(started)} s`);
    if (!ok) process.exit(2);
}

/**
 * The seed's story to its end on a virtual node (out/demo/node: a blank 2 GiB sparse disk, a blank
 * firmware key store, a new vTPM, all made afresh each run): the ISO boots and installs itself onto
 * the disk, then the disk alone boots the installed node. Prints what that node reports; false when
 * something the story promises did not happen.
 */
async function installAndBoot(iso: string, outputs: Record<string, any>): Promise<boolean> {
    const node = new VirtualNode(path.join(OUT_DIR, "node"));
    console.log(`\nBooting ${path.relative(REPO_ROOT, iso)} in QEMU/OVMF (Secure Boot, blank key store, vTPM) with a blank disk; it installs itself (under TCG this takes a few minutes)...`);
    const live = await node.boot("live", { iso, timeoutMs: BOOT_TIMEOUT_MS });
    console.log(`  keys enrolled by systemd-boot: ${live.boot.enrolled ? "yes" : "no"}`);
    if (!live.report || live.report.facts["install-exit"] !== "0") {
        console.log(`  the installation did not finish (${live.boot.timedOut ? "timed out" : "stopped"} after ${live.boot.seconds.toFixed(1)} s); serial log in ${live.logFile}`);
        if (live.report) console.log(indented(live.report.sections.install));
        return false;
    }
    console.log(`  Secure Boot in the guest: ${live.report.facts.sb}; installed in ${live.boot.seconds.toFixed(1)} s:\n${indented(live.report.sections.install)}`);

    console.log("\nAfter the installation has finished: booting the disk alone (same firmware keys, same TPM)...");
    const installed = await node.boot("installed", { timeoutMs: BOOT_TIMEOUT_MS });
    const report = installed.report;
    if (!report) {
        console.log(`  the installed node sent no report (${installed.boot.timedOut ? "timed out" : "stopped"} after ${installed.boot.seconds.toFixed(1)} s); serial log in ${installed.logFile}`);
        return false;
    }
    const f = report.facts;
    const pcr11 = (outputs.pcr11 as Record<string, Record<string, string>>).norole ?? {};
    const unlockedBySignedPolicy = f.unlock === "unlocked" && f["pcr11-at-unlock"] === pcr11["enter-initrd"];
    console.log(`  Secure Boot in the guest: ${f.sb}; systemd ${f.systemd}, kernel ${f.kernel}; booted entry ${f.profile}; report after ${installed.boot.seconds.toFixed(1)} s`);
    console.log(`  persistent partition (LUKS2): ${f.unlock === "unlocked" ? "unlocked by the TPM with the UKI's signed PCR 11 policy, no passphrase" : `NOT unlocked (${f.unlock})`}`);
    console.log(`    PCR 11 at unlock ${f["pcr11-at-unlock"]}\n    signed for phase enter-initrd ${pcr11["enter-initrd"]} -> ${unlockedBySignedPolicy ? "equal" : "DIFFERENT"}`);
    console.log(`\n  $ sudo -i; systemd-sysext status\n${indented(report.sections["systemd-sysext status"])}`);
    console.log(`\n  $ systemd-confext status\n${indented(report.sections["systemd-confext status"])}`);
    console.log(`\n  $ systemctl status k3s  (started by the cloud-config's boot stage)\n${indented(report.sections["systemctl status k3s"])}`);
    const pcr13 = outputs.pcr13 as { sha256: string };
    const pcr13Match = f.pcr13 === pcr13.sha256;
    console.log(`\n  PCR 13 (extensions) predicted ${pcr13.sha256}\n                     measured  ${f.pcr13} -> ${pcr13Match ? "equal" : "DIFFERENT"}`);
    console.log(`  k3s.service: ${f["service k3s"]}; cloud-config boot stage: ${f["boot-stage-commands"]} commands, ${f["boot-stage-failed"]} failed; serial logs in ${node.dir}`);
    return f.sb === "enabled" && unlockedBySignedPolicy && f["service k3s"] === "active/enabled" && f["boot-stage-failed"] === "0"
        && /^\/usr\/local\/bin\s+k3s\s/m.test(report.sections["systemd-sysext status"] ?? "") && pcr13Match;
}

/** A run that changes nothing leaves the file as it was (its time included). */
function writeIfChanged(file: string, content: string): void {
    if (fs.existsSync(file) && fs.readFileSync(file, "utf8") === content) return;
    fs.writeFileSync(file, content);
}

main().catch((e) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
});

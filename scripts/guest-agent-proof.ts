// One real-boot proof of the guest's day-2 stand-ins (not part of `npm test`; the release issue's boot
// test will own that): our ISO installs the systemd test OS with a db-signed k3s-v1 extension, then the
// disk boots with the test network and steps that take a v2 k3s sysext from the registry by digest
// (kairos-agent sysext install oci:…@sha256:…, enable --now, remove v1), then try a foreign-signed
// extension beside the good one (a plain `systemd-sysext refresh`, then the agent's `enable --now`, which
// restarts systemd-sysext), then upgrade the OS from an AuroraBoot image and ask for a reboot; a third
// boot shows the upgraded entry. The node folder is kept: PROOF_DIR=… PROOF_PHASE=installed re-boots it.
//   nice -n 19 npx ts-node --transpile-only scripts/guest-agent-proof.ts
import * as fs from "fs";
import * as path from "path";
import { run } from "../provider/toolkit/run";
import { signingKeysHandler } from "../provider/signing-keys";
import { systemExtensionHandler } from "../provider/system-extension";
import { kairosUkiImageHandler } from "../provider/kairos-uki-image";
import { bootMediaHandler } from "../provider/boot-media";
import { createVia } from "../test/helpers/handlers";
import { startRegistry } from "../test/helpers/registry";
import { auroraBootImage, pushImage, pushSysext } from "../test/helpers/guest-agent";
import { VirtualNode, SystemdReport } from "./lib/virtual-node";
import { SYSTEMD_TEST_OS_CMDLINE, buildSystemdTestOsRootfs } from "./lib/systemd-test-os";
import { DEMO_CLOUD_CONFIG } from "../examples/offline-demo/payloads";

const REPO = path.resolve(__dirname, "..");
const WORK = process.env.PROOF_DIR ?? "/tmp/guest-agent-proof";
const TIMEOUT = 600000;
const POLICY = "root=signed+absent:usr=signed+absent";

/** The k3s stand-in with another version string (a copy of examples/k3s-sysext/standin). */
async function k3sBinary(out: string, version: string): Promise<void> {
    const src = path.join(WORK, `standin-${version.replace(/\W+/g, "-")}`);
    fs.rmSync(src, { recursive: true, force: true });
    fs.cpSync(path.join(REPO, "examples/k3s-sysext/standin"), src, { recursive: true });
    const main = path.join(src, "main.go");
    fs.writeFileSync(main, fs.readFileSync(main, "utf8").replace(/const version = "[^"]*"/, `const version = "${version}"`));
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await run(["go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "."], { cwd: src, env: { CGO_ENABLED: "0", GOTOOLCHAIN: "local", GOFLAGS: "-mod=mod" }, timeoutMs: 300000 });
}

async function k3sTree(name: string, version: string): Promise<string> {
    const dir = path.join(WORK, "src", name);
    fs.rmSync(dir, { recursive: true, force: true });
    await k3sBinary(path.join(dir, "usr/local/bin/k3s"), version);
    fs.mkdirSync(path.join(dir, "usr/local/lib/systemd/system"), { recursive: true });
    fs.copyFileSync(path.join(REPO, "examples/k3s-sysext/k3s.service"), path.join(dir, "usr/local/lib/systemd/system/k3s.service"));
    return dir;
}

function show(label: string, r: SystemdReport | undefined, seconds: number): void {
    if (!r) throw new Error(`${label}: no report`);
    fs.writeFileSync(path.join(WORK, `report-${label}.json`), JSON.stringify(r, null, 2));
    console.log(`\n=== ${label}: report after ${seconds} s`);
    for (const [k, v] of Object.entries(r.facts)) console.log(`  ${k}=${v}`);
    for (const [name, text] of Object.entries(r.sections)) {
        if (/^(step |loader|systemd-sysext status|k3s --version|extensions|journal: systemd-sysext)/.test(name)) console.log(`--- ${name}\n${text}`);
    }
}

async function main(): Promise<void> {
    const phase = process.env.PROOF_PHASE ?? "all";
    const registry = await startRegistry();
    try {
        const as = (set: any, role: string) => ({ key: set.files[role].key, certificate: set.files[role].pem });
        let node: VirtualNode;
        const started = Date.now();
        if (phase === "all") {
            fs.rmSync(WORK, { recursive: true, force: true });
            fs.mkdirSync(WORK, { recursive: true });
            const keys = await createVia(signingKeysHandler, { name: "proof", outputDir: path.join(WORK, "keys") });
            const foreign = await createVia(signingKeysHandler, { name: "attacker", outputDir: path.join(WORK, "foreign-keys") });
            const ext = async (name: string, dir: string, signer: any) =>
                (await createVia(systemExtensionHandler, { name, outputDir: path.join(WORK, "ext", name), source: { dir }, signing: signer, release: { reloadManager: true } })).path as string;
            const v1 = await ext("k3s-v1", await k3sTree("v1", "v1.31.2+k3s1 (pulumi-kairos stand-in)"), as(keys, "db"));
            const v2 = await ext("k3s-v2", await k3sTree("v2", "v1.32.0+k3s1 (pulumi-kairos stand-in v2)"), as(keys, "db"));
            const evilDir = path.join(WORK, "src", "evil");
            fs.mkdirSync(path.join(evilDir, "usr/local/bin"), { recursive: true });
            fs.writeFileSync(path.join(evilDir, "usr/local/bin/k3s-evil"), "#!/bin/sh\necho pwned\n", { mode: 0o755 });
            const v3 = await ext("k3s-evil", evilDir, as(foreign, "db"));
            const rootfs = path.join(WORK, "os");
            await buildSystemdTestOsRootfs(rootfs);
            const uki = (dir: string, extra: string) => createVia(kairosUkiImageHandler, {
                outputDir: path.join(WORK, dir), source: { dir: rootfs }, signing: as(keys, "db"), pcrKey: keys.tpmPcrKeyFile,
                extendCmdline: `${SYSTEMD_TEST_OS_CMDLINE}${extra}`, initrdCompressionLevel: 3,
            });
            const os1 = await uki("uki", "");
            const os2 = await uki("uki-v2", " kairos.test=upgraded");
            const cloudConfig = path.join(WORK, "cloud-config.yaml");
            fs.writeFileSync(cloudConfig, DEMO_CLOUD_CONFIG);
            const media = await createVia(bootMediaHandler, {
                name: "proof", outputDir: path.join(WORK, "media"), timeout: 0, uki: os1.bootFiles,
                enrollKeys: { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth }, extensions: [v1], cloudConfig,
            });
            // the OS release: AuroraBoot's container of the second UKI
            const b = os2.bootFiles;
            const image = await auroraBootImage({
                "EFI/BOOT/BOOTX64.EFI": fs.readFileSync(b.systemdBoot),
                "EFI/kairos/norole.efi": fs.readFileSync(b.efiFiles[0]),
                "loader/entries/norole.conf": fs.readFileSync(b.loaderEntries[0]),
                "loader/loader.conf": "timeout 5\nconsole-mode max\neditor no\nsecure-boot-enroll if-safe\n",
            });
            fs.writeFileSync(path.join(WORK, "image-parts.json"), JSON.stringify({ v2, v3 }));
            fs.writeFileSync(path.join(WORK, "os2-image.json"), JSON.stringify({ config: image.config.toString("base64"), layer: image.layer.blob.toString("base64") }));
            console.log(`built in ${Math.round((Date.now() - started) / 1000)} s`);
            node = new VirtualNode(path.join(WORK, "node"));
            const live = await node.boot("live", { iso: media.path, timeoutMs: TIMEOUT });
            show("live", live.report, live.boot.seconds);
            if (live.report?.facts["install-exit"] !== "0") throw new Error(`install failed; see ${live.logFile}`);
        } else {
            node = VirtualNode.reopen(path.join(WORK, "node"));
        }
        if (phase === "panic") return await panicPhase(node);
        // publish (a fresh registry each run; the digests are the same bytes' digests)
        const parts = JSON.parse(fs.readFileSync(path.join(WORK, "image-parts.json"), "utf8"));
        const d2 = await pushSysext(registry.host, "ext/k3s:v2", parts.v2);
        const d3 = await pushSysext(registry.host, "ext/k3s:evil", parts.v3);
        const osRef = await pushImage(registry.host, "kairos/os", "v2", await imageFromDisk());
        const sysextEnv = ". /etc/profile.d/systemd-sysext.sh;";
        const steps = [
            `kairos-agent sysext install oci:${registry.host}/ext/k3s@${d2}`,
            "kairos-agent sysext enable --active --now k3s-v2",
            "kairos-agent sysext remove --now k3s-v1",
            "/usr/local/bin/k3s --version; systemctl is-active k3s",
            `${sysextEnv} systemd-sysext status --no-pager`,
            // the foreign-signed fact: a plain refresh with the good one merged, then the agent's way
            `kairos-agent sysext install oci:${registry.host}/ext/k3s@${d3}`,
            `ln -s /var/lib/kairos/extensions/k3s-evil.sysext.raw /run/extensions/; ${sysextEnv} systemd-sysext refresh --image-policy=${POLICY}; echo refresh-exit=$?; systemd-sysext status --no-pager; /usr/local/bin/k3s --version; rm /run/extensions/k3s-evil.sysext.raw`,
            "kairos-agent sysext enable --active --now k3s-evil",
            `${sysextEnv} systemd-sysext status --no-pager; ls /usr/local/bin; /usr/local/bin/k3s --version; systemctl is-active k3s systemd-sysext`,
            "kairos-agent sysext remove --now k3s-evil",
            `${sysextEnv} systemd-sysext status --no-pager; /usr/local/bin/k3s --version`,
            `kairos-agent upgrade --source oci:${osRef}`,
            "ls -l /efi/EFI/kairos /efi/loader/entries; head -n 20 /efi/loader/entries/*.conf /efi/loader/loader.conf",
            "reboot",
        ];
        const t = Date.now();
        const installed = await node.boot("installed", { timeoutMs: TIMEOUT, steps, registries: [registry.host] });
        show("installed", installed.report, installed.boot.seconds);
        console.log(`(installed boot wall ${Math.round((Date.now() - t) / 1000)} s)`);
        const after = await node.boot("after-upgrade", { timeoutMs: TIMEOUT, steps: ["cat /proc/cmdline", "ls -l /efi/loader/entries"] });
        show("after-upgrade", after.report, after.boot.seconds);
    } finally {
        await registry.stop();
    }

    /**
     * Boot assessment: an upgrade to a db-signed UKI that cannot start (rdinit=/nonexistent: the kernel
     * panics, and the Kairos cmdline's panic=5 reboots it) must come back on passive after the new
     * active's 3 tries, in one QEMU run (the guest reboots itself until passive reports).
     */
    async function panicPhase(node: VirtualNode): Promise<void> {
        const k = path.join(WORK, "keys");
        const bad = await createVia(kairosUkiImageHandler, {
            outputDir: path.join(WORK, "uki-panic"), source: { dir: path.join(WORK, "os") }, signing: { key: path.join(k, "db.key"), certificate: path.join(k, "db.pem") },
            pcrKey: path.join(k, "tpm2-pcr-private.pem"), extendCmdline: `${SYSTEMD_TEST_OS_CMDLINE} rdinit=/nonexistent`, initrdCompressionLevel: 3,
        });
        const b = bad.bootFiles;
        const ref = await pushImage(registry.host, "kairos/os", "panic", await auroraBootImage({
            "EFI/BOOT/BOOTX64.EFI": fs.readFileSync(b.systemdBoot),
            "EFI/kairos/norole.efi": fs.readFileSync(b.efiFiles[0]),
            "loader/entries/norole.conf": fs.readFileSync(b.loaderEntries[0]),
            "loader/loader.conf": "timeout 5\nconsole-mode max\neditor no\nsecure-boot-enroll if-safe\n",
        }));
        const up = await node.boot("panic-upgrade", { timeoutMs: TIMEOUT, registries: [registry.host], steps: [`kairos-agent upgrade --source oci:${ref}`, "ls -l /efi/loader/entries", "reboot"] });
        show("panic-upgrade", up.report, up.boot.seconds);
        const fb = await node.boot("fallback", { timeoutMs: 2 * TIMEOUT, steps: ["cat /proc/cmdline"] });
        const panics = (fb.boot.log.match(/Kernel panic/g) ?? []).length;
        console.log(`kernel panics before the report: ${panics}`);
        show("fallback", fb.report, fb.boot.seconds);
    }

    async function imageFromDisk() {
        const saved = JSON.parse(fs.readFileSync(path.join(WORK, "os2-image.json"), "utf8"));
        const { createHash } = await import("crypto");
        const config = Buffer.from(saved.config, "base64");
        const blob = Buffer.from(saved.layer, "base64");
        const { gunzipSync } = await import("zlib");
        const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
        const manifest = Buffer.from(JSON.stringify({
            schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json",
            config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.length, digest: sha(config) },
            layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: blob.length, digest: sha(blob) }],
        }));
        return { config, layer: { blob, digest: sha(blob), diffId: sha(gunzipSync(blob)) }, manifest, digest: sha(manifest) };
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});

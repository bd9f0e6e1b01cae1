// Updates at their own pace, on an installed node (OVMF Secure Boot, vTPM, TCG): the node-updates
// example's program publishes k3s and the OS to a registry on 127.0.0.1 through the real engine; our
// ISO installs the node; then the program adds a k3s version (preview: only that extension, its release
// and the catalog) and changes the OS (preview: only the UKI, its release and the media), and the
// installed node takes both the way kairos-agent does, over a restricted user network that reaches
// only the registry (QEMU guestfwd). Four boots:
//   1 live: install from the ISO (k3s 1.31.2 on the media);
//   2 installed: `sysext install` k3s by name from the catalog (latest = 1.32.0), enable --now, remove
//     1.31.2, k3s restarts on the new binary; a foreign-signed release is refused at merge and a
//     release whose bytes differ from the catalog's digest before it is written (1.32.0 keeps running);
//     an OS release signed by a key not in db is refused before any rotation; the new OS is taken;
//   3 the new UKI boots as active (old one passive), k3s 1.32.0 still merged, the disk unlocks under
//     the new PCR 11 values; then an OS release whose command line panics is taken;
//   4 that UKI panics through its three tries and systemd-boot falls back to passive.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { EngineStack, engineStack, tempDir } from "../helpers/engine";
import { TestRegistry, startRegistry } from "../helpers/registry";
import { createVia } from "../helpers/handlers";
import { signingKeysHandler } from "../../provider/signing-keys";
import { systemExtensionHandler } from "../../provider/system-extension";
import { kairosUkiImageHandler } from "../../provider/kairos-uki-image";
import { sysextReleaseHandler } from "../../provider/sysext-release";
import { extensionCatalogHandler } from "../../provider/extension-catalog";
import { osReleaseHandler } from "../../provider/os-release";
import { nodeUpdatesProgram, NodeUpdatesSettings } from "../../examples/node-updates";
import { DEMO_CLOUD_CONFIG } from "../../examples/offline-demo/payloads";
import { SystemdReport, VirtualNode } from "../../scripts/lib/virtual-node";
import { IMAGE_POLICY, SYSTEMD_TEST_OS_CMDLINE, buildK3sStandin, buildSystemdTestOsRootfs } from "../../scripts/lib/systemd-test-os";
import "../helpers/oras-path";

const BOOT_TIMEOUT_MS = 600000;
const REPO = path.resolve(__dirname, "..", "..");
const OS2_CMDLINE = `${SYSTEMD_TEST_OS_CMDLINE} kairos.test.os=2`;
/** No initrd init and no root: the kernel panics, and panic=-1 resets at once (Debian's kernel would wait forever). */
const PANIC_CMDLINE = `${SYSTEMD_TEST_OS_CMDLINE} rdinit=/kairos-test/no-such-init panic=-1`;

describe("an installed node takes extension and OS releases from a registry (engine, registry, OVMF, vTPM)", function () {
    this.timeout(BOOT_TIMEOUT_MS + 120000);
    let work: string;
    let registry: TestRegistry;
    let stack: EngineStack;
    let settings: NodeUpdatesSettings;
    let node: VirtualNode;
    const outs: Record<string, Record<string, any>> = {};
    const previews: Record<string, string[]> = {};
    const reports: Record<string, SystemdReport> = {};
    const refs: Record<string, string> = {};
    const sha: Record<string, string> = {};

    async function boot(label: string, o: { iso?: string; steps?: string[] } = {}): Promise<SystemdReport> {
        const { boot: result, report, logFile } = await node.boot(label, { ...o, registries: [registry.host], timeoutMs: BOOT_TIMEOUT_MS });
        if (report) fs.writeFileSync(path.join(work, `report-${label.replace(/\W+/g, "-")}.json`), JSON.stringify(report, null, 2));
        assert.ok(report, `${label}: no report from the guest (timed out: ${result.timedOut}); serial log in ${logFile}:\n${result.log.slice(-4000)}`);
        console.log(`      (${label}: boot to report ${result.seconds} s)`);
        return report;
    }

    async function k3sTree(version: string): Promise<{ version: string; tree: string }> {
        const tree = path.join(work, "src", `k3s-${version}`);
        await buildK3sStandin(path.join(tree, "usr/local/bin/k3s"), `v${version}+k3s1`);
        fs.mkdirSync(path.join(tree, "usr/local/lib/systemd/system"), { recursive: true });
        fs.copyFileSync(path.join(REPO, "examples/k3s-sysext/k3s.service"), path.join(tree, "usr/local/lib/systemd/system/k3s.service"));
        return { version, tree };
    }

    /** Output `step` of a report: "$ CMD", what it printed, "exit=RC". */
    const step = (r: SystemdReport, n: number) => {
        const s = r.sections[`step ${n}`];
        assert.ok(s !== undefined, `no step ${n} in ${JSON.stringify(Object.keys(r.sections))}`);
        return s;
    };

    before(async function () {
        this.timeout(4 * BOOT_TIMEOUT_MS + 1200000);
        work = tempDir("node-updates");
        registry = await startRegistry();
        const rootfs = path.join(work, "os");
        await buildSystemdTestOsRootfs(rootfs);
        fs.writeFileSync(path.join(work, "cloud-config.yaml"), DEMO_CLOUD_CONFIG);
        settings = {
            outDir: path.join(work, "out"), registry: registry.host, plainHttp: true,
            k3s: [await k3sTree("1.31.2")], os: { dir: rootfs, cmdline: SYSTEMD_TEST_OS_CMDLINE, version: "1" },
            cloudConfig: path.join(work, "cloud-config.yaml"),
        };
        stack = await engineStack(async () => nodeUpdatesProgram(settings)(), { projectName: "node-updates", stackName: "dev" });
        outs.first = await (await stack.up(), stack.outputValues());

        node = new VirtualNode(path.join(work, "node"));
        reports.live = await boot("live install", { iso: outs.first.iso });
        assert.equal(reports.live.facts["install-exit"], "0", `the installer failed:\n${reports.live.sections.install}`);
        sha.os1 = outs.first.os.ukiSha256;

        // A new k3s: only its extension, its release and the catalog change.
        settings.k3s = [...settings.k3s, await k3sTree("1.32.0")];
        previews.k3s = (await stack.previewSteps()).steps;
        await stack.up();
        // A new OS (another command line): only the UKI, its release and the media change.
        settings.os = { ...settings.os, cmdline: OS2_CMDLINE, version: "2" };
        previews.os = (await stack.previewSteps()).steps;
        outs.second = await (await stack.up(), stack.outputValues());
        sha.os2 = outs.second.os.ukiSha256;

        // What an attacker or a broken pipeline publishes, made with the same resources outside the program.
        const keys = outs.second.keys;
        const foreign = await createVia(signingKeysHandler, { name: "attacker", outputDir: path.join(work, "attacker-keys") });
        const ours = { key: keys.dbKey, certificate: keys.db };
        const theirs = { key: foreign.files.db.key, certificate: foreign.files.db.pem };
        const access = { plainHttp: true };
        const evilTree = path.join(work, "src", "evil");
        fs.mkdirSync(path.join(evilTree, "usr/local/bin"), { recursive: true });
        fs.writeFileSync(path.join(evilTree, "usr/local/bin/k3s"), "#!/bin/sh\necho pwned\n", { mode: 0o755 });
        const forged = await createVia(systemExtensionHandler, { name: "k3s-6.6.6", outputDir: path.join(work, "attacker"), source: { dir: evilTree }, signing: theirs });
        refs.forgedSysext = (await createVia(sysextReleaseHandler, { image: forged.path, name: "k3s", version: "6.6.6", repository: `${registry.host}/kairos/k3s`, registry: access })).reference;
        const tools = await createVia(systemExtensionHandler, { name: "tools-1.0.0", outputDir: path.join(work, "tools"), source: { dir: evilTree }, signing: ours });
        const toolsRelease = await createVia(sysextReleaseHandler, { image: tools.path, name: "tools", version: "1.0.0", repository: `${registry.host}/kairos/tools`, registry: access });
        const toolsCatalog = await createVia(extensionCatalogHandler, { entries: [toolsRelease.catalogEntry], outputDir: path.join(work, "tools-catalog"), repository: `${registry.host}/kairos/tools-catalog`, registry: access });
        refs.toolsCatalog = toolsCatalog.url;
        sha.toolsLayer = toolsRelease.sha256;
        registry.corruptBlob(`sha256:${toolsRelease.sha256}`); // the registry now serves other bytes under the catalog's digest

        const uki = (dir: string, signing: { key: string; certificate: string }, cmdline: string) =>
            createVia(kairosUkiImageHandler, { outputDir: path.join(work, dir), source: { dir: rootfs }, signing, pcrKey: keys.pcrKey, extendCmdline: cmdline, initrdCompressionLevel: 3 });
        const osRelease = async (name: string, u: any) =>
            (await createVia(osReleaseHandler, { uki: u.bootFiles, outputDir: path.join(work, "os-releases"), name, repository: `${registry.host}/kairos/os`, tag: name, registry: access })).reference;
        refs.foreignOs = await osRelease("foreign", await uki("uki-foreign", theirs, OS2_CMDLINE));
        const panicking = await uki("uki-panic", ours, PANIC_CMDLINE);
        sha.panic = panicking.ukis[0].sha256;
        refs.panicOs = await osRelease("panic", panicking);

        const catalogUrl = outs.second.catalog.url;
        const k3sAnswer = "bash -c 'exec 3<>/dev/tcp/127.0.0.1/6443; head -n 1 <&3'"; // the running server's version line
        reports.updates = await boot("updates", {
            steps: [
                /* 1 */ `kairos-agent sysext install --catalog ${catalogUrl} k3s`,
                // common: every profile, so the passive entry (a fallback) merges it too
                /* 2 */ "kairos-agent sysext enable --common --now k3s-1.32.0",
                /* 3 */ "kairos-agent sysext remove --now k3s-1.31.2",
                /* 4 */ `systemctl restart k3s && k3s --version && ${k3sAnswer} && ls /var/lib/kairos/extensions /run/extensions`,
                /* 5 */ `kairos-agent sysext install oci:${refs.forgedSysext}`,
                // the merge, as systemd-sysext.service's ExecStart/ExecReload run it (a refresh keeps the old merge when the new one fails)
                /* 6 */ `ln -s /var/lib/kairos/extensions/k3s-6.6.6.sysext.raw /run/extensions/ && systemd-sysext refresh --image-policy=${IMAGE_POLICY}`,
                /* 7 */ `bash -lc "systemd-sysext status"; ${k3sAnswer}; systemctl is-active k3s`, // a login shell has Kairos' hierarchy list
                /* 8 */ "kairos-agent sysext remove --now k3s-6.6.6",
                /* 9 */ `kairos-agent sysext install --catalog ${refs.toolsCatalog} tools; echo install-exit=$?; ls /var/lib/kairos/extensions`,
                /* 10 */ `kairos-agent upgrade --source oci:${refs.foreignOs}`,
                /* 11 */ "ls /efi/EFI/kairos /efi/loader/entries; sha256sum /efi/EFI/kairos/*.efi",
                /* 12 */ `kairos-agent upgrade --source oci:${outs.second.os.reference}`,
                /* 13 */ "ls /efi/EFI/kairos /efi/loader/entries; sha256sum /efi/EFI/kairos/*.efi",
            ],
        });
        reports.upgraded = await boot("upgraded", {
            steps: [
                /* 1 */ "k3s --version; bash -lc \"systemd-sysext status\"; sha256sum /efi/EFI/kairos/*.efi",
                /* 2 */ `kairos-agent upgrade --source oci:${refs.panicOs}`,
                /* 3 */ "ls /efi/loader/entries; sha256sum /efi/EFI/kairos/*.efi",
            ],
        });
        reports.fallback = await boot("fallback", { steps: ["ls /efi/loader/entries; k3s --version"] });
    });

    after(async () => {
        await stack?.dispose();
        await registry?.stop();
    });

    describe("the program", () => {
        it("a new k3s version previews as exactly its extension, its release and the catalog (the UKI, the OS release and the media untouched)", () => {
            assert.deepEqual(previews.k3s, ["create SysextRelease k3s-1.32.0", "create SystemExtension k3s-1.32.0", "update ExtensionCatalog extensions"]);
        });

        it("a new OS previews as exactly the UKI, its release and the media (the extensions and the catalog untouched)", () => {
            assert.deepEqual(previews.os, ["update BootMedia media", "update KairosUkiImage os", "update OsRelease os"]);
        });
    });

    describe("extension updates on the running node", () => {
        it("installs k3s by name from the catalog: latest is 1.32.0, written under its title after its digest checked", () => {
            assert.match(step(reports.updates, 1), /k3s-1\.32\.0\.sysext\.raw/);
            assert.match(step(reports.updates, 1), /exit=0/);
        });

        it("enables it now, removes 1.31.2, and k3s restarts on the new binary", () => {
            assert.match(step(reports.updates, 2), /exit=0/);
            assert.match(step(reports.updates, 3), /exit=0/);
            const s = step(reports.updates, 4);
            assert.match(s, /k3s version v1\.32\.0\+k3s1\n/);
            assert.match(s, /^k3s v1\.32\.0\+k3s1$/m, "the running server answers with the new version");
            assert.doesNotMatch(s, /k3s-1\.31\.2/);
            assert.match(s, /exit=0/);
        });

        it("a release signed by a foreign key is written (the agent does not verify) but refused at merge; 1.32.0 stays merged and running", () => {
            assert.match(step(reports.updates, 5), /k3s-6\.6\.6\.sysext\.raw installed/);
            assert.match(step(reports.updates, 6), /Failed to merge hierarchies/);
            assert.match(step(reports.updates, 6), /exit=[1-9]/);
            const s = step(reports.updates, 7);
            assert.match(s, /\/usr\/local\/bin\s+k3s-1\.32\.0/);
            assert.doesNotMatch(s, /k3s-6\.6\.6/);
            assert.match(s, /^k3s v1\.32\.0\+k3s1$/m);
            assert.match(s, /^active$/m);
            assert.doesNotMatch(s, /pwned/);
            assert.match(step(reports.updates, 8), /exit=0/);
        });

        it("a release whose bytes differ from the catalog's digest is refused before it is written", () => {
            const s = step(reports.updates, 9);
            assert.match(s, new RegExp(`blob sha256:${sha.toolsLayer}: got sha256:`));
            assert.match(s, /install-exit=[1-9]/);
            assert.doesNotMatch(s, /tools-1\.0\.0\.sysext\.raw/);
        });
    });

    describe("OS updates", () => {
        it("an OS release signed by a key not in db is refused before anything is rotated", () => {
            assert.match(step(reports.updates, 10), /exit=[1-9]/);
            const s = step(reports.updates, 11);
            assert.match(s, /active\.conf/);
            assert.doesNotMatch(s, /norole/);
            assert.match(s, new RegExp(`${sha.os1}  /efi/EFI/kairos/active\\.efi`));
        });

        it("the new OS is taken: norole -> active, active -> passive, with boot counting on the new entry", () => {
            assert.match(step(reports.updates, 12), /exit=0/);
            const s = step(reports.updates, 13);
            assert.match(s, new RegExp(`${sha.os2}  /efi/EFI/kairos/active\\.efi`));
            assert.match(s, new RegExp(`${sha.os1}  /efi/EFI/kairos/passive\\.efi`));
            assert.match(s, /active\+3\.conf/);
        });

        it("the new UKI boots as active with its command line; the disk unlocks under its PCR 11 values; k3s 1.32.0 is still merged", () => {
            const r = reports.upgraded;
            assert.equal(r.facts.profile, "active");
            // the report's own digests are taken after the steps (which install the next OS): step 1 ran before
            assert.match(step(r, 1), new RegExp(`${sha.os2}  /efi/EFI/kairos/active\\.efi`));
            assert.match(step(r, 1), new RegExp(`${sha.os1}  /efi/EFI/kairos/passive\\.efi`));
            assert.match(r.facts.cmdline, /kairos\.test\.os=2/);
            assert.equal(r.facts.unlock, "unlocked", r.sections.unlock);
            assert.equal(r.facts["pcr11-at-unlock"], outs.second.os.pcr11EnterInitrd);
            assert.notEqual(outs.second.os.pcr11EnterInitrd, outs.first.os.pcr11EnterInitrd);
            assert.match(step(r, 1), /k3s version v1\.32\.0\+k3s1/);
            assert.match(step(r, 1), /\/usr\/local\/bin\s+k3s-1\.32\.0/);
        });

        it("an OS whose command line panics falls back to passive once its tries run out; the node still runs what it had", () => {
            assert.match(step(reports.upgraded, 2), /exit=0/);
            const r = reports.fallback;
            assert.equal(r.facts.profile, "passive");
            assert.match(r.facts.cmdline, /kairos\.test\.os=2/);
            assert.equal(r.facts.unlock, "unlocked", r.sections.unlock);
            assert.equal(r.facts["loader-entry"], "passive.conf");
            const s = step(r, 1);
            assert.match(s, /active\+0-3\.conf/, "the panicking entry used its three tries");
            assert.equal(r.facts["active.efi-sha256"], sha.panic);
            assert.equal(r.facts["passive.efi-sha256"], sha.os2);
            assert.match(s, /k3s version v1\.32\.0\+k3s1/, "k3s is enabled in common/: the fallback merges it too");
        });
    });
});

// The README's main command, as a new user runs it (in a temp output folder): the first run builds,
// installs the ISO onto a virtual disk and boots that disk, showing the installed node unlock its
// persistent partition with the TPM, merge k3s and run it; the second builds nothing and says so
// (KAIROS_DEMO_BOOT=0: that run is about the no-op, and the boot is proven by the first); the third runs
// after the output folder (the demo's Pulumi project folder, state included) moved elsewhere, as it does
// with a moved checkout, and still builds nothing and writes no file (issue 22).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { sha256File } from "../../provider/toolkit/files";
import { tempDir } from "../helpers/engine";

/**
 * Every file the demo keeps in its folder, with its sha256 and mtime; not the Pulumi state (each `up`
 * records a new checkpoint) nor Pulumi.yaml (the Automation API writes it on every run; it names the
 * state backend, which is where the folder is now).
 */
async function demoFiles(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const rel of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
        if (rel === ".state" || rel.startsWith(`.state${path.sep}`) || rel === "Pulumi.yaml") continue;
        const st = fs.lstatSync(path.join(dir, rel));
        if (st.isFile()) out[rel] = `${await sha256File(path.join(dir, rel))} ${st.mtimeMs}`;
    }
    return out;
}

const REPO = path.resolve(__dirname, "..", "..");

describe("npm run demo (scripts/run-demo.sh)", function () {
    // a build and two boots (install, installed node), each boot allowed 600 s by the demo
    this.timeout(1800000);
    let out: string;
    const demo = (env: Record<string, string> = {}) => run(["bash", path.join(REPO, "scripts", "run-demo.sh")], { env: { KAIROS_DEMO_OUT: out, ...env }, timeoutMs: 1740000 });

    before(() => (out = tempDir("demo")));

    it("builds keys, k3s (from its Dockerfile) + a confext, the UKI and the ISO; the ISO installs itself, and the installed node unlocks its disk with the TPM, merges k3s and runs it", async () => {
        const { stdout } = await demo();
        assert.match(stdout, /demo: 7 create in/);
        assert.match(stdout, /KairosUkiImage pulumi-kairos-demo-uki: created \(new\)/);
        // k3s comes from examples/k3s-sysext/Dockerfile, built by the demo's buildkitd from scratch
        assert.match(stdout, /SystemExtension k3s: BuildKit at unix:\/\/\S+buildkitd\.sock: 5 steps, 0 from its cache/);
        assert.match(stdout, /keys enrolled by systemd-boot: yes/);
        assert.match(stdout, /kairos-install: done/);
        assert.match(stdout, /Secure Boot in the guest: enabled; systemd 257, kernel \S+; booted entry active/);
        assert.match(stdout, /persistent partition \(LUKS2\): unlocked by the TPM with the UKI's signed PCR 11 policy, no passphrase/);
        assert.match(stdout, /PCR 11 at unlock ([0-9a-f]{64})\n\s+signed for phase enter-initrd \1 -> equal/);
        assert.match(stdout, /\$ sudo -i; systemd-sysext status\n\s+HIERARCHY\s+EXTENSIONS\s+SINCE\n(.*\n)*\s+\/usr\/local\/bin\s+k3s\s/);
        assert.match(stdout, /\$ systemd-confext status\n(.*\n)*\s+\/etc\s+demo-motd\s/);
        assert.match(stdout, /k3s\.service - Lightweight Kubernetes \(from the k3s system extension\)\n\s+Loaded: loaded \(\/usr\/local\/lib\/systemd\/system\/k3s\.service; enabled;.*\n\s+Active: active \(running\)/);
        assert.match(stdout, /k3s\.service: active\/enabled; cloud-config boot stage: 2 commands, 0 failed/);
        assert.match(stdout, /PCR 13 \(extensions\) predicted ([0-9a-f]{64})\n\s+measured\s+\1 -> equal/);
        const outputs = JSON.parse(fs.readFileSync(path.join(out, "outputs.json"), "utf8"));
        // relative to the demo's project folder (the output folder): the state names no folder of this machine
        assert.strictEqual(outputs.iso.path, path.join("media", "kairos-demo.iso"));
        assert.ok(fs.existsSync(path.join(out, outputs.iso.path)));
        assert.deepStrictEqual(outputs.extensions.map((e: { path: string }) => path.basename(e.path)).sort(), ["demo-motd.confext.raw", "k3s.sysext.raw"]);
        assert.deepStrictEqual(outputs.pcr13.extensions, ["k3s.sysext.raw"]);
        assert.strictEqual(outputs.ukis[0].fileName, "norole");
    });

    it("a second run builds nothing and says so", async () => {
        const { stdout } = await demo({ KAIROS_DEMO_BOOT: "0" });
        assert.match(stdout, /demo: no changes/);
        assert.doesNotMatch(stdout, /: (created|updated|restored)/);
    });

    it("moved to another folder, a run still says no changes and touches no file; the state names no folder of the first place", async () => {
        const files = await demoFiles(out);
        assert.ok(Object.keys(files).length > 100, `${Object.keys(files).length} files`);
        const outputs = fs.readFileSync(path.join(out, "outputs.json"), "utf8");
        const first = out;
        out = `${first}-moved`;
        fs.renameSync(first, out);
        const { stdout } = await demo({ KAIROS_DEMO_BOOT: "0" });
        assert.match(stdout, /demo: no changes/, stdout);
        assert.doesNotMatch(stdout, /: (created|updated|restored|moved|re-signed|fetched) \(/);
        assert.deepStrictEqual(await demoFiles(out), files);
        assert.strictEqual(fs.readFileSync(path.join(out, "outputs.json"), "utf8"), outputs);
        assert.ok(!fs.existsSync(first), "nothing was made at the first place");
        const stacks = path.join(out, ".state", ".pulumi", "stacks");
        const stateFiles = (fs.readdirSync(stacks, { recursive: true }) as string[]).filter((f) => f.endsWith(".json"));
        assert.ok(stateFiles.length > 0);
        for (const f of stateFiles) assert.ok(!fs.readFileSync(path.join(stacks, f), "utf8").includes(first), `${f} names ${first}`);
    });
});

// The README's main command, as a new user runs it (in a temp output folder): the first run builds,
// boots the ISO and shows the guest merging k3s and running it; the second builds nothing and says so
// (KAIROS_DEMO_BOOT=0: that run is about the no-op, and the boot is proven by the first).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/engine";

const REPO = path.resolve(__dirname, "..", "..");

describe("npm run demo (scripts/run-demo.sh)", function () {
    this.timeout(900000);
    let out: string;
    const demo = (env: Record<string, string> = {}) => run(["bash", path.join(REPO, "scripts", "run-demo.sh")], { env: { KAIROS_DEMO_OUT: out, ...env }, timeoutMs: 840000 });

    before(() => (out = tempDir("demo")));

    it("builds keys, k3s + a confext, the UKI and the ISO; the booted guest merges k3s and runs it", async () => {
        const { stdout } = await demo();
        assert.match(stdout, /demo: 7 create in/);
        assert.match(stdout, /KairosUkiImage pulumi-kairos-demo-uki: created \(new\)/);
        assert.match(stdout, /keys enrolled by systemd-boot: yes/);
        assert.match(stdout, /Secure Boot in the guest: enabled; systemd 257/);
        assert.match(stdout, /\$ systemd-sysext status\n\s+HIERARCHY\s+EXTENSIONS\s+SINCE\n(.*\n)*\s+\/usr\s+k3s\s/);
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
});

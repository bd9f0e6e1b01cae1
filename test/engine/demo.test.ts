// The README's main command, as a new user runs it (in a temp output folder): the first run builds
// and boots, the second builds nothing and says so.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/engine";

const REPO = path.resolve(__dirname, "..", "..");

describe("npm run demo (scripts/run-demo.sh)", function () {
    this.timeout(600000);
    let out: string;
    const demo = () => run(["bash", path.join(REPO, "scripts", "run-demo.sh")], { env: { KAIROS_DEMO_OUT: out }, timeoutMs: 540000 });

    before(() => (out = tempDir("demo")));

    it("builds keys, two extensions, the UKI and the ISO, writes outputs.json, and the ISO boots with Secure Boot", async () => {
        const { stdout } = await demo();
        assert.match(stdout, /demo: 7 create in/);
        assert.match(stdout, /KairosUkiImage pulumi-kairos-demo-uki: created \(new\)/);
        assert.match(stdout, /keys enrolled by systemd-boot: yes/);
        assert.match(stdout, /marker: KAIROS-TEST-OS-BOOTED sb=enabled/);
        const outputs = JSON.parse(fs.readFileSync(path.join(out, "outputs.json"), "utf8"));
        assert.strictEqual(outputs.iso.path, path.join(out, "media", "kairos-demo.iso"));
        assert.ok(fs.existsSync(outputs.iso.path));
        assert.deepStrictEqual(outputs.extensions.map((e: { path: string }) => path.basename(e.path)).sort(), ["demo-motd.confext.raw", "kairos-hello.sysext.raw"]);
        assert.strictEqual(outputs.ukis[0].fileName, "norole");
    });

    it("a second run builds nothing and says so", async () => {
        const { stdout } = await demo();
        assert.match(stdout, /demo: no changes/);
        assert.doesNotMatch(stdout, /: (created|updated|restored)/);
        assert.match(stdout, /marker: KAIROS-TEST-OS-BOOTED sb=enabled/);
    });
});

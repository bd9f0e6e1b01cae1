// `pulumi-kairos doctor` against this machine's real tools, and against a PATH that lacks most of them.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { examine, findOnPath, formatReport } from "../../provider/doctor";
import { resourceTools } from "../../provider/toolkit/tools";
import { tempDir } from "../helpers/temp";
import "../helpers/oras-path"; // the set-up's oras, as the test runner puts it on PATH
import "../helpers/buildkit-path"; // and its buildctl

describe("pulumi-kairos doctor", () => {
    it("finds every tool the resources run on this machine, with its version", async () => {
        const report = await examine();
        assert.deepEqual(report.missingRequired, []);
        assert.deepEqual(report.tools.map((t) => t.name).sort(), resourceTools().map(([n]) => n).sort());
        for (const t of report.tools) {
            assert.ok(t.path && path.isAbsolute(t.path), `${t.name} found`);
            // mkfs.erofs 1.5 has no version option
            if (t.name !== "mkfs.erofs") assert.match(t.version ?? "", /^\d+\.\d+/, `${t.name} reports a version`);
        }
        const text = formatReport(report);
        assert.match(text, /openssl\s+ok\s+3\.\d+\.\d+\s+\/usr\/bin\/openssl/);
        assert.match(text, /every tool the resources always need is here/);
    });

    it("with most tools absent, names each missing one with its Debian and Fedora package", async () => {
        const bin = tempDir("doctor-path");
        fs.symlinkSync(findOnPath("openssl")!, path.join(bin, "openssl"));
        const report = await examine(bin);
        assert.ok(!report.missingRequired.includes("openssl"));
        assert.ok(report.missingRequired.includes("mkfs.erofs") && report.missingRequired.includes("sbsign") && report.missingRequired.includes("xorriso"), report.missingRequired.join(","));
        assert.ok(!report.missingRequired.includes("skopeo"), "skopeo is needed only for registry sources");
        const text = formatReport(report);
        assert.match(text, /veritysetup\s+MISSING\s+apt-get install cryptsetup-bin\s+\|\s+dnf install cryptsetup/);
        assert.match(text, /sbsign\s+MISSING\s+apt-get install sbsigntool\s+\|\s+dnf install sbsigntools/);
        assert.match(text, /^missing: .*mkfs\.erofs/m);
        // no distribution packages BuildKit: the advice says where buildctl comes from
        assert.match(text, /buildctl\s+MISSING\s+take buildctl from BuildKit's releases \(github\.com\/moby\/buildkit\), or build it from its Go module as scripts\/build-buildkit\.sh does/);
    });
});

// The systemd test OS's stand-ins that run in the guest, checked on the host: the boot stage's
// cloud-config reader (the same awk program, run by Debian's mawk as in the guest) and the parser of
// the report the guest writes on the serial port.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/engine";
import { IMAGE_POLICY, SYSTEMD_REPORT_BEGIN, SYSTEMD_REPORT_END, bootStageAwkProgram, guestFile, guestFiles, parseSystemdReport } from "../../scripts/lib/systemd-test-os";
import { DEMO_CLOUD_CONFIG } from "../../examples/offline-demo/payloads";

describe("systemd test OS stand-ins", () => {
    let work: string;
    before(() => (work = tempDir("systemd-test-os")));

    async function bootCommands(yaml: string): Promise<string[]> {
        const program = path.join(work, "boot-stage.awk");
        const config = path.join(work, "config.yaml");
        fs.writeFileSync(program, bootStageAwkProgram());
        fs.writeFileSync(config, yaml);
        const { stdout } = await run(["mawk", "-f", program, config]);
        return stdout.split("\n").filter((l) => l !== "");
    }

    it("the boot stage runs exactly the commands of stages.boot, in order (the demo's cloud-config)", async () => {
        assert.deepEqual(await bootCommands(DEMO_CLOUD_CONFIG), ["systemctl enable k3s", "systemctl start k3s"]);
    });

    it("reads quoted commands, lists at the key's indent and several entries; ignores other stages and keys", async () => {
        const yaml = [
            "#cloud-config",
            "users:",
            "  - name: kairos",
            "stages:",
            "  initramfs:",
            "    - commands:",
            "        - echo not-boot",
            "  boot:",
            "    - name: one",
            "      commands:",
            '        - "systemctl start a"',
            "        - echo 'quoted inside'",
            "    - commands:",
            "      - echo same-indent",
            "      name: two",
            "  network:",
            "    - commands:",
            "        - echo network",
            "",
        ].join("\n");
        assert.deepEqual(await bootCommands(yaml), ["systemctl start a", "echo 'quoted inside'", "echo same-indent"]);
    });

    it("every guest shell script parses (dash -n, the guest's /bin/sh) and every placeholder is filled", async () => {
        const files = guestFiles();
        assert.ok(files.includes("usr/lib/kairos-test/report") && files.includes("usr/bin/immucore"), files.join(", "));
        for (const rel of files) {
            const text = guestFile(rel);
            assert.doesNotMatch(text, /@[A-Z_]+@/, rel);
            if (!text.startsWith("#!/bin/sh")) continue;
            const copy = path.join(work, rel.replace(/\//g, "_"));
            fs.writeFileSync(copy, text);
            await run(["dash", "-n", copy]);
        }
        assert.match(guestFile("etc/systemd/system/systemd-sysext.service.d/10-kairos.conf"), new RegExp(`^ExecStart=systemd-sysext refresh --image-policy=${IMAGE_POLICY.replace(/\+/g, "\\+")}$`, "m"));
        assert.match(guestFile("usr/lib/kairos-test/report"), new RegExp(`echo "${SYSTEMD_REPORT_END}"`));
    });

    it("parses the guest's report into facts and sections; no report without both markers", () => {
        const log = `noise\n${SYSTEMD_REPORT_BEGIN}\n\n### facts\nsb=enabled\nservice k3s=active\ncmdline=a=b c\n\n### systemd-sysext status\nHIERARCHY EXTENSIONS SINCE\n/usr      k3s        now\n\n${SYSTEMD_REPORT_END}\nmore`;
        const r = parseSystemdReport(log)!;
        assert.deepEqual(r.facts, { sb: "enabled", "service k3s": "active", cmdline: "a=b c" });
        assert.equal(r.sections["systemd-sysext status"], "HIERARCHY EXTENSIONS SINCE\n/usr      k3s        now");
        assert.equal(parseSystemdReport(`${SYSTEMD_REPORT_BEGIN}\n### facts\nsb=enabled\n`), undefined);
    });
});

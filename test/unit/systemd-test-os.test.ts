// The systemd test OS's stand-ins that run in the guest, checked on the host: the boot stage's
// cloud-config reader (the same awk program, run by Debian's mawk as in the guest), the install
// block reader, live-or-installed from the loader's variable, the ExtractCerts stand-in over
// efivarfs-shaped files, and the parser of the report the guest writes on the serial port.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/engine";
import {
    IMAGE_POLICY, SYSEXT_HIERARCHIES, SYSTEMD_REPORT_BEGIN, SYSTEMD_REPORT_END, autoInstallConfig, bootStageAwkProgram, buildSystemdTestOsRootfs, guestFile, guestFiles,
    parseSystemdReport, systemdTestOsFingerprint,
} from "../../scripts/lib/systemd-test-os";
import { DEMO_CLOUD_CONFIG } from "../../examples/offline-demo/payloads";
import { GUEST_FORWARD_ADDR, fwCfgArgs, networkArgs, qemuArgs } from "../../scripts/lib/qemu";

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
            // scripts, and the stand-ins' shared file that they source (usr/lib/kairos-test/mode)
            if (!text.startsWith("#!/bin/sh") && !rel.startsWith("usr/lib/kairos-test/")) continue;
            // a script is run by its path (a step calls kairos-agent): git must carry its executable bit
            if (text.startsWith("#!")) assert.ok(fs.statSync(path.join(__dirname, "../../scripts/lib/systemd-test-os/guest", rel)).mode & 0o100, `${rel} is not executable`);
            const copy = path.join(work, rel.replace(/\//g, "_"));
            fs.writeFileSync(copy, text);
            await run(["dash", "-n", copy]);
        }
        assert.match(guestFile("etc/systemd/system/systemd-sysext.service.d/10-kairos.conf"), new RegExp(`^ExecStart=systemd-sysext refresh --image-policy=${IMAGE_POLICY.replace(/\+/g, "\\+")}$`, "m"));
        assert.match(guestFile("usr/lib/kairos-test/report"), new RegExp(`echo "${SYSTEMD_REPORT_END}"`));
        // the installed-node page carries the demo's real output, not a template marker
        assert.doesNotMatch(fs.readFileSync(path.join(__dirname, "..", "..", "docs", "installed-node.md"), "utf8"), /@[A-Z_]+@/);
    });

    it("parses the guest's report into facts and sections; no report without both markers", () => {
        const log = `noise\n${SYSTEMD_REPORT_BEGIN}\n\n### facts\nsb=enabled\nservice k3s=active\ncmdline=a=b c\n\n### systemd-sysext status\nHIERARCHY EXTENSIONS SINCE\n/usr      k3s        now\n\n${SYSTEMD_REPORT_END}\nmore`;
        const r = parseSystemdReport(log)!;
        assert.deepEqual(r.facts, { sb: "enabled", "service k3s": "active", cmdline: "a=b c" });
        assert.equal(r.sections["systemd-sysext status"], "HIERARCHY EXTENSIONS SINCE\n/usr      k3s        now");
        assert.equal(parseSystemdReport(`${SYSTEMD_REPORT_BEGIN}\n### facts\nsb=enabled\n`), undefined);
    });

    /** A guest script written out with its placeholders filled, runnable by the host's dash. */
    function guestScript(rel: string): string {
        const file = path.join(work, rel.replace(/\//g, "_"));
        fs.writeFileSync(file, guestFile(rel), { mode: 0o755 });
        return file;
    }

    it("reads the install block: auto and device, quoted or not; nothing from other blocks", async () => {
        const config = path.join(work, "install.yaml");
        const read = async (key: string) => (await run(["dash", guestScript("usr/lib/kairos-test/install-config"), key, config])).stdout.trim();
        fs.writeFileSync(config, `${autoInstallConfig("/dev/sdb")}stages:\n  boot:\n    - commands:\n        - "device: x"\n`);
        assert.equal(await read("auto"), "true");
        assert.equal(await read("device"), "/dev/sdb");
        fs.writeFileSync(config, `users:\n  auto: true\ninstall:\n  # comment\n  device: "/dev/vdb"\n`);
        assert.equal(await read("auto"), "");
        assert.equal(await read("device"), "/dev/vdb");
    });

    it("tells live from installed by the entry systemd-boot started (LoaderEntrySelected, UTF-16), boot counters included", async () => {
        const vars = path.join(work, "loader-vars");
        fs.mkdirSync(vars, { recursive: true });
        const mode = async (entry: string | undefined) => {
            const file = path.join(vars, "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f");
            fs.rmSync(file, { force: true });
            if (entry !== undefined) fs.writeFileSync(file, Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from(`${entry}\0`, "utf16le")]));
            const script = `. ${guestScript("usr/lib/kairos-test/mode")}; echo "$KAIROS_MODE $KAIROS_PROFILE"`;
            return (await run(["dash", "-c", script], { env: { LOADER_VARS: vars } })).stdout.trim();
        };
        assert.equal(await mode("active.conf"), "installed active");
        assert.equal(await mode("passive+2-1.conf"), "installed passive");
        assert.equal(await mode("norole.conf"), "live norole");
        assert.equal(await mode(undefined), "live norole");
    });

    it("ExtractCerts: every X.509 entry of PK, KEK and db becomes /run/verity.d/<VAR><n>.crt; other entry types are skipped", async () => {
        const dir = path.join(work, "certs");
        fs.mkdirSync(dir, { recursive: true });
        const cert = async (name: string) => {
            const pem = path.join(dir, `${name}.pem`);
            await run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path.join(dir, `${name}.key`), "-out", pem, "-subj", `/CN=${name}`, "-days", "1"]);
            const esl = path.join(dir, `${name}.esl`);
            await run(["cert-to-efi-sig-list", pem, esl]);
            return { pem, esl: fs.readFileSync(esl) };
        };
        const [pk, kek, db1, db2] = [await cert("pk"), await cert("kek"), await cert("db1"), await cert("db2")];
        const hashList = path.join(dir, "hash.esl");
        fs.writeFileSync(path.join(dir, "blob"), "not a certificate");
        await run(["hash-to-efi-sig-list", path.join(dir, "blob"), hashList]);
        const efivars = path.join(work, "efivars");
        fs.mkdirSync(efivars, { recursive: true });
        const variable = (name: string, ...lists: Buffer[]) => fs.writeFileSync(path.join(efivars, name), Buffer.concat([Buffer.from([0x27, 0, 0, 0]), ...lists]));
        variable("PK-8be4df61-93ca-11d2-aa0d-00e098032b8c", pk.esl);
        variable("KEK-8be4df61-93ca-11d2-aa0d-00e098032b8c", kek.esl);
        variable("db-d719b2cb-3d3a-4596-a3bc-dad00e67656f", db1.esl, fs.readFileSync(hashList), db2.esl);
        const out = path.join(work, "verity.d");
        await run(["dash", guestScript("usr/lib/kairos-test/extract-certs")], { env: { EFIVARS: efivars, VERITY_DIR: out } });
        assert.deepEqual(fs.readdirSync(out).sort(), ["DB0.crt", "DB1.crt", "KEK0.crt", "PK0.crt"]);
        const der = async (pem: string) => {
            await run(["openssl", "x509", "-in", pem, "-outform", "DER", "-out", `${pem}.der`]);
            return fs.readFileSync(`${pem}.der`);
        };
        for (const [file, want] of [["PK0.crt", pk], ["KEK0.crt", kek], ["DB0.crt", db1], ["DB1.crt", db2]] as const) {
            assert.deepEqual(await der(path.join(out, file)), await der(want.pem), file);
            assert.equal(fs.statSync(path.join(out, file)).mode & 0o777, 0o644);
        }
        // a list that claims more bytes than the variable holds is refused, not read past its end
        variable("KEK-8be4df61-93ca-11d2-aa0d-00e098032b8c", kek.esl.subarray(0, kek.esl.length - 10));
        await assert.rejects(run(["dash", guestScript("usr/lib/kairos-test/extract-certs")], { env: { EFIVARS: efivars, VERITY_DIR: out } }), /overruns/);
    });

    it("the sysext drop-in and the login profile carry Kairos' hierarchy list", () => {
        const list = SYSEXT_HIERARCHIES.join(":");
        assert.equal(list, "/usr/local/bin:/usr/local/sbin:/usr/local/include:/usr/local/lib:/usr/local/share:/usr/local/src:/usr/bin:/usr/share:/usr/lib:/usr/include:/usr/src:/usr/sbin");
        assert.match(guestFile("etc/systemd/system/systemd-sysext.service.d/10-kairos.conf"), new RegExp(`^Environment=SYSTEMD_SYSEXT_HIERARCHIES=${list}$`, "m"));
        assert.match(guestFile("etc/profile.d/systemd-sysext.sh"), new RegExp(`^export SYSTEMD_SYSEXT_HIERARCHIES=${list}$`, "m"));
    });

    it("the test steps: run in order after the fw_cfg files are copied, each into the report as \"step <n>\"; `reboot` ends the list", async () => {
        const fwcfg = path.join(work, "fwcfg");
        const out = path.join(work, "steps-run");
        const vars = path.join(work, "steps-vars");
        for (const d of [fwcfg, vars]) fs.mkdirSync(d, { recursive: true });
        const file = (name: string, text: string) => {
            fs.mkdirSync(path.join(fwcfg, name), { recursive: true });
            fs.writeFileSync(path.join(fwcfg, name, "raw"), text);
        };
        file("steps", `echo one\n# a comment\nfalse\necho "$(cat ${out}/note)" >&2\nreboot\necho never\n`);
        file("note", "passed by fw_cfg\n");
        fs.writeFileSync(path.join(vars, "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from("active.conf\0", "utf16le")]));
        const lib = path.join(work, "steps-lib");
        fs.mkdirSync(lib, { recursive: true });
        for (const f of ["mode", "steps"]) fs.writeFileSync(path.join(lib, f), guestFile(`usr/lib/kairos-test/${f}`));
        const r = await run(["dash", path.join(lib, "steps")], { env: { KAIROS_TEST_FWCFG: fwcfg, KAIROS_TEST_RUN: out, KAIROS_AGENT_LIB: lib, LOADER_VARS: vars } });
        assert.match(r.stdout, /step 4: reboot requested, ending the list/);
        const step = (n: number) => fs.readFileSync(path.join(out, "step-output", String(n)), "utf8");
        assert.equal(step(1), "$ echo one\none\nexit=0\n");
        assert.equal(step(2), "$ false\nexit=1\n");
        assert.equal(step(3), `$ echo "$(cat ${out}/note)" >&2\npassed by fw_cfg\nexit=0\n`);
        assert.ok(!fs.existsSync(path.join(out, "step-output", "4")));
        assert.ok(fs.existsSync(path.join(out, "reboot-requested")));
        assert.equal(fs.readFileSync(path.join(out, "steps.count"), "utf8"), "4\n");
        // the report prints them as sections parseSystemdReport finds
        const report = guestFile("usr/lib/kairos-test/report");
        assert.match(report, /section "step \$f"/);
        assert.match(report, /echo "reboot-requested=/);
        assert.match(report, /section "loader entries"/);
        const parsed = parseSystemdReport(`${SYSTEMD_REPORT_BEGIN}\n### facts\nsteps=1\nactive.efi-sha256=ab\n\n### step 1\n${step(1)}\n### loader entries\nactive.conf\npassive+3.conf\n${SYSTEMD_REPORT_END}\n`)!;
        assert.equal(parsed.facts["active.efi-sha256"], "ab");
        assert.equal(parsed.sections["step 1"], "$ echo one\none\nexit=0");
        assert.equal(parsed.sections["loader entries"], "active.conf\npassive+3.conf");
    });

    it("qemu: the test network is restricted user networking with a guestfwd per registry on virtio-net; fw_cfg files under opt/org.pulumi-kairos/", () => {
        assert.deepEqual(networkArgs({ forwards: [{ guestPort: 5000, hostPort: 5000 }] }), [
            "-netdev", "user,id=net0,restrict=on,net=10.0.2.0/24,guestfwd=tcp:10.0.2.100:5000-tcp:127.0.0.1:5000", "-device", "virtio-net-pci,netdev=net0,romfile=,addr=0x10",
        ]);
        assert.deepEqual(fwCfgArgs({ steps: "/tmp/s" }), ["-fw_cfg", "name=opt/org.pulumi-kairos/steps,file=/tmp/s"]);
        assert.throws(() => fwCfgArgs({ "a/b": "/tmp/s" }), /fw_cfg name/);
        assert.throws(() => fwCfgArgs({ x: "/tmp/a,b" }), /comma/);
        const args = qemuArgs({ media: "d.img", as: "disk", vars: "v.fd" });
        assert.ok(!args.some((a) => a.startsWith("-netdev") || a === "-fw_cfg"), "no NIC unless asked");
        // the guest's static address is on the forward's network
        assert.match(guestFile("etc/systemd/network/10-kairos-test.network"), /^Address=10\.0\.2\.15\/24$/m);
        assert.equal(GUEST_FORWARD_ADDR, "10.0.2.100");
    });

    it("qemu: one virtual CPU on single-threaded TCG unless told otherwise, more on multi-threaded TCG; a bad count is refused", () => {
        const after = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
        const one = qemuArgs({ media: "d.img", as: "disk", vars: "v.fd" });
        assert.equal(after(one, "-smp"), "1");
        assert.equal(after(one, "-accel"), "tcg,thread=single");
        assert.equal(after(one, "-machine"), "q35,smm=on");
        const two = qemuArgs({ media: "d.img", as: "disk", vars: "v.fd", cpus: 2 });
        assert.equal(after(two, "-smp"), "2");
        assert.equal(after(two, "-accel"), "tcg,thread=multi");
        assert.throws(() => qemuArgs({ media: "d.img", as: "disk", vars: "v.fd", cpus: 0 }), /cpus must be a positive integer/);
    });

    it("the OS masks the first-boot jobs every initrd-rootfs boot would repeat, and loads no modules up front", async () => {
        const dir = tempDir("test-os-masks");
        try {
            await buildSystemdTestOsRootfs(dir);
            for (const unit of ["systemd-hwdb-update.service", "ldconfig.service", "serial-getty@ttyS0.service"]) {
                assert.equal(fs.readlinkSync(path.join(dir, "etc/systemd/system", unit)), "/dev/null", unit);
            }
            const modules = fs.readFileSync(path.join(dir, "etc/modules-load.d/kairos-test.conf"), "utf8").split("\n").filter((l) => l.trim() && !l.startsWith("#"));
            assert.deepEqual(modules, []);
            assert.match(await systemdTestOsFingerprint(), /^[0-9a-f]{64}$/);
            assert.equal(await systemdTestOsFingerprint(), await systemdTestOsFingerprint());
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

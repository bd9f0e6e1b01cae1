// Boot entry planning and the systemd-boot config texts, against AuroraBoot's naming rules and the
// examples in its tests, e2e tests and real builds.
import * as assert from "assert";
import {
    BootEntryError,
    DEFAULT_CMDLINE,
    UKI_CMDLINE,
    loaderEntryFileName,
    nameFromCmdline,
    parseSingleEntry,
    planBootEntries,
    renderLoaderConf,
    renderLoaderEntry,
} from "../../../provider/toolkit/boot/boot-entries";

describe("boot entries", () => {
    it("uses AuroraBoot's exact default command line", () => {
        assert.strictEqual(
            DEFAULT_CMDLINE,
            "console=ttyS0 console=tty1 net.ifnames=1 rd.immucore.oemlabel=COS_OEM rd.immucore.oemtimeout=2 rd.immucore.uki selinux=0 panic=5 rd.shell=0 systemd.crash_reboot=yes install-mode",
        );
    });

    it("plans one norole entry by default", () => {
        const entries = planBootEntries({ bootTitle: "Kairos" });
        assert.deepStrictEqual(entries, [{ fileName: "norole", cmdline: DEFAULT_CMDLINE, title: "Kairos", sortKey: "norole", extraCmdline: "" }]);
    });

    it("extends the one norole entry and keeps its name", () => {
        const entries = planBootEntries({ bootTitle: "Kairos", extendCmdline: "rd.debug  rd.immucore.debug " });
        assert.strictEqual(entries.length, 1);
        assert.strictEqual(entries[0].fileName, "norole");
        assert.strictEqual(entries[0].cmdline, `${DEFAULT_CMDLINE} rd.debug rd.immucore.debug`);
        assert.strictEqual(entries[0].extraCmdline, "install-mode rd.debug rd.immucore.debug");
    });

    it("names extra entries as AuroraBoot's code does (the install-mode word stays in the name)", () => {
        // GetUkiCmdline passes default+" "+extra to NameFromCmdline, which strips UkiCmdline only. The
        // reference's example "norole_rd.debug_rd.immucore.debug" drops install-mode; AuroraBoot's code and real
        // builds (norole_install-mode_stylus.registration.efi) keep it.
        const entries = planBootEntries({ bootTitle: "Kairos", extraCmdlines: ["rd.debug rd.immucore.debug", "a=b&c|d  e/f"] });
        assert.deepStrictEqual(
            entries.map((e) => `${e.fileName}.efi`),
            ["norole.efi", "norole_install-mode_rd.debug_rd.immucore.debug.efi", "norole_install-mode_a_b_c_d_e_f.efi"],
        );
        assert.ok(entries.every((e) => e.title === "Kairos"));
        assert.strictEqual(entries[1].cmdline, `${DEFAULT_CMDLINE} rd.debug rd.immucore.debug`);
        // the reference's example is what NameFromCmdline gives for a command line without install-mode
        assert.strictEqual(nameFromCmdline("norole", `${UKI_CMDLINE} rd.debug rd.immucore.debug`), "norole_rd.debug_rd.immucore.debug");
        assert.strictEqual(nameFromCmdline("norole", `${DEFAULT_CMDLINE} Stylus.Registration`), "norole_install-mode_stylus.registration");
        assert.strictEqual(nameFromCmdline("norole", DEFAULT_CMDLINE), "norole");
    });

    it("names single entries as the e2e test expects", () => {
        const entries = planBootEntries({
            bootTitle: "Kairos",
            singleEntries: [parseSingleEntry("My Entry: key=value"), parseSingleEntry("My Other Entry: other=value"), parseSingleEntry("rd.debug x=1")],
        });
        assert.deepStrictEqual(entries.map((e) => e.fileName), ["norole", "my_entry", "my_other_entry", "single_entry_rd.debug_x_1"]);
        assert.strictEqual(entries[1].title, "Kairos (My Entry)");
        assert.strictEqual(entries[1].cmdline, `${DEFAULT_CMDLINE} key=value`);
        assert.strictEqual(entries[3].title, "Kairos");
        assert.deepStrictEqual(parseSingleEntry("T: a:b"), { title: "T", cmdline: " a:b" });
    });

    it("refuses extend with extra, unsafe single-entry names and duplicate file names", () => {
        assert.throws(() => planBootEntries({ bootTitle: "K", extendCmdline: "a", extraCmdlines: ["b"] }), /cannot be combined/);
        assert.throws(() => planBootEntries({ bootTitle: "K", singleEntries: [{ title: "a/b", cmdline: "x" }] }), BootEntryError);
        assert.throws(() => planBootEntries({ bootTitle: "K", singleEntries: [{ title: "Norole", cmdline: "x" }] }), /both be written as norole.efi/);
        assert.throws(() => planBootEntries({ bootTitle: "K", extraCmdlines: ["a b", "a  b"] }), /both be written/);
        assert.throws(() => planBootEntries({ bootTitle: "K", extraCmdlines: ["a\nb"] }), /line break/);
    });

    it("renders loader entries with the uki key (AuroraBoot) or the efi key (systemd-boot 252)", () => {
        const [norole, debug] = planBootEntries({ bootTitle: "Kairos", extraCmdlines: ["rd.debug"] });
        assert.strictEqual(renderLoaderEntry(norole), "title Kairos\nsort-key norole-0\nuki /EFI/kairos/norole.efi\nprofile 0\n");
        assert.strictEqual(
            renderLoaderEntry(debug, { version: "v3.4.2", includeCmdline: true }),
            "title Kairos\nsort-key norole_install-mode_rd.debug-0\nuki /EFI/kairos/norole_install-mode_rd.debug.efi\nprofile 0\nversion v3.4.2\ncmdline install-mode rd.debug\n",
        );
        assert.strictEqual(renderLoaderEntry(norole, { key: "efi" }), "title Kairos\nsort-key norole\nefi /EFI/kairos/norole.efi\n");
        assert.strictEqual(renderLoaderEntry(norole, { key: "efi", includeCmdline: true }), "title Kairos\nsort-key norole\nefi /EFI/kairos/norole.efi\ncmdline\n");
        assert.strictEqual(loaderEntryFileName(debug), "norole_install-mode_rd.debug.conf");
        assert.strictEqual(loaderEntryFileName(debug, 2), "norole_install-mode_rd.debug-profile2.conf");
        assert.throws(() => renderLoaderEntry(norole, { key: "linux" as never }), /uki' or 'efi/);
    });

    it("renders loader.conf like AuroraBoot and refuses if-safe for systemd-boot 252", () => {
        assert.strictEqual(renderLoaderConf(), "timeout 5\nconsole-mode max\neditor no\nsecure-boot-enroll if-safe\n");
        assert.strictEqual(
            renderLoaderConf({ timeout: 0, secureBootEnroll: "force", consoleMode: "keep", editor: true, systemdBootMajor: 252 }),
            "timeout 0\nconsole-mode keep\neditor yes\nsecure-boot-enroll force\n",
        );
        assert.throws(() => renderLoaderConf({ systemdBootMajor: 252 }), /if-safe/);
        assert.throws(() => renderLoaderConf({ secureBootEnroll: "always" as never }), /not one of/);
        assert.throws(() => renderLoaderConf({ timeout: -1 }), /timeout/);
    });
});

// KairosUkiImage and BootMedia handlers called directly, on the test OS rootfs (no boot here: the
// firmware tests are in test/boot).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { kairosUkiImageHandler as uki } from "../../provider/kairos-uki-image";
import { kairosUkiImageMoves } from "../../provider/kairos-uki-image/moves";
import { withMoves } from "../../provider/artifact-move";
import { withLogSink } from "../../provider/build-log";
import { bootMediaHandler as media } from "../../provider/boot-media";
import { systemExtensionHandler } from "../../provider/system-extension";
import { predictPcr13 } from "../../provider/toolkit/boot/pcr13";
import { run } from "../../provider/toolkit/run";
import { tempDir } from "../helpers/engine";
import { createVia } from "../helpers/handlers";
import { ukiTestBed } from "../helpers/uki-test-bed";
import { makeCertificate } from "../helpers/pki";
import { cacheRoot } from "../../provider/toolkit/file-identity";

describe("KairosUkiImage and BootMedia handlers", function () {
    this.timeout(300000);
    let work: string;
    let rootfs: string;
    let keys: any;
    let base: Record<string, unknown>;

    before(async () => ({ work, rootfs, keys, base } = await ukiTestBed("uki-provider")));

    it("makes norole.efi plus one UKI per extra command line and per single entry, each with its loader entry", async () => {
        const outs = await createVia(uki, { ...base, outputDir: path.join(work, "a"), extraCmdlines: ["rd.debug"], singleEntries: [{ title: "Reset Node", cmdline: "kairos.reset" }] });
        assert.deepStrictEqual(outs.ukis.map((u: any) => u.fileName), ["norole", "norole_install-mode_rd.debug", "reset_node"]);
        assert.deepStrictEqual(fs.readdirSync(path.join(work, "a")).sort(), [".kairos-uki-image", "BOOTX64.EFI", "entries", "norole.efi", "norole_install-mode_rd.debug.efi", "reset_node.efi"]);
        assert.strictEqual(outs.ukis[2].title, "Kairos (Reset Node)");
        assert.match(outs.ukis[1].cmdline, / install-mode rd\.debug$/);
        const entry = fs.readFileSync(outs.ukis[0].entryPath, "utf8");
        assert.match(entry, /^title Kairos\nsort-key norole\nefi \/EFI\/kairos\/norole\.efi\n/);
        for (const u of outs.ukis) await run(["sbverify", "--cert", keys.files.db.pem, u.path]);
        await run(["sbverify", "--cert", keys.files.db.pem, outs.systemdBoot.path]);
        assert.strictEqual(outs.kairosRelease, "v0.0.0-test");
        assert.deepStrictEqual(Object.keys(outs.pcr11.norole), ["stub", "enter-initrd", "enter-initrd:leave-initrd", "enter-initrd:leave-initrd:sysinit", "enter-initrd:leave-initrd:sysinit:ready"]);
    });

    it("is reproducible: a second clean build gives the same UKI bytes", async () => {
        const a = await createVia(uki, { ...base, outputDir: path.join(work, "r1") });
        const b = await createVia(uki, { ...base, outputDir: path.join(work, "r2") });
        assert.strictEqual(a.ukis[0].sha256, b.ukis[0].sha256);
        assert.strictEqual(a.systemdBoot.sha256, b.systemdBoot.sha256);
    });

    it("fails over maxUkiSizeMB, naming the largest contributors, and leaves the previous build", async () => {
        const out = path.join(work, "r1");
        const before = fs.readFileSync(path.join(out, "norole.efi"));
        const { inputs } = await uki.check({}, { ...base, outputDir: out, maxUkiSizeMB: 2 });
        await assert.rejects(uki.create(inputs), (e: Error) => {
            assert.match(e.message, /over maxUkiSizeMB \(2 MB\)/);
            assert.match(e.message, /\.linux \(kernel\): \d+\.\d MB/);
            assert.match(e.message, /Largest folders in the OS image .*:\n {2}\/usr\/bin: /);
            return true;
        });
        assert.ok(fs.readFileSync(path.join(out, "norole.efi")).equals(before));
    });

    it("refuses a source that is not a UKI-flavour Kairos image, listing every broken contract", async () => {
        const bad = path.join(work, "not-kairos");
        fs.cpSync(rootfs, bad, { recursive: true, verbatimSymlinks: true });
        fs.rmSync(path.join(bad, "etc", "kairos-release"));
        fs.writeFileSync(path.join(bad, "etc", "os-release"), 'NAME="Debian"\nKAIROS_RELEASE=v1\n');
        fs.rmSync(path.join(bad, "usr", "bin", "immucore"));
        const { inputs } = await uki.check({}, { ...base, outputDir: path.join(work, "bad"), source: { dir: bad } });
        await assert.rejects(uki.create(inputs), (e: Error) => {
            assert.match(e.message, /is not a usable Kairos rootfs/);
            assert.match(e.message, /KAIROS_RELEASE/);
            assert.match(e.message, /immucore/);
            return true;
        });
        assert.ok(!fs.existsSync(path.join(work, "bad")));
    });

    it("never takes over a folder with other files, and deletes only what it made", async () => {
        const shared = path.join(work, "shared");
        fs.mkdirSync(path.join(shared, "keys"), { recursive: true });
        fs.writeFileSync(path.join(shared, "keys", "db.key"), "precious");
        const { failures } = await uki.check({}, { ...base, outputDir: shared });
        assert.deepStrictEqual(failures?.map((f) => f.property), ["outputDir"]);
        const own = path.join(work, "own");
        const outs = await createVia(uki, { ...base, outputDir: own });
        fs.writeFileSync(path.join(own, "notes.txt"), "mine");
        const again = await uki.check(outs, { ...base, outputDir: own, bootTitle: "Changed" });
        await assert.rejects(uki.update!("id", outs, again.inputs), /holds files KairosUkiImage did not make \(notes\.txt\)/);
        await uki.delete!("id", outs);
        assert.deepStrictEqual(fs.readdirSync(own), ["notes.txt"]);
    });

    it("takes an OS folder with device nodes or FIFOs in dev/run/tmp (left out, as from the initrd); refuses them elsewhere", async () => {
        const os = path.join(work, "rootfs-with-fifos");
        await run(["cp", "-a", rootfs, os]);
        for (const d of ["dev", "run", "tmp"]) await run(["mkfifo", path.join(os, d, "fifo")]);
        const outs = await createVia(uki, { ...base, source: { dir: os }, outputDir: path.join(work, "fifo-ok") });
        assert.ok(fs.existsSync(outs.ukis[0].path));
        await run(["mkfifo", path.join(os, "etc", "fifo")]);
        const { inputs } = await uki.check({}, { ...base, source: { dir: os }, outputDir: path.join(work, "fifo-bad") });
        await assert.rejects(uki.create(inputs), /holds 1 device node\(s\), FIFO\(s\) or socket\(s\), which an image cannot carry: etc\/fifo/);
    });

    it("refuses extendCmdline together with extraCmdlines", async () => {
        const { failures } = await uki.check({}, { ...base, outputDir: path.join(work, "x"), extendCmdline: "a", extraCmdlines: ["b"] });
        assert.strictEqual(failures?.[0].property, "extendCmdline");
    });

    describe("BootMedia", () => {
        let built: any;
        let mediaBase: Record<string, unknown>;
        before(async () => {
            built = await createVia(uki, { ...base, outputDir: path.join(work, "m-uki") });
            mediaBase = {
                outputDir: path.join(work, "media"),
                uki: { efiFiles: built.ukis.map((u: any) => u.path), loaderEntries: built.ukis.map((u: any) => u.entryPath), systemdBoot: built.systemdBoot.path },
                enrollKeys: { PK: keys.files.PK.auth, KEK: keys.files.KEK.auth, db: keys.files.db.auth },
            };
        });

        it("KairosUkiImage moved with its folder: taken over only when each loader entry is what the inputs render", async () => {
            const moves = withMoves(uki, kairosUkiImageMoves);
            const copy = (name: string) => {
                const to = path.join(work, name);
                fs.cpSync(built.outputDir, to, { recursive: true });
                return to;
            };
            const intact = copy("m-uki-moved");
            const { inputs: atIntact, failures } = await uki.check(built, { ...base, outputDir: intact });
            assert.deepStrictEqual(failures ?? [], []);
            assert.deepStrictEqual((await withLogSink({ info: () => undefined, progress: () => undefined }, () => moves.diff("x", built, atIntact))).replaces, []);
            // the same UKIs, but an entry that boots them differently (an added kernel option): not the recorded artifact
            const altered = copy("m-uki-altered");
            const entry = path.join(altered, "entries", path.basename(built.ukis[0].entryPath));
            fs.writeFileSync(entry, fs.readFileSync(entry, "utf8").replace(/^(title .*)$/m, "$1\noptions init=/bin/sh"));
            const { inputs: atAltered } = await uki.check(built, { ...base, outputDir: altered });
            assert.deepStrictEqual((await moves.diff("x", built, atAltered)).replaces, ["outputDir"]);
            // its update (had the diff been passed) builds there instead of taking the altered entry over
            const rebuilt = (await withLogSink({ info: () => undefined, progress: () => undefined }, () => moves.update("x", built, atAltered))).outs!;
            assert.notStrictEqual(rebuilt.lastBuild.action, "moved");
            assert.strictEqual(fs.readFileSync(entry, "utf8"), fs.readFileSync(built.ukis[0].entryPath, "utf8"));
        });

        it("refuses secure-boot-enroll if-safe for a systemd-boot that does not know it", async () => {
            const { failures } = await media.check({}, { ...mediaBase, name: "m" });
            assert.strictEqual(failures?.length, 1);
            assert.strictEqual(failures![0].property, "secureBootEnroll");
            assert.match(failures![0].reason, /systemd-boot on these media is 252, which does not know "if-safe"/);
        });

        it("type dir writes the ESP tree with loader.conf and the enrolment keys", async () => {
            const outs = await createVia(media, { ...mediaBase, name: "esp", type: "dir", secureBootEnroll: "manual", timeout: 3 });
            assert.deepStrictEqual(outs.files, [
                "EFI/BOOT/BOOTX64.EFI", "EFI/kairos/norole.efi", "loader/entries/norole.conf", "loader/keys/auto/KEK.auth", "loader/keys/auto/PK.auth", "loader/keys/auto/db.auth", "loader/loader.conf",
            ]);
            assert.strictEqual(fs.readFileSync(path.join(outs.path, "loader", "loader.conf"), "utf8"), "timeout 3\nconsole-mode max\neditor no\nsecure-boot-enroll manual\n");
        });

        it("refuses overlay paths that would land outside the media, in preview and in the build itself", async () => {
            const extra = path.join(work, "extra.txt");
            fs.writeFileSync(extra, "extra\n");
            const hostile = { ...mediaBase, name: "hostile", type: "dir", secureBootEnroll: "force", overlayFiles: [{ source: extra, path: "../../escaped.txt" }, { source: extra, path: "/etc/escaped.txt" }] };
            const { failures } = await media.check({}, hostile);
            // the schema's pattern refuses the absolute one, the cross-field rule the climbing one: both in one report
            const byProperty = Object.fromEntries((failures ?? []).map((f) => [f.property, f.reason]));
            assert.deepStrictEqual(Object.keys(byProperty).sort(), ["overlayFiles[0].path", "overlayFiles[1].path"]);
            assert.match(byProperty["overlayFiles[0].path"], /"\.\.\/\.\.\/escaped\.txt" climbs out with '\.\.'/);
            assert.match(byProperty["overlayFiles[1].path"], /\/etc\/escaped\.txt/);
            // a build handed such a path anyway (check bypassed) refuses before copying: the path is part of
            // the input hash, so the checked copies no longer match it (and the copy loop refuses any path
            // outside the staging folder besides: isInside, test/unit/files.test.ts)
            const { inputs } = await media.check({}, { ...hostile, overlayFiles: [{ source: extra, path: "inside.txt" }] });
            await assert.rejects(media.create({ ...inputs, overlayFiles: [{ source: extra, path: "../../escaped.txt" }] }), /cloudConfig\/overlayFiles changed after the input hash was taken/);
            assert.ok(!fs.existsSync(path.join(work, "escaped.txt")) && !fs.existsSync(path.join(work, "media", "escaped.txt")));
            // a name that merely starts with two dots is inside: only a ".." component climbs out
            const dotted = await createVia(media, { ...hostile, name: "dotted", overlayFiles: [{ source: extra, path: "..notes.txt" }, { source: extra, path: "..d/x.txt" }] });
            assert.strictEqual(fs.readFileSync(path.join(dotted.path, "..notes.txt"), "utf8"), "extra\n");
            assert.ok(dotted.files.includes("..d/x.txt"), dotted.files.join(", "));
        });

        it("type dir never replaces a folder it did not make", async () => {
            const foreign = path.join(work, "media", "foreign");
            fs.mkdirSync(foreign, { recursive: true });
            fs.writeFileSync(path.join(foreign, "keep.txt"), "not ours\n");
            const { failures } = await media.check({}, { ...mediaBase, name: "foreign", type: "dir", secureBootEnroll: "force" });
            assert.strictEqual(failures?.[0]?.property, "name");
            assert.match(failures![0].reason, /foreign already exists and was not made by this BootMedia/);
            assert.strictEqual(fs.readFileSync(path.join(foreign, "keep.txt"), "utf8"), "not ours\n");
            // its own folder, on an update, is fine
            const own = { ...mediaBase, name: "own", type: "dir", secureBootEnroll: "force" };
            await createVia(media, own);
            assert.deepStrictEqual((await media.check(own, own)).failures ?? [], []);
        });

        it("type dir moved to another folder: only that media, moved there, is taken for its own; a folder it did not make is refused, move or not", async () => {
            const own = { ...mediaBase, name: "mine", type: "dir", secureBootEnroll: "force" };
            const { inputs: olds } = await media.check({}, own);
            const outs = (await media.create(olds)).outs;
            const moved = path.join(work, "media-moved");
            fs.mkdirSync(moved);
            fs.cpSync(outs.path, path.join(moved, "mine"), { recursive: true });
            // the recorded media, moved with its folder: accepted (the move then takes it over)
            assert.deepStrictEqual((await media.check(olds, { ...own, outputDir: moved })).failures ?? [], []);
            // the same place name holding someone else's files, under a new outputDir or a new name: refused
            const foreign = path.join(work, "media-foreign");
            fs.mkdirSync(path.join(foreign, "mine"), { recursive: true });
            fs.writeFileSync(path.join(foreign, "mine", "keep.txt"), "not ours\n");
            fs.mkdirSync(path.join(work, "media", "other"));
            fs.writeFileSync(path.join(work, "media", "other", "keep.txt"), "not ours\n");
            for (const news of [{ ...own, outputDir: foreign }, { ...own, name: "other" }]) {
                const { failures } = await media.check(olds, news);
                assert.strictEqual(failures?.length, 1, JSON.stringify(failures));
                assert.strictEqual(failures![0].property, "name");
                assert.match(failures![0].reason, /already exists and was not made by this BootMedia; type "dir" replaces its folder whole/);
            }
            // the moved media with one file added or one altered is not ours either
            fs.writeFileSync(path.join(moved, "mine", "extra.txt"), "added\n");
            assert.strictEqual((await media.check(olds, { ...own, outputDir: moved })).failures?.[0]?.property, "name");
            fs.rmSync(path.join(moved, "mine", "extra.txt"));
            fs.appendFileSync(path.join(moved, "mine", "loader", "loader.conf"), "editor yes\n");
            assert.strictEqual((await media.check(olds, { ...own, outputDir: moved })).failures?.[0]?.property, "name");
            assert.strictEqual(fs.readFileSync(path.join(foreign, "mine", "keep.txt"), "utf8"), "not ours\n");
            assert.strictEqual(fs.readFileSync(path.join(work, "media", "other", "keep.txt"), "utf8"), "not ours\n");
        });

        describe("with extensions", () => {
            let k3s: any;
            let motd: any;
            before(async () => {
                const ext = async (name: string, kind: string, rel: string) => {
                    const src = path.join(work, `src-${name}`);
                    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
                    fs.writeFileSync(path.join(src, rel), `${name}\n`);
                    return createVia(systemExtensionHandler, { name, kind, outputDir: path.join(work, "ext"), source: { dir: src }, signing: base.signing });
                };
                k3s = await ext("k3s", "sysext", "usr/local/bin/k3s");
                motd = await ext("motd", "confext", "etc/motd");
            });

            it("puts every extension next to every UKI on the ESP (systemd-stub's .extra.d) and at the ISO root", async () => {
                const outs = await createVia(media, { ...mediaBase, name: "ext", type: "dir", secureBootEnroll: "force", extensions: [k3s.path, motd.path] });
                for (const f of ["EFI/kairos/norole.efi.extra.d/k3s.sysext.raw", "EFI/kairos/norole.efi.extra.d/motd.confext.raw", "k3s.sysext.raw", "motd.confext.raw"]) {
                    assert.ok(outs.files.includes(f), `${f} in ${JSON.stringify(outs.files)}`);
                }
                assert.deepStrictEqual(fs.readFileSync(path.join(outs.path, "EFI/kairos/norole.efi.extra.d/k3s.sysext.raw")), fs.readFileSync(k3s.path));
                // this UKI runs Debian 12's systemd-stub 252, which loads the confext as a sysext too (257's leaves it to PCR 12)
                const both = [{ name: "k3s.sysext.raw", source: k3s.path }, { name: "motd.confext.raw", source: motd.path }];
                const expected = await predictPcr13(both, { stubMajor: 252 });
                assert.deepStrictEqual(outs.pcr13, { sha256: expected.values.sha256, sha1: expected.values.sha1, extensions: ["k3s.sysext.raw", "motd.confext.raw"] });
                assert.notStrictEqual(expected.values.sha256, (await predictPcr13(both, { stubMajor: 257 })).values.sha256);
            });

            it("espExtensions: false keeps them off the ESP; PCR 13 then stays zero", async () => {
                const outs = await createVia(media, { ...mediaBase, name: "iso-root-only", type: "dir", secureBootEnroll: "force", extensions: [k3s.path], espExtensions: false });
                assert.ok(!outs.files.some((f: string) => f.includes(".extra.d")), JSON.stringify(outs.files));
                assert.ok(outs.files.includes("k3s.sysext.raw"));
                assert.deepStrictEqual(outs.pcr13, { sha256: "0".repeat(64), sha1: "0".repeat(40), extensions: [] });
            });

            it("refuses an extension whose file name does not match the extension-release inside, before building", async () => {
                const renamed = path.join(work, "renamed", "k3s-v2.sysext.raw");
                fs.mkdirSync(path.dirname(renamed), { recursive: true });
                fs.copyFileSync(k3s.path, renamed);
                const { failures } = await media.check({}, { ...mediaBase, name: "misnamed", secureBootEnroll: "force", extensions: [renamed] });
                assert.strictEqual(failures?.length, 1, JSON.stringify(failures));
                assert.strictEqual(failures![0].property, "extensions[0]");
                assert.match(failures![0].reason, /k3s-v2\.sysext\.raw carries extension-release\.k3s; systemd merges k3s-v2\.sysext\.raw only with extension-release\.k3s-v2 inside: name the file k3s\.sysext\.raw/);
                assert.ok(!fs.existsSync(path.join(work, "media", "misnamed.iso")));
            });

            it("refuses a file that is not an extension image", async () => {
                const junk = path.join(work, "junk", "junk.sysext.raw");
                fs.mkdirSync(path.dirname(junk), { recursive: true });
                fs.writeFileSync(junk, Buffer.alloc(8192, 1));
                const { failures } = await media.check({}, { ...mediaBase, name: "junk", secureBootEnroll: "force", extensions: [junk] });
                assert.strictEqual(failures?.[0].property, "extensions[0]");
                assert.match(failures![0].reason, /junk\.sysext\.raw is not a signed extension image \(a DDI with root, verity and signature partitions\): .* has no readable partition table/);
            });

            describe("what the enrolled keys would not run or merge is refused, in preview and again in the build", () => {
                let stranger: { key: string; certificate: string };
                const strip = async (from: string, to: string) => {
                    fs.mkdirSync(path.dirname(to), { recursive: true });
                    fs.copyFileSync(from, to);
                    await run(["sbattach", "--remove", to]);
                    return to;
                };
                const refusal = async (news: Record<string, unknown>) => {
                    const { failures } = await media.check({}, { ...mediaBase, secureBootEnroll: "force", type: "dir", ...news });
                    assert.strictEqual(failures?.length, 1, JSON.stringify(failures));
                    return failures![0];
                };
                const ext = async (name: string, outDir: string, signing?: { key: string; certificate: string }) => {
                    const src = path.join(work, `src-${outDir}`);
                    fs.mkdirSync(path.join(src, "usr", "bin"), { recursive: true });
                    fs.writeFileSync(path.join(src, "usr", "bin", name), `${name}\n`);
                    return createVia(systemExtensionHandler, { name, outputDir: path.join(work, outDir), source: { dir: src }, ...(signing ? { signing } : {}) });
                };
                before(async () => {
                    stranger = await makeCertificate(work, "stranger-db");
                });

                it("a UKI signed by a key whose certificate is not in the enrolled db, naming the signer", async () => {
                    const foreign = path.join(work, "foreign-uki", "norole.efi");
                    await strip(built.ukis[0].path, `${foreign}.unsigned`);
                    await run(["sbsign", "--key", stranger.key, "--cert", stranger.certificate, "--output", foreign, `${foreign}.unsigned`]);
                    const f = await refusal({ name: "foreign-uki", uki: { ...(mediaBase.uki as object), efiFiles: [foreign] } });
                    assert.strictEqual(f.property, "uki.efiFiles[0]");
                    assert.match(f.reason, /norole\.efi is signed by CN=stranger-db, which is not in the enrolled db \(CN=uki-test-db\)/);
                });

                it("an unsigned UKI and an unsigned systemd-boot, each named", async () => {
                    const unsigned = await strip(built.ukis[0].path, path.join(work, "unsigned-uki", "norole.efi"));
                    const boot = await strip(built.systemdBoot.path, path.join(work, "unsigned-uki", "BOOTX64.EFI"));
                    const { failures } = await media.check({}, { ...mediaBase, name: "unsigned", secureBootEnroll: "force", uki: { ...(mediaBase.uki as object), efiFiles: [built.ukis[0].path, unsigned], systemdBoot: boot } });
                    assert.deepStrictEqual(failures!.map((x) => x.property), ["uki.efiFiles[1]", "uki.systemdBoot"]);
                    for (const x of failures!) assert.match(x.reason, /is not signed \(no Authenticode signature\); sign it with the db key/);
                });

                it("a private key handed over as a UKI (the last link of the exfiltration chain)", async () => {
                    const f = await refusal({ name: "key-as-uki", uki: { ...(mediaBase.uki as object), efiFiles: [built.ukis[0].path, keys.files.db.key] } });
                    assert.strictEqual(f.property, "uki.efiFiles[1]");
                    assert.match(f.reason, /db\.key holds a PEM block \(-----BEGIN PRIVATE KEY-----\), not a signed PE image; key material never goes on boot media/);
                    assert.ok(!f.reason.includes("MII"), "the key's bytes are not in the message");
                });

                it("a loader entry that is a PEM block, or not a .conf", async () => {
                    const pem = path.join(work, "pem-entry", "norole.conf");
                    fs.mkdirSync(path.dirname(pem), { recursive: true });
                    fs.copyFileSync(keys.files.db.key, pem);
                    const f = await refusal({ name: "pem-entry", uki: { ...(mediaBase.uki as object), loaderEntries: [pem] } });
                    assert.strictEqual(f.property, "uki.loaderEntries[0]");
                    assert.match(f.reason, /norole\.conf holds a PEM block, not a loader entry/);
                    const g = await refusal({ name: "pem-entry", uki: { ...(mediaBase.uki as object), loaderEntries: [keys.files.db.pem] } });
                    assert.match(g.reason, /db\.pem is not a loader entry: systemd-boot reads only loader\/entries\/\*\.conf/);
                });

                it("an unsigned extension, and one signed by a key that is not among PK, KEK and db, naming the signer", async () => {
                    const unsigned = await ext("tool", "ext-unsigned");
                    const foreign = await ext("tool", "ext-foreign", stranger);
                    const { failures } = await media.check({}, { ...mediaBase, name: "bad-ext", secureBootEnroll: "force", extensions: [k3s.path, unsigned.path, motd.path].map(String) });
                    assert.deepStrictEqual(failures!.map((x) => x.property), ["extensions[1]"]);
                    assert.match(failures![0].reason, /tool\.sysext\.raw is not signed \(no verity signature partition\); Kairos merges only extensions signed by a certificate in PK, KEK or db/);
                    const f = await refusal({ name: "bad-ext", extensions: [foreign.path] });
                    assert.strictEqual(f.property, "extensions[0]");
                    assert.match(f.reason, /tool\.sysext\.raw's verity signature is by CN=stranger-db, which is not among the enrolled PK, KEK and db certificates \(PK: CN=uki-test-PK; KEK: CN=uki-test-KEK; db: CN=uki-test-db\)/);
                });

                it("accepts an extension signed by the KEK key (Kairos trusts PK, KEK and db for extensions)", async () => {
                    const kekSigned = await ext("kektool", "ext-kek", { key: keys.files.KEK.key, certificate: keys.files.KEK.pem });
                    const outs = await createVia(media, { ...mediaBase, name: "kek-ext", type: "dir", secureBootEnroll: "force", extensions: [kekSigned.path] });
                    assert.ok(outs.files.includes("kektool.sysext.raw"), JSON.stringify(outs.files));
                });

                it("a preview remembers a pass only for the file as it was: changed in place, it is checked again and refused", async () => {
                    const uki = path.join(work, "remembered", "norole.efi");
                    fs.mkdirSync(path.dirname(uki), { recursive: true });
                    fs.copyFileSync(built.ukis[0].path, uki);
                    await new Promise((r) => setTimeout(r, 2100)); // a file changed within 2 s is never remembered (file-identity.ts)
                    const verdicts = path.join(cacheRoot(), "verdicts");
                    // Entries naming this file, not a count of the folder: a long-used cache is full (1024
                    // entries), and there each new entry evicts the oldest one.
                    const entriesForUki = () => (fs.existsSync(verdicts) ? fs.readdirSync(verdicts) : []).filter((n) => {
                        try {
                            return JSON.parse(fs.readFileSync(path.join(verdicts, n), "utf8")).file === path.resolve(uki);
                        } catch {
                            return false;
                        }
                    }).length;
                    const news = { ...mediaBase, name: "remembered", type: "dir", secureBootEnroll: "force", uki: { ...(mediaBase.uki as object), efiFiles: [uki] } };
                    assert.strictEqual(entriesForUki(), 0);
                    assert.deepStrictEqual((await media.check({}, news)).failures ?? [], []);
                    assert.strictEqual(entriesForUki(), 1, "the pass of this UKI is remembered");
                    await run(["sbattach", "--remove", uki]);
                    const { failures } = await media.check({}, news);
                    assert.strictEqual(failures?.[0]?.property, "uki.efiFiles[0]", JSON.stringify(failures));
                    assert.match(failures![0].reason, /remembered\/norole\.efi is not signed/);
                });

                it("a file changed between preview and build: the build refuses its own copy, and writes nothing", async () => {
                    const uki = path.join(work, "swapped", "norole.efi");
                    fs.mkdirSync(path.dirname(uki), { recursive: true });
                    fs.copyFileSync(built.ukis[0].path, uki);
                    const { inputs, failures } = await media.check({}, { ...mediaBase, name: "swapped", type: "dir", secureBootEnroll: "force", uki: { ...(mediaBase.uki as object), efiFiles: [uki] } });
                    assert.deepStrictEqual(failures ?? [], []);
                    await run(["sbattach", "--remove", uki]); // after preview, before up
                    await assert.rejects(media.create(inputs), (e: Error) => {
                        assert.match(e.message, /BootMedia swapped: step "check inputs" failed: uki\.efiFiles\[0\]: .*swapped\/norole\.efi is not signed/s);
                        assert.ok(!e.message.includes(".work-"), `names the input, not the build's copy: ${e.message}`);
                        return true;
                    });
                    assert.ok(!fs.existsSync(path.join(work, "media", "swapped")));
                    assert.deepStrictEqual([...fs.readdirSync(work), ...fs.readdirSync(path.join(work, "media"))].filter((n) => n.includes(".work-") || n.includes(".staging-")), []);
                });
            });
        });

        it("builds the same ISO bytes twice", async () => {
            const a = await createVia(media, { ...mediaBase, name: "twice-a", secureBootEnroll: "force" });
            const b = await createVia(media, { ...mediaBase, name: "twice-b", secureBootEnroll: "force" });
            assert.strictEqual(a.sha256, b.sha256);
            console.log(`      ISO ${(a.size / 1e6).toFixed(1)} MB, UKI ${(built.ukis[0].size / 1e6).toFixed(1)} MB`);
        });
    });
});

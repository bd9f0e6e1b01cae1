// The guest's kairos-agent stand-in (POSIX sh, run by dash here) against a real registry: extension
// artifacts pushed by oras, AuroraBoot-shaped OS images, a tampering registry (a small HTTP server that
// lies about digests), and UKIs signed by sbsign with the db key or a foreign one. Its roots are a
// sandbox: nothing here touches the host's /var/lib/kairos, /run, ESP or EFI variables.
import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { AddressInfo } from "net";
import { tempDir } from "../helpers/engine";
import { TestRegistry, startRegistry } from "../helpers/registry";
import { makeCertificate } from "../helpers/pki";
import { AgentSandbox, SYSEXT_TYPE, auroraBootImage, dockerSave, efiVarString, pushImage, pushSysext, signedPe } from "../helpers/guest-agent";

const LOADER = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
const hex = (b: Buffer | string) => crypto.createHash("sha256").update(b).digest("hex");

describe("guest kairos-agent stand-in (sh, on the host, real registry)", function () {
    this.timeout(120000);
    let work: string;
    let registry: TestRegistry;
    let box: AgentSandbox;
    const v1 = "k3s v1 payload\n";
    const v2 = "k3s v2 payload\n";
    const digests: Record<string, string> = {};
    let liar: http.Server;
    let liarHost: string;

    before(async () => {
        work = tempDir("guest-agent");
        registry = await startRegistry();
        const src = path.join(work, "src");
        fs.mkdirSync(src);
        for (const [name, body] of [["k3s-v1.sysext.raw", v1], ["k3s-v2.sysext.raw", v2]]) fs.writeFileSync(path.join(src, name), body);
        digests.v1 = await pushSysext(registry.host, "ext/k3s:v1", path.join(src, "k3s-v1.sysext.raw"));
        digests.v2 = await pushSysext(registry.host, "ext/k3s:v2", path.join(src, "k3s-v2.sysext.raw"));
        digests.wrongType = await pushSysext(registry.host, "ext/k3s:wrong", path.join(src, "k3s-v2.sysext.raw"), { artifactType: "application/vnd.example.thing", mediaType: "application/vnd.example.thing" });
        // a registry that serves other bytes than the digests it is asked for
        liar = http.createServer((req, res) => {
            const real = `http://${registry.host}${req.url!.replace("/v2/evil/", "/v2/ext/k3s/")}`;
            void (async () => {
                const r = await fetch(real, { headers: { accept: String(req.headers.accept ?? "*/*") } });
                let body = Buffer.from(await r.arrayBuffer());
                if (req.url!.includes("/manifests/") && req.url!.endsWith(digests.v1)) body = Buffer.from(body.toString().replace(/}$/, ' }'));
                if (req.url!.includes("/blobs/") && body.toString() === v2) body = Buffer.from(v2.replace("v2", "XX"));
                res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/octet-stream" });
                res.end(body);
            })();
        });
        await new Promise<void>((r) => liar.listen(0, "127.0.0.1", r));
        liarHost = `127.0.0.1:${(liar.address() as AddressInfo).port}`;
    });
    after(async () => {
        liar?.close();
        await registry?.stop();
    });
    beforeEach(function () {
        box = new AgentSandbox(path.join(work, this.currentTest!.title.replace(/\W+/g, "-").slice(0, 60)), registry.host);
    });

    const catalog = () => {
        const file = path.join(work, "releases.json");
        const oci = (d: string) => ({ amd64: { oci: `${registry.host}/ext/k3s@${d}` } });
        fs.writeFileSync(file, JSON.stringify({ repo: "test/ext", layers: [
            { name: "other", latest: "1", tags: [{ tag: "1", sysext: oci(digests.v1) }] },
            { name: "k3s", latest: "v2", tags: [{ tag: "v1", sysext: oci(digests.v1) }, { tag: "v2", sysext: oci(digests.v2) }] },
        ] }));
        return file;
    };

    describe("sysext install", () => {
        it("oci:REPO@sha256: installs the layer under its title, 0644, digest-checked", async () => {
            const r = await box.agent("sysext", "install", `oci:${registry.host}/ext/k3s@${digests.v2}`);
            assert.equal(r.code, 0, r.out);
            const f = path.join(box.ext, "k3s-v2.sysext.raw");
            assert.equal(fs.readFileSync(f, "utf8"), v2);
            assert.equal(fs.statSync(f).mode & 0o777, 0o644);
            assert.match(r.stdout, new RegExp(`^kairos-agent: Extension k3s-v2\\.sysext\\.raw installed from .*@${digests.v2} \\(sha256:${hex(v2)}, ${v2.length} bytes\\)`, "m"));
            assert.deepEqual(Object.keys(box.tree(box.ext)), ["k3s-v2.sysext.raw"]); // no partial file left
        });

        it("by name from a file: catalog: latest, then an exact version", async () => {
            const cat = catalog();
            let r = await box.agent("sysext", "install", "--catalog", `file:${cat}`, "k3s");
            assert.equal(r.code, 0, r.out);
            assert.match(r.stdout, new RegExp(`Resolved k3s v2 to ${registry.host}/ext/k3s@${digests.v2}`));
            r = await box.agent("sysext", "install", "--catalog", `file:${cat}`, "--version", "v1", "k3s");
            assert.equal(r.code, 0, r.out);
            assert.deepEqual(Object.keys(box.tree(box.ext)), ["k3s-v1.sysext.raw", "k3s-v2.sysext.raw"]);
            r = await box.agent("sysext", "install", "--catalog", `file:${cat}`, "--version", ">=v1", "k3s");
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /no tag >=v1 for amd64 in the catalog \(only exact tags are supported\)/);
        });

        it("by name from an http: catalog", async () => {
            const body = fs.readFileSync(catalog());
            const srv = http.createServer((_q, s) => s.end(body));
            await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
            try {
                const r = await box.agent("sysext", "install", "--catalog", `http://127.0.0.1:${(srv.address() as AddressInfo).port}/releases.json`, "k3s");
                assert.equal(r.code, 0, r.out);
                assert.ok(fs.existsSync(path.join(box.ext, "k3s-v2.sysext.raw")));
            } finally {
                srv.close();
            }
        });

        it("an http: catalog URL on a mirrored registry host is fetched from the mirror (a catalog published as a registry blob)", async () => {
            const body = fs.readFileSync(catalog());
            const srv = http.createServer((q, s) => s.end(q.url === "/v2/kairos/catalog/blobs/sha256:abc" ? body : ""));
            await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
            try {
                // the published host does not answer; the mirror does
                fs.appendFileSync(box.mirrors, `registry.invalid:5000=http://127.0.0.1:${(srv.address() as AddressInfo).port}\n`);
                fs.rmSync(path.join(box.ext, "k3s-v2.sysext.raw"), { force: true });
                const r = await box.agent("sysext", "install", "--catalog", "http://registry.invalid:5000/v2/kairos/catalog/blobs/sha256:abc", "k3s");
                assert.equal(r.code, 0, r.out);
                assert.ok(fs.existsSync(path.join(box.ext, "k3s-v2.sysext.raw")));
            } finally {
                srv.close();
            }
        });

        it("refuses a manifest whose digest is not the pinned one; nothing is written", async () => {
            fs.appendFileSync(box.mirrors, `${liarHost}=http://${liarHost}\n`);
            const r = await box.agent("sysext", "install", `oci:${liarHost}/evil@${digests.v1}`);
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, new RegExp(`manifest digest mismatch for ${liarHost}/evil@${digests.v1}: got sha256:(?!${digests.v1.slice(7)})`));
            assert.deepEqual(box.tree(box.ext), {});
        });

        it("refuses a blob whose digest does not match; the file never lands", async () => {
            fs.appendFileSync(box.mirrors, `${liarHost}=http://${liarHost}\n`);
            const r = await box.agent("sysext", "install", `oci:${liarHost}/evil@${digests.v2}`);
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, new RegExp(`blob sha256:${hex(v2)}: got sha256:${hex(v2.replace("v2", "XX"))} \\(${v2.length} bytes, expected ${v2.length}\\)`));
            assert.deepEqual(box.tree(box.ext), {});
        });

        it("refuses an artifact of another artifactType", async () => {
            const r = await box.agent("sysext", "install", `oci:${registry.host}/ext/k3s@${digests.wrongType}`);
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, new RegExp(`artifactType "application/vnd\\.example\\.thing" is not ${SYSEXT_TYPE.replace(/\./g, "\\.")}`));
            assert.deepEqual(box.tree(box.ext), {});
        });

        it("refuses a catalog entry that is not pinned by digest", async () => {
            const file = path.join(box.dir, "tag-only.json");
            fs.writeFileSync(file, JSON.stringify({ layers: [{ name: "k3s", latest: "v2", tags: [{ tag: "v2", sysext: { amd64: { oci: `${registry.host}/ext/k3s:v2` } } }] }] }));
            const r = await box.agent("sysext", "install", "--catalog", `file:${file}`, "k3s");
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /is not pinned by digest/);
        });
    });

    describe("sysext enable, disable, remove, list", () => {
        beforeEach(async () => {
            for (const d of [digests.v1, digests.v2]) assert.equal((await box.agent("sysext", "install", `oci:${registry.host}/ext/k3s@${d}`)).code, 0);
        });

        it("enable --active --now links the profile and /run/extensions and restarts systemd-sysext; remove undoes it", async () => {
            let r = await box.agent("sysext", "enable", "--active", "--now", "k3s-v2");
            assert.equal(r.code, 0, r.out);
            assert.deepEqual(r.stdout.trim().split("\n"), [
                "kairos-agent: Extension k3s-v2.sysext.raw enabled in active",
                `kairos-agent: Extension k3s-v2.sysext.raw enabled in ${box.runExt}/`,
                "kairos-agent: Extension k3s-v2.sysext.raw merged by systemd-sysext",
            ]);
            assert.equal(box.tree(box.ext)["active/k3s-v2.sysext.raw"], `-> ${box.ext}/k3s-v2.sysext.raw`);
            assert.equal(box.tree(box.runExt)["k3s-v2.sysext.raw"], `-> ${box.ext}/active/k3s-v2.sysext.raw`);
            assert.equal(fs.readFileSync(box.systemctlLog, "utf8"), "restart systemd-sysext\n");
            r = await box.agent("sysext", "enable", "--passive", "--now", "k3s-v1");
            assert.match(r.stdout, /enabled in passive but not merged as we are currently not booted in passive/);
            r = await box.agent("sysext", "list", "--passive");
            assert.equal(r.stdout.trim(), `k3s-v1.sysext.raw -> ${box.ext}/k3s-v1.sysext.raw`);
            r = await box.agent("sysext", "remove", "--now", "k3s-v1");
            assert.equal(r.code, 0, r.out);
            assert.match(r.stdout, /Extension k3s-v1\.sysext\.raw disabled from passive\n.*Extension not in .*, not refreshing\n.*Extension k3s-v1\.sysext\.raw removed/);
            assert.deepEqual(box.tree(box.ext), { "active/k3s-v2.sysext.raw": `-> ${box.ext}/k3s-v2.sysext.raw`, "k3s-v2.sysext.raw": "file" });
            r = await box.agent("sysext", "disable", "--active", "--now", "k3s");
            assert.equal(r.code, 0, r.out);
            assert.deepEqual(box.tree(box.runExt), {});
            assert.equal(fs.readFileSync(box.systemctlLog, "utf8"), "restart systemd-sysext\nrestart systemd-sysext\n");
        });

        it("NAME is a regex and the first alphabetical match wins; enabling twice says so", async () => {
            let r = await box.agent("sysext", "enable", "--common", "k3s");
            assert.match(r.stdout, /Extension k3s-v1\.sysext\.raw enabled in common/);
            r = await box.agent("sysext", "enable", "--common", "k3s-v1");
            assert.match(r.stdout, /Extension k3s-v1\.sysext\.raw is already enabled in common/);
            r = await box.agent("sysext", "enable", "--common", "nope");
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /extension nope not found/);
        });
    });

    describe("upgrade", () => {
        let keys: Record<string, { key: string; certificate: string }>;
        let oldUki: Buffer;
        let newUki: Buffer;
        let foreignUki: Buffer;
        const files = (uki: Buffer) => ({
            "EFI/BOOT/BOOTX64.EFI": "new systemd-boot",
            "EFI/kairos/norole.efi": uki,
            "loader/loader.conf": "timeout 5\nconsole-mode max\neditor no\nsecure-boot-enroll if-safe\n",
            "loader/entries/norole.conf": "title Kairos v2\nsort-key norole-0\nuki /EFI/kairos/norole.efi\nprofile 0\n",
        });

        before(async () => {
            const k = path.join(work, "keys");
            fs.mkdirSync(k);
            keys = { db: await makeCertificate(k, "db"), foreign: await makeCertificate(k, "foreign") };
            // two different PE files stand for the old and the new UKI
            oldUki = await signedPe(path.join(k, "old.efi"), keys.db.key, keys.db.certificate, "/usr/lib/systemd/boot/efi/linuxx64.efi.stub");
            newUki = await signedPe(path.join(k, "new.efi"), keys.db.key, keys.db.certificate);
            foreignUki = await signedPe(path.join(k, "foreign.efi"), keys.foreign.key, keys.foreign.certificate);
        });

        /** An ESP as the installer left it (entries blessed by a good boot, an old `default`). */
        const installedEsp = () => {
            const put = (rel: string, body: string | Buffer) => {
                fs.mkdirSync(path.dirname(path.join(box.efi, rel)), { recursive: true });
                fs.writeFileSync(path.join(box.efi, rel), body);
            };
            put("EFI/BOOT/BOOTX64.EFI", "old systemd-boot");
            put("EFI/kairos/active.efi", oldUki);
            put("EFI/kairos/passive.efi", "older uki");
            fs.mkdirSync(path.join(box.efi, "EFI/kairos/active.efi.extra.d"));
            put("loader/loader.conf", "timeout 0\ndefault active.conf\n");
            put("loader/entries/active.conf", "title Kairos v1\nuki /EFI/kairos/active.efi\nsort-key 0001\n");
            put("loader/entries/passive+0-3.conf", "title Kairos v0 (fallback)\nuki /EFI/kairos/passive.efi\nsort-key 0002\n");
            fs.copyFileSync(keys.db.certificate, path.join(box.verity, "DB0.crt"));
        };

        const assertRotated = () => {
            const t = box.tree(box.efi);
            assert.deepEqual(Object.keys(t).sort(), [
                "EFI/BOOT/BOOTX64.EFI", "EFI/kairos/active.efi", "EFI/kairos/passive.efi",
                "loader/entries/active+3.conf", "loader/entries/passive+3.conf", "loader/loader.conf",
            ]);
            const read = (rel: string) => fs.readFileSync(path.join(box.efi, rel));
            assert.ok(read("EFI/kairos/active.efi").equals(newUki));
            assert.ok(read("EFI/kairos/passive.efi").equals(oldUki));
            assert.equal(read("loader/entries/active+3.conf").toString(), "title Kairos v2\nuki /EFI/kairos/active.efi\nprofile 0\nsort-key 0001\n");
            assert.equal(read("loader/entries/passive+3.conf").toString(), "title Kairos v1 (fallback)\nuki /EFI/kairos/passive.efi\nsort-key 0002\n");
            assert.equal(read("loader/loader.conf").toString(), "timeout 5\nconsole-mode max\neditor no\nsecure-boot-enroll if-safe\n");
            assert.deepEqual(efiVarString(path.join(box.efivars, `LoaderEntryOneShot-${LOADER}`)), { attrs: 7, value: "active.conf" });
        };

        it("ocifile: a db-signed image rotates active to passive and installs it as active, with +3 counters and a one-shot", async () => {
            installedEsp();
            const tarball = path.join(box.dir, "os.tar");
            dockerSave(tarball, await auroraBootImage(files(newUki)), "kairos/os:v2");
            const r = await box.agent("upgrade", "--source", `ocifile:${tarball}`);
            assert.equal(r.code, 0, r.out);
            assertRotated();
            assert.match(r.stdout, /norole\.efi verified against DB0\.crt/);
            assert.match(r.stdout, /kairos-agent: upgrade done: EFI\/kairos\/active\.efi EFI\/kairos\/passive\.efi loader\/entries\/active\+3\.conf loader\/entries\/passive\+3\.conf/);
        });

        it("oci: the same from the registry, pinned by digest", async () => {
            installedEsp();
            const ref = await pushImage(registry.host, "kairos/os", "v2", await auroraBootImage(files(newUki)));
            const r = await box.agent("upgrade", "--source", `oci:${ref}`);
            assert.equal(r.code, 0, r.out);
            assertRotated();
        });

        it("refuses a UKI no db certificate verifies: norole* deleted, nothing rotated or replaced", async () => {
            installedEsp();
            const before = Object.fromEntries(Object.keys(box.tree(box.efi)).map((k) => [k, hex(fs.readFileSync(path.join(box.efi, k)))]));
            const ref = await pushImage(registry.host, "kairos/os", "evil", await auroraBootImage(files(foreignUki)));
            const r = await box.agent("upgrade", "--source", `oci:${ref}`);
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /Upgrade artifact signature does not match, upgrading to this source would result in an unbootable active system/);
            const after = Object.fromEntries(Object.keys(box.tree(box.efi)).map((k) => [k, hex(fs.readFileSync(path.join(box.efi, k)))]));
            assert.deepEqual(after, before);
            assert.ok(!fs.existsSync(path.join(box.efivars, `LoaderEntryOneShot-${LOADER}`)));
        });

        it("refuses an image whose layer is not what its config says", async () => {
            installedEsp();
            const image = await auroraBootImage(files(newUki));
            const other = await auroraBootImage({ ...files(newUki), "EFI/kairos/extra.efi": "x" });
            image.layer = other.layer; // a docker-save with a swapped layer file
            const tarball = path.join(box.dir, "swapped.tar");
            dockerSave(tarball, image, "kairos/os:v2");
            const r = await box.agent("upgrade", "--source", `ocifile:${tarball}`);
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /layer 0: uncompressed digest is not the config's sha256:/);
            assert.ok(fs.existsSync(path.join(box.efi, "loader/entries/active.conf")));
        });
    });
});

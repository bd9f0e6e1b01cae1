// The release resources' own rules, through their handlers and a real registry (docker-distribution on
// 127.0.0.1, oras): what is refused before anything is published, what an update only records, and
// what delete does. The formats and the engine flow are in test/engine/releases.engine.test.ts.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { systemExtensionHandler } from "../../provider/system-extension";
import { sysextReleaseHandler } from "../../provider/sysext-release";
import { extensionCatalogHandler } from "../../provider/extension-catalog";
import { osReleaseHandler } from "../../provider/os-release";
import { promotedReleaseHandler } from "../../provider/promoted-release";
import { resolveDigest } from "../../provider/toolkit/release/oras";
import { run } from "../../provider/toolkit/run";
import { checkVia, createVia } from "../helpers/handlers";
import { makeCertificate } from "../helpers/pki";
import { TestRegistry, startRegistry } from "../helpers/registry";
import { tempDir } from "../helpers/temp";
import "../helpers/oras-path";

const access = { plainHttp: true };

describe("release resources: refusals, recorded-only updates and deletes (handlers, real registry)", function () {
    this.timeout(300000);
    let registry: TestRegistry;
    let work: string;
    let db: { key: string; certificate: string };
    let other: { key: string; certificate: string };
    let ext: any;
    const repo = (name: string) => `${registry.host}/rules/${name}`;

    before(async () => {
        registry = await startRegistry();
        work = tempDir("release-rules");
        db = await makeCertificate(work, "db");
        other = await makeCertificate(work, "other");
        fs.mkdirSync(path.join(work, "src/usr/bin"), { recursive: true });
        fs.writeFileSync(path.join(work, "src/usr/bin/tool"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
        ext = await createVia(systemExtensionHandler, { name: "tool", outputDir: path.join(work, "ext"), source: { dir: path.join(work, "src") }, signing: db });
    });
    after(async () => registry?.stop());

    it("a sysext not signed by verifyWith is refused before anything is pushed", async () => {
        const news = await checkVia(sysextReleaseHandler, { image: ext.path, name: "tool", version: "1.0.0", repository: repo("unsigned"), registry: access, verifyWith: other.certificate });
        await assert.rejects(sysextReleaseHandler.create(news), /check extension image/);
        assert.equal(await resolveDigest(`${repo("unsigned")}:1.0.0`, access), undefined);
        const ok = await createVia(sysextReleaseHandler, { image: ext.path, name: "tool", version: "1.0.0", repository: repo("unsigned"), registry: access, verifyWith: db.certificate });
        assert.equal(await resolveDigest(`${repo("unsigned")}:1.0.0`, access), ok.digest);
    });

    it("a sysext is listed under the architecture it was built for, or refused", async () => {
        const arm = await createVia(systemExtensionHandler, { name: "tool-arm", outputDir: path.join(work, "ext-arm"), source: { dir: path.join(work, "src") }, signing: db, arch: "arm64" });
        const news = await checkVia(sysextReleaseHandler, { image: arm.path, name: "tool", version: "1.0.0", repository: repo("arch"), registry: access });
        await assert.rejects(sysextReleaseHandler.create(news), /is a arm64 image, but this release lists it as amd64; set arch to arm64/);
        const listed = await createVia(sysextReleaseHandler, { image: arm.path, name: "tool", version: "1.0.0", arch: "arm64", repository: repo("arch"), registry: access });
        assert.equal(listed.catalogEntry.arch, "arm64");
        assert.equal(listed.taggedReference, `${repo("arch")}:1.0.0-arm64`, "an arm64 default tag does not take the amd64 one's");
    });

    it("a version with build metadata gets a valid default tag; an invalid given tag is an input error", async () => {
        const r = await createVia(sysextReleaseHandler, { image: ext.path, name: "tool", version: "1.31.2+k3s1", repository: repo("tags"), registry: access });
        assert.equal(r.taggedReference, `${repo("tags")}:1.31.2_k3s1`);
        const { failures } = await sysextReleaseHandler.check({}, { image: ext.path, name: "tool", version: "1.0.0", repository: repo("tags"), tag: "-bad" });
        assert.ok(failures?.some((f) => f.property === "tag"), JSON.stringify(failures));
    });

    it("changing only deleteOnDestroy or registry is an update that records it and pushes nothing; destroy then deletes", async () => {
        const first = await createVia(sysextReleaseHandler, { image: ext.path, name: "tool", version: "2.0.0", repository: repo("record"), registry: access });
        const news = await checkVia(sysextReleaseHandler, { image: ext.path, name: "tool", version: "2.0.0", repository: repo("record"), registry: access, deleteOnDestroy: true });
        const diff = await sysextReleaseHandler.diff("id", first, news);
        assert.equal(diff.changes, true);
        assert.deepEqual(diff.replaces, []);
        const { outs } = await sysextReleaseHandler.update("id", first, news);
        assert.equal(outs.deleteOnDestroy, true);
        assert.deepEqual(outs.lastBuild, first.lastBuild, "nothing was published again");
        await sysextReleaseHandler.delete("id", outs);
        assert.equal(await resolveDigest(first.reference, access), undefined);
        await sysextReleaseHandler.delete("id", outs); // already gone: deleted
    });

    it("a promotion into the source's own repository may not delete on destroy (it would delete the tested release)", async () => {
        const tested = await createVia(sysextReleaseHandler, { image: ext.path, name: "tool", version: "3.0.0", repository: repo("same"), registry: access });
        const { failures } = await promotedReleaseHandler.check({}, { source: tested.reference, repository: repo("same"), tag: "prod", deleteOnDestroy: true, registry: access });
        assert.ok(failures?.some((f) => f.property === "deleteOnDestroy" && /tested release/.test(f.reason)), JSON.stringify(failures));
    });

    it("a catalog whose push fails keeps the previous file", async () => {
        const entry = { name: "tool", version: "1.0.0", arch: "amd64", kind: "sysext", reference: `${repo("x")}@sha256:${"a".repeat(64)}` };
        const outputDir = path.join(work, "catalog");
        const first = await createVia(extensionCatalogHandler, { entries: [entry], outputDir });
        const before = fs.readFileSync(first.path);
        const news = await checkVia(extensionCatalogHandler, { entries: [entry, { ...entry, version: "1.0.1" }], outputDir, repository: "127.0.0.1:9/rules/catalog", registry: access });
        await assert.rejects(extensionCatalogHandler.update("id", first, news), /127\.0\.0\.1:9/);
        assert.ok(fs.readFileSync(first.path).equals(before));
    });

    it("an OS release whose UKI is not signed by verifyWith is refused before the tarball or a push", async () => {
        const files = path.join(work, "os-files");
        fs.mkdirSync(files);
        for (const n of ["norole.efi", "BOOTX64.EFI"]) await run(["sbsign", "--key", db.key, "--cert", db.certificate, "--output", path.join(files, n), "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"]);
        fs.writeFileSync(path.join(files, "norole.conf"), "title Kairos\nefi /EFI/kairos/norole.efi\n");
        const uki = { efiFiles: [path.join(files, "norole.efi")], loaderEntries: [path.join(files, "norole.conf")], systemdBoot: path.join(files, "BOOTX64.EFI") };
        const outputDir = path.join(work, "os");
        const news = await checkVia(osReleaseHandler, { uki, outputDir, repository: repo("os"), registry: access, verifyWith: other.certificate });
        await assert.rejects(osReleaseHandler.create(news), /norole\.efi is not signed by .*other\.crt \(untrusted-signer\)/);
        assert.ok(!fs.existsSync(path.join(outputDir, "kairos-os.tar")));
        assert.equal(await resolveDigest(`${repo("os")}:latest`, access), undefined);
        const ok = await createVia(osReleaseHandler, { uki, outputDir, repository: repo("os"), registry: access, verifyWith: db.certificate });
        assert.equal(await resolveDigest(`${repo("os")}:latest`, access), ok.digest);
    });
});

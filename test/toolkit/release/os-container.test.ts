// The OS release container (AuroraBoot `build-uki --output-type container` format): reproducible
// docker-save tarball and OCI layout, accepted by skopeo, pushed with oras to docker-distribution
// under the digest we computed, and served back byte for byte.
import "../../helpers/oras-path";
import { strict as assert } from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, writeOsContainer } from "../../../provider/toolkit/release/os-container";
import { LAYOUT_TAG } from "../../../provider/toolkit/release/raw-artifact";
import { fetchManifest, pushLayout, resolveDigest } from "../../../provider/toolkit/release/oras";
import { run } from "../../../provider/toolkit/run";
import { startRegistry, TestRegistry } from "../../helpers/registry";
import { tempDir } from "../../helpers/temp";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Lists a tar's members (name, mode, uid, gid, mtime, type, size) by reading the headers: no tar library under test. */
function tarMembers(tar: Buffer): { name: string; mode: number; uid: number; gid: number; mtime: number; type: string; size: number; data: Buffer }[] {
    const out = [];
    let off = 0;
    const num = (o: number, n: number) => parseInt(tar.subarray(off + o, off + o + n).toString().replace(/\0.*$/, "").trim() || "0", 8);
    while (off + 512 <= tar.length && tar[off] !== 0) {
        const str = (o: number, n: number) => tar.subarray(off + o, off + o + n).toString().replace(/\0.*$/s, "");
        const prefix = str(345, 155);
        const name = (prefix ? `${prefix}/` : "") + str(0, 100);
        const size = num(124, 12);
        out.push({ name, mode: num(100, 8), uid: num(108, 8), gid: num(116, 8), mtime: num(136, 12), type: str(156, 1), size, data: tar.subarray(off + 512, off + 512 + size) });
        off += 512 + Math.ceil(size / 512) * 512;
    }
    return out;
}

describe("release: OS container in AuroraBoot's format", function () {
    this.timeout(120000);
    let registry: TestRegistry;
    let src: string;
    let files: { path: string; source: string }[];

    before(async () => {
        registry = await startRegistry();
        src = tempDir("os-container-src");
        const put = (name: string, bytes: Buffer | string) => {
            const f = path.join(src, name.replace(/\//g, "_"));
            fs.writeFileSync(f, bytes);
            fs.chmodSync(f, 0o600); // the source's mode, owner and mtime must not leak into the layer
            return { path: name, source: f };
        };
        const uki = Buffer.alloc(2 * 1024 * 1024 + 123);
        for (let i = 0; i < uki.length; i += 4096) uki.writeUInt32LE(i * 2654435761 >>> 0, i);
        // given unsorted: the layer must list them sorted
        files = [
            put("loader/loader.conf", "timeout 5\nconsole-mode max\neditor no\nsecure-boot-enroll if-safe\n"),
            put("EFI/kairos/norole.efi", uki),
            put("loader/entries/norole.conf", "title Kairos\nsort-key norole-0\nuki /EFI/kairos/norole.efi\nprofile 0\n"),
            put("EFI/BOOT/BOOTX64.EFI", Buffer.alloc(70000, 3)),
            put("loader/keys/auto/PK.auth", Buffer.alloc(900, 1)),
        ];
    });
    after(async () => registry?.stop());

    it("is byte-reproducible: two builds in different folders give identical tarballs and digests", async () => {
        const a = tempDir("os-a");
        const b = tempDir("os-b");
        const one = await writeOsContainer({ files, arch: "amd64", tarball: path.join(a, "os.tar"), layoutDir: path.join(a, "layout") });
        fs.utimesSync(files[1].source, new Date(1e12), new Date(1e12));
        const two = await writeOsContainer({ files: [...files].reverse(), arch: "amd64", tarball: path.join(b, "sub", "os.tar"), layoutDir: path.join(b, "layout") });
        assert.ok(fs.readFileSync(path.join(a, "os.tar")).equals(fs.readFileSync(path.join(b, "sub", "os.tar"))));
        assert.equal(one.manifestDigest, two.manifestDigest);
        assert.equal(one.tarballSha256, two.tarballSha256);
        assert.equal(`sha256:${one.tarballSha256}`, sha(fs.readFileSync(path.join(a, "os.tar"))));
        const arm = await writeOsContainer({ files, arch: "arm64", tarball: path.join(b, "arm.tar"), layoutDir: path.join(b, "arm") });
        assert.equal(arm.layerDigest, one.layerDigest, "the layer does not depend on the arch");
        assert.notEqual(arm.manifestDigest, one.manifestDigest, "the config does");
    });

    it("holds the schema2 manifest, a platform-only config and one gzip layer of sorted regular files with fixed headers", async () => {
        const dir = tempDir("os-shape");
        const c = await writeOsContainer({ files, arch: "amd64", tarball: path.join(dir, "os.tar"), layoutDir: path.join(dir, "layout"), repoTags: ["kairos/os:v1"] });
        const blob = (d: string) => fs.readFileSync(path.join(dir, "layout", "blobs", "sha256", d.slice(7)));
        const m = JSON.parse(c.manifestBytes.toString());
        assert.equal(c.manifestDigest, sha(c.manifestBytes));
        assert.deepEqual(m, {
            schemaVersion: 2,
            mediaType: DOCKER_MANIFEST,
            config: { mediaType: DOCKER_CONFIG, size: blob(c.configDigest).length, digest: c.configDigest },
            layers: [{ mediaType: DOCKER_LAYER_GZIP, size: c.layerSize, digest: c.layerDigest }],
        });
        const index = JSON.parse(fs.readFileSync(path.join(dir, "layout", "index.json"), "utf8"));
        assert.deepEqual(index.manifests, [{ mediaType: DOCKER_MANIFEST, digest: c.manifestDigest, size: c.manifestBytes.length, annotations: { "org.opencontainers.image.ref.name": LAYOUT_TAG } }]);
        const config = JSON.parse(blob(c.configDigest).toString());
        assert.deepEqual(config, { architecture: "amd64", created: "0001-01-01T00:00:00Z", history: [{ created: "0001-01-01T00:00:00Z" }], os: "linux", rootfs: { type: "layers", diff_ids: [c.diffId] }, config: {} });

        const gz = blob(c.layerDigest);
        assert.deepEqual([...gz.subarray(0, 10)].slice(0, 8), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0], "gzip: no name, mtime 0");
        const tar = zlib.gunzipSync(gz);
        assert.equal(c.diffId, sha(tar));
        const members = tarMembers(tar);
        assert.deepEqual(members.map((t) => t.name), ["EFI/BOOT/BOOTX64.EFI", "EFI/kairos/norole.efi", "loader/entries/norole.conf", "loader/keys/auto/PK.auth", "loader/loader.conf"]);
        for (const t of members) {
            assert.deepEqual({ mode: t.mode, uid: t.uid, gid: t.gid, mtime: t.mtime, type: t.type }, { mode: 0o644, uid: 0, gid: 0, mtime: 315532800, type: "0" }, t.name);
            assert.ok(t.data.equals(fs.readFileSync(files.find((f) => f.path === t.name)!.source)), t.name);
        }

        const saved = tarMembers(fs.readFileSync(path.join(dir, "os.tar")));
        assert.deepEqual(saved.map((t) => t.name), [c.configDigest, `${c.layerDigest.slice(7)}.tar.gz`, "manifest.json"]);
        assert.deepEqual(JSON.parse(saved[2].data.toString()), [{ Config: c.configDigest, RepoTags: ["kairos/os:v1"], Layers: [`${c.layerDigest.slice(7)}.tar.gz`] }]);
        assert.ok(saved[1].data.equals(gz));
    });

    it("GNU tar reads the layer and the archive, long paths (ustar prefix) included", async () => {
        const dir = tempDir("os-gnutar");
        const long = `loader/${"x".repeat(120)}/entries/norole.conf`;
        const c = await writeOsContainer({ files: [...files, { path: long, source: files[0].source }], arch: "amd64", tarball: path.join(dir, "os.tar"), layoutDir: path.join(dir, "layout") });
        const listed = (await run(["tar", "-tzf", path.join(dir, "layout", "blobs", "sha256", c.layerDigest.slice(7))])).stdout.trim().split("\n");
        assert.deepEqual(listed, [...files.map((f) => f.path), long].sort());
        const verbose = (await run(["tar", "-tvzf", path.join(dir, "layout", "blobs", "sha256", c.layerDigest.slice(7))], { env: { TZ: "UTC" } })).stdout;
        assert.match(verbose, /^-rw-r--r-- 0\/0 +\d+ 1980-01-01 00:00 EFI\/BOOT\/BOOTX64.EFI$/m);
        assert.equal((await run(["tar", "-tf", path.join(dir, "os.tar")])).stdout.trim().split("\n").length, 3);
    });

    it("fails for absolute, dotted or duplicate paths and for a source that is not a regular file", async () => {
        const dir = tempDir("os-bad");
        const one = files[0].source;
        const attempt = (p: string, source = one) => writeOsContainer({ files: [{ path: p, source }], arch: "amd64", tarball: path.join(dir, `${Math.random()}.tar`), layoutDir: path.join(dir, `${Math.random()}`) });
        await assert.rejects(attempt("/EFI/x.efi"), /must be relative/);
        await assert.rejects(attempt("EFI/../x.efi"), /must be relative/);
        await assert.rejects(attempt("EFI//x.efi"), /must be relative/);
        await assert.rejects(attempt("EFI/x.efi", src), /not a regular file/);
        await assert.rejects(
            writeOsContainer({ files: [files[0], { ...files[1], path: files[0].path }], arch: "amd64", tarball: path.join(dir, "d.tar"), layoutDir: path.join(dir, "d") }),
            /given twice/,
        );
    });

    it("skopeo accepts the docker-save tarball and sees the same image", async () => {
        const dir = tempDir("os-skopeo");
        const c = await writeOsContainer({ files, arch: "amd64", tarball: path.join(dir, "os.tar"), layoutDir: path.join(dir, "layout") });
        const inspect = JSON.parse((await run(["skopeo", "inspect", "--raw", `docker-archive:${path.join(dir, "os.tar")}`])).stdout);
        // containers/image reads a docker-archive's layers by their diff_id (it serves them uncompressed)
        assert.deepEqual(inspect.layers.map((l: { digest: string }) => l.digest), [c.diffId]);
        assert.equal(inspect.config.digest, c.configDigest);
        const info = JSON.parse((await run(["skopeo", "inspect", `docker-archive:${path.join(dir, "os.tar")}`])).stdout);
        assert.equal(info.Architecture, "amd64");
        assert.equal(info.Os, "linux");
        // (skopeo 1.9's oci: transport only finds OCI-typed manifests in index.json, so the layout is
        // checked through oras and the registry in the next test, not here)
        // skopeo copies the archive into a layout of its own (recompressing it): the same tar inside
        await run(["skopeo", "copy", `docker-archive:${path.join(dir, "os.tar")}`, `oci:${path.join(dir, "copy")}:x`]);
        const copied = JSON.parse((await run(["skopeo", "inspect", "--config", `oci:${path.join(dir, "copy")}:x`])).stdout);
        assert.deepEqual(copied.rootfs.diff_ids, [c.diffId]);
    });

    it("pushes with oras under the computed digest; the registry serves our manifest bytes", async () => {
        const dir = tempDir("os-push");
        const c = await writeOsContainer({ files, arch: "amd64", tarball: path.join(dir, "os.tar"), layoutDir: path.join(dir, "layout") });
        const ref = `${registry.host}/kairos/os:v1.0.0`;
        assert.equal(await pushLayout(path.join(dir, "layout"), LAYOUT_TAG, ref, { plainHttp: true }), c.manifestDigest);
        assert.equal(await resolveDigest(ref, { plainHttp: true }), c.manifestDigest);
        assert.ok((await fetchManifest(ref, { plainHttp: true })).equals(c.manifestBytes));
        // and skopeo pulls it back as a docker image (schema2 stays schema2)
        const raw = JSON.parse((await run(["skopeo", "inspect", "--tls-verify=false", "--raw", `docker://${ref}`])).stdout);
        assert.equal(raw.mediaType, DOCKER_MANIFEST);
    });
});

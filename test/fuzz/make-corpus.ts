// Regenerates the seed corpus in test/fuzz/corpus/<target>/ from the test fixture helpers:
//   npx ts-node --transpile-only test/fuzz/make-corpus.ts
// Every seed is a small, well-formed input of its format, so the mutator starts from deep inside each
// parser. Outputs are deterministic except the authenticode seed, whose RSA key openssl makes afresh.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { gzipSync } from "zlib";
import { authenticodeSignature } from "../../provider/toolkit/boot/authenticode";
import { buildImage, buildTar, makeLayer, tarDirectory, writeDockerSave, writeOciLayout } from "../helpers/oci-fixtures";
import { makeCertificate } from "../helpers/pki";
import { run } from "../../provider/toolkit/run";
import { SAMPLE_CERTIFICATE, guidBytes } from "./generators/esl";
import { samplePeImage } from "./generators/pe";

const CORPUS = path.join(__dirname, "corpus");
const OWNER = "11111111-2222-3333-4444-555555555555";

function write(target: string, name: string, data: Buffer): void {
    fs.mkdirSync(path.join(CORPUS, target), { recursive: true });
    fs.writeFileSync(path.join(CORPUS, target, name), data);
}

function eslList(typeGuid: string, bodies: Buffer[]): Buffer {
    const width = bodies[0].length;
    const header = Buffer.alloc(28);
    guidBytes(typeGuid).copy(header, 0);
    header.writeUInt32LE(28 + bodies.length * (16 + width), 16);
    header.writeUInt32LE(16 + width, 24);
    return Buffer.concat([header, ...bodies.map((b) => Buffer.concat([guidBytes(OWNER), b]))]);
}

async function main(): Promise<void> {
    fs.rmSync(CORPUS, { recursive: true, force: true });
    const layer = [
        { name: "usr/", type: "dir" as const },
        { name: "usr/bin/", type: "dir" as const },
        { name: "usr/bin/tool", content: "#!/bin/sh\necho hi\n", mode: 0o755 },
        { name: "usr/bin/alias", type: "symlink" as const, linkname: "tool" },
        { name: "usr/bin/hard", type: "hardlink" as const, linkname: "usr/bin/tool" },
        { name: `usr/lib/${"long-name-".repeat(12)}so`, content: "x" },
    ];
    write("tar", "pax-long-names.tar", buildTar(layer));
    write("tar", "gnu-long-names.tar", buildTar(layer, { longNames: "gnu" }));
    write("tar", "pax-size-override.tar", buildTar([{ name: "f", content: "0123456789", pax: { size: "10", path: "renamed" } }]));

    write("pax", "path-and-size", Buffer.from("14 path=a/b/c\n11 size=42\n"));
    write("pax", "sparse", Buffer.from("22 GNU.sparse.major=1\n"));

    write("layer-extract", "links.tar", buildTar(layer));
    write("layer-extract", "links.tar.gz", gzipSync(buildTar(layer)));
    write("layer-extract", "whiteouts.tar", buildTar([
        { name: "etc/", type: "dir" },
        { name: "etc/a/", type: "dir" },
        { name: "etc/a/.wh..wh..opq" },
        { name: "etc/.wh.gone" },
        { name: "usr/", type: "dir" },
        { name: "usr/x", content: "x" },
    ]));
    write("layer-extract", "escapes.tar", buildTar([
        { name: "usr/", type: "dir" },
        { name: "usr/up", type: "symlink", linkname: "../../outside" },
        { name: "usr/abs", type: "symlink", linkname: "/usr/x" },
        { name: "../evil", content: "x" },
    ]));

    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-fuzz-corpus-"));
    try {
        const image = buildImage({ layers: [await makeLayer([{ name: "usr/", type: "dir" }, { name: "usr/f", content: "f" }], "none")] });
        const arm = buildImage({ arch: "arm64", layers: image.layers });
        const oci = path.join(work, "oci");
        writeOciLayout(oci, [{ image, name: "repo/app:1.0" }, { platforms: [image, arm], name: "multi", attestation: true }]);
        tarDirectory(oci, path.join(work, "oci.tar"));
        write("oci-archive", "layout.tar", fs.readFileSync(path.join(work, "oci.tar")));
        const both = path.join(work, "both");
        writeOciLayout(both, [{ image, name: "app:latest" }], { dockerManifest: true });
        tarDirectory(both, path.join(work, "both.tar"));
        write("oci-archive", "layout-with-docker-manifest.tar", fs.readFileSync(path.join(work, "both.tar")));
        writeDockerSave(path.join(work, "save.tar"), [{ image, repoTags: ["app:latest"] }], { linkLayers: true });
        write("docker-save", "linked-layers.tar", fs.readFileSync(path.join(work, "save.tar")));
        writeDockerSave(path.join(work, "save2.tar"), [{ image, repoTags: ["app:1"] }, { image: arm, repoTags: ["app:arm"] }]);
        write("docker-save", "two-images.tar", fs.readFileSync(path.join(work, "save2.tar")));

        for (const [name, count] of [["release-dir.erofs", 2], ["two-block-dir.erofs", 150]] as const) {
            const tree = path.join(work, `tree-${name}`);
            const release = path.join(tree, "usr/lib/extension-release.d");
            fs.mkdirSync(release, { recursive: true });
            fs.writeFileSync(path.join(release, "extension-release.k3s"), "ID=_any\n");
            fs.symlinkSync("extension-release.k3s", path.join(release, "extension-release.alias"));
            fs.mkdirSync(path.join(tree, "usr/share/many"), { recursive: true });
            for (let i = 0; i < count; i++) fs.writeFileSync(path.join(tree, "usr/share/many", `entry-${String(i).padStart(4, "0")}`), "");
            const out = path.join(work, name);
            await run(["mkfs.erofs", "--quiet", "-T0", "-U00000000-0000-0000-0000-000000000001", out, tree]);
            write("erofs", name, fs.readFileSync(out));
        }

        const signer = await makeCertificate(work, "fuzz-signer", 1024);
        write("authenticode", "signature.p7", await authenticodeSignature(Buffer.alloc(32, 0xab), { key: signer.key, certificate: signer.certificate }));
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }

    const x509 = eslList("a5c059a1-94e4-4aa7-87b5-ab155c2bf072", [SAMPLE_CERTIFICATE]);
    const hashes = eslList("c1c41626-504c-4092-aca9-41f936934328", [Buffer.alloc(32, 1), Buffer.alloc(32, 2)]);
    write("esl", "x509.esl", x509);
    write("esl", "x509-and-hashes.esl", Buffer.concat([x509, hashes]));

    const time = Buffer.from([0xea, 0x07, 11, 30, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const winCert = Buffer.alloc(24);
    winCert.writeUInt32LE(24, 0);
    write("efi-auth", "db.auth", Buffer.concat([time, winCert, hashes]));

    write("pe", "stub-like.efi", samplePeImage([
        { name: ".text", data: Buffer.alloc(64, 0x90) },
        { name: ".sdmagic", data: Buffer.from("#### LoaderInfo: systemd-stub 252.39 ####\0") },
        { name: ".sbat", data: Buffer.from("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n") },
    ]));
    write("pe", "pe32.efi", samplePeImage([{ name: ".text", data: Buffer.alloc(16, 0xc3) }], false));
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});

// The offline demo's Pulumi program (what `npm run demo` deploys): Secure Boot keys, k3s as a signed
// system extension built by BuildKit from the seed-shaped examples/k3s-sysext/Dockerfile, a signed
// confext, the systemd test OS as a signed UKI, and an ISO that enrols the keys, carries the extensions
// next to the UKI (systemd-stub hands them to the booted system) and a cloud-config that starts k3s —
// TrustedBootImage wiring the whole pipeline. Everything comes from Debian's archive and this repo.
//
// Every path it gives the resources is relative to the Pulumi project folder, as the README tells users
// to write them: the state then names no folder of this machine, and the same checkout moved elsewhere
// (or cloned at another path by a CI runner) previews no changes.
import * as path from "path";
import { TrustedBootImage } from "../../index";
import { SYSTEMD_TEST_OS_CMDLINE } from "../../scripts/lib/systemd-test-os";
import { writeDemoPayloads } from "./payloads";

/**
 * `outDir` and `testOsDir` are relative to `projectDir`, the Pulumi project folder (the working
 * directory of the providers, where relative inputs resolve); this process may run elsewhere.
 */
export function demoProgram(outDir: string, testOsDir: string, projectDir = process.cwd()) {
    return async () => {
        const written = await writeDemoPayloads(path.resolve(projectDir, outDir, "payloads"));
        const rel = (p: string) => path.relative(projectDir, p);
        const payloads = { k3s: { context: rel(written.k3s.context), dockerfile: rel(written.k3s.dockerfile) }, config: rel(written.config), cloudConfig: rel(written.cloudConfig) };
        const image = new TrustedBootImage("pulumi-kairos-demo", {
            outputDir: outDir,
            keys: { name: "pulumi-kairos-demo" },
            protectKeys: false, // a demo you can `pulumi destroy`; keep the default (true) for real keys
            extensions: [
                // Built by BuildKit from examples/k3s-sysext/Dockerfile (BUILDKIT_HOST: run.ts starts a
                // buildkitd); its extension-release file asks systemd to reload units once it is merged.
                { name: "k3s", source: { dockerfile: payloads.k3s } },
                { name: "demo-motd", kind: "confext", source: { dir: payloads.config } },
            ],
            os: {
                source: { dir: testOsDir },
                bootTitle: "Kairos demo",
                extendCmdline: SYSTEMD_TEST_OS_CMDLINE,
                // zstd -19 (the default, AuroraBoot-sized) takes ~100 s for this 97 MB OS on 2 cores; -10 takes ~7 s for 13% more
                initrdCompressionLevel: 10,
            },
            media: { name: "kairos-demo", cloudConfig: payloads.cloudConfig, timeout: 1 },
        });
        return {
            iso: { path: image.media.path, sha256: image.media.sha256, size: image.media.size },
            ukis: image.uki.ukis,
            pcr11: image.uki.pcr11,
            pcr13: image.media.pcr13,
            extensions: image.extensions.map((e) => ({ path: e.path, sha256: e.sha256, rootHash: e.rootHash })),
            certificates: image.keys.certificates.apply((c) =>
                Object.fromEntries(Object.entries(c).map(([role, info]) => [role, { subject: info.subject, sha256Fingerprint: info.sha256Fingerprint, notAfter: info.notAfter }])),
            ),
            signatureLists: image.keys.signatureLists,
        };
    };
}

// The offline demo's Pulumi program (what `npm run demo` deploys): Secure Boot keys, k3s as a signed
// system extension and a signed confext, the systemd test OS as a signed UKI, and an ISO that enrols
// the keys, carries the extensions next to the UKI (systemd-stub hands them to the booted system) and
// a cloud-config that starts k3s — TrustedBootImage wiring the whole pipeline. Everything comes from
// Debian packages and this repo; no network.
import * as path from "path";
import { TrustedBootImage } from "../../index";
import { SYSTEMD_TEST_OS_CMDLINE } from "../../scripts/lib/systemd-test-os";
import { writeDemoPayloads } from "./payloads";

export function demoProgram(outDir: string, testOsDir: string) {
    return async () => {
        const payloads = await writeDemoPayloads(path.join(outDir, "payloads"));
        const image = new TrustedBootImage("pulumi-kairos-demo", {
            outputDir: outDir,
            keys: { name: "pulumi-kairos-demo" },
            protectKeys: false, // a demo you can `pulumi destroy`; keep the default (true) for real keys
            extensions: [
                // EXTENSION_RELOAD_MANAGER=1: systemd loads k3s.service once the extension is merged
                { name: "k3s", source: { dir: payloads.k3s }, release: { reloadManager: true } },
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

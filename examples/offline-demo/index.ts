// The offline demo's Pulumi program (what `npm run demo` deploys): Secure Boot keys, two signed
// extensions, the test OS as a signed UKI and an ISO that enrols the keys — TrustedBootImage wiring
// the whole pipeline. Everything comes from Debian packages on this machine; no network.
import * as path from "path";
import { TrustedBootImage } from "../../index";
import { writeDemoPayloads } from "./payloads";

export function demoProgram(outDir: string, testOsDir: string) {
    return async () => {
        const payloads = writeDemoPayloads(path.join(outDir, "payloads"));
        const image = new TrustedBootImage("pulumi-kairos-demo", {
            outputDir: outDir,
            keys: { name: "pulumi-kairos-demo" },
            protectKeys: false, // a demo you can `pulumi destroy`; keep the default (true) for real keys
            extensions: [
                { name: "kairos-hello", source: { dir: payloads.tool } },
                { name: "demo-motd", kind: "confext", source: { dir: payloads.config } },
            ],
            os: { source: { dir: testOsDir }, bootTitle: "Kairos demo" },
            // Debian 12's systemd-boot (252) knows force/manual/off, not if-safe.
            media: { name: "kairos-demo", secureBootEnroll: "force", timeout: 1 },
        });
        return {
            iso: { path: image.media.path, sha256: image.media.sha256, size: image.media.size },
            ukis: image.uki.ukis,
            pcr11: image.uki.pcr11,
            extensions: image.extensions.map((e) => ({ path: e.path, sha256: e.sha256, rootHash: e.rootHash })),
            certificates: image.keys.certificates.apply((c) =>
                Object.fromEntries(Object.entries(c).map(([role, info]) => [role, { subject: info.subject, sha256Fingerprint: info.sha256Fingerprint, notAfter: info.notAfter }])),
            ),
            signatureLists: image.keys.signatureLists,
        };
    };
}

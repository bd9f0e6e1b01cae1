// The offline demo's Pulumi program: what `npm run demo` deploys. It grows with the pipeline:
// keys now; system extensions, the UKI and the ISO as those resources land.
import * as path from "path";
import { SigningKeys, SystemExtension } from "../../index";
import { writeDemoPayloads } from "./payloads";

export function demoProgram(outDir: string) {
    return async () => {
        const keys = new SigningKeys("demo-keys", {
            name: "pulumi-kairos-demo",
            outputDir: path.join(outDir, "keys"),
        });
        const payloads = writeDemoPayloads(path.join(outDir, "payloads"));
        const hello = new SystemExtension("kairos-hello", {
            name: "kairos-hello",
            outputDir: path.join(outDir, "extensions"),
            source: { dir: payloads.tool },
            signingKeys: keys,
        });
        const motd = new SystemExtension("demo-motd", {
            name: "demo-motd",
            kind: "confext",
            outputDir: path.join(outDir, "extensions"),
            source: { dir: payloads.config },
            signingKeys: keys,
        });
        return {
            keyDir: keys.keyDir,
            certificates: keys.certificates.apply((c) =>
                Object.fromEntries(Object.entries(c).map(([role, info]) => [role, { subject: info.subject, sha256Fingerprint: info.sha256Fingerprint, notAfter: info.notAfter }])),
            ),
            signatureLists: keys.signatureLists,
            extensions: {
                "kairos-hello": { path: hello.path, sha256: hello.sha256, rootHash: hello.rootHash },
                "demo-motd": { path: motd.path, sha256: motd.sha256, rootHash: motd.rootHash },
            },
        };
    };
}

// The offline demo's Pulumi program: what `npm run demo` deploys. It grows with the pipeline:
// keys now; system extensions, the UKI and the ISO as those resources land.
import * as path from "path";
import { SigningKeys } from "../../index";

export function demoProgram(outDir: string) {
    return async () => {
        const keys = new SigningKeys("demo-keys", {
            name: "pulumi-kairos-demo",
            outputDir: path.join(outDir, "keys"),
        });
        return {
            keyDir: keys.keyDir,
            certificates: keys.certificates.apply((c) =>
                Object.fromEntries(Object.entries(c).map(([role, info]) => [role, { subject: info.subject, sha256Fingerprint: info.sha256Fingerprint, notAfter: info.notAfter }])),
            ),
            signatureLists: keys.signatureLists,
        };
    };
}

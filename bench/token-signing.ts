// Benchmark (issue 14): one RSA-2048 signature from a key file (in-process) vs the same key in a
// SoftHSM2 token (openssl pkeyutl + the pkcs11 engine, one process per signature). Prints numbers.
// Usage: npx ts-node --transpile-only bench/token-signing.ts [COUNT]
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { openSigner } from "../provider/toolkit/keys/signer";
import { makeCertificate } from "../test/helpers/pki";
import { makeTestToken } from "../test/helpers/softhsm";
import { timed } from "./timing";

async function main(count: number): Promise<void> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-token-"));
    try {
        const token = await makeTestToken(path.join(work, "hsm"));
        const signer = await makeCertificate(work, "db");
        const tokenKey = await token.importKey(signer.key, "db", "01");
        const data = Buffer.from("x".repeat(1000));
        const perSignature = async (key: string) => {
            const s = openSigner(key);
            return ((await timed(async () => {
                for (let i = 0; i < count; i++) await s.sign("sha256", data);
            })) * 1000) / count;
        };
        const file = await perSignature(signer.key);
        const inToken = await perSignature(tokenKey);
        console.log(`RSA-2048 signature, mean of ${count}: file ${file.toFixed(2)} ms, token ${inToken.toFixed(1)} ms (${(inToken / file).toFixed(0)}x)`);
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

main(Number(process.argv[2] ?? 20)).catch((e) => {
    console.error(e);
    process.exit(1);
});

// efitools steps: certificate -> EFI signature list, and signed EFI_VARIABLE_AUTHENTICATION_2 (.auth).
import * as fs from "fs";
import { explainTokenFailure, isPkcs11Uri, withPin } from "./pkcs11";
import { run } from "../run";

export async function certificateToSignatureList(certFile: string, ownerGuid: string, eslFile: string): Promise<void> {
    await run(["cert-to-efi-sig-list", "-g", ownerGuid, certFile, eslFile]);
}

export type SecureBootVariable = "PK" | "KEK" | "db";

export interface AuthSigning {
    variable: SecureBootVariable;
    eslFile: string;
    signerKey: string;
    signerCert: string;
    ownerGuid: string;
    /** "YYYY-MM-DD HH:MM:SS" (UTC); a fixed value makes the .auth byte-identical on every run. */
    timestamp: string;
    authFile: string;
}

export async function signSignatureList(s: AuthSigning): Promise<void> {
    const sign = async (key: string[], env: Record<string, string>) => {
        const result = await run(["sign-efi-sig-list", "-t", s.timestamp, "-g", s.ownerGuid, ...key, "-c", s.signerCert, s.variable, s.eslFile, s.authFile], { env: { ...env, TZ: "UTC" } });
        // A key that may not sign makes sign-efi-sig-list print OpenSSL's errors to stdout, write an
        // .auth with an empty signature and exit 0: its own output is the only sign.
        const errors = `${result.stdout}\n${result.stderr}`.split("\n").filter((l) => l.includes(":error:"));
        if (errors.length > 0) {
            fs.rmSync(s.authFile, { force: true });
            throw new Error(`sign-efi-sig-list could not sign ${s.variable} (it exited 0 with OpenSSL errors; no .auth was kept): ${errors.join(" ")}`);
        }
    };
    // efitools takes an engine key with -e; the .auth is byte-identical to the one a key file gives.
    if (isPkcs11Uri(s.signerKey)) await withPin(s.signerKey, (key, env) => sign(["-e", "pkcs11", "-k", key], env).catch((e) => { throw explainTokenFailure(s.signerKey, e); }));
    else await sign(["-k", s.signerKey], {});
}

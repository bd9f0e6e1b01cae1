// efitools steps: certificate -> EFI signature list, and signed EFI_VARIABLE_AUTHENTICATION_2 (.auth).
import { explainTokenFailure, isPkcs11Uri, withPin } from "./pkcs11";
import { run } from "./run";

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
    const sign = (key: string[], env: Record<string, string>) =>
        run(["sign-efi-sig-list", "-t", s.timestamp, "-g", s.ownerGuid, ...key, "-c", s.signerCert, s.variable, s.eslFile, s.authFile], { env: { ...env, TZ: "UTC" } });
    // efitools takes an engine key with -e; the .auth is byte-identical to the one a key file gives.
    if (isPkcs11Uri(s.signerKey)) await withPin(s.signerKey, (key, env) => sign(["-e", "pkcs11", "-k", key], env).catch((e) => { throw explainTokenFailure(s.signerKey, e); }));
    else await sign(["-k", s.signerKey], {});
}

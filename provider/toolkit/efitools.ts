// efitools steps: certificate -> EFI signature list, and signed EFI_VARIABLE_AUTHENTICATION_2 (.auth).
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
    await run([
        "sign-efi-sig-list",
        "-t", s.timestamp,
        "-g", s.ownerGuid,
        "-k", s.signerKey,
        "-c", s.signerCert,
        s.variable, s.eslFile, s.authFile,
    ], { env: { TZ: "UTC" } });
}

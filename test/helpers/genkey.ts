// A key folder as `auroraboot genkey <name>` writes it (reference/auroraboot.md §1): for PK, KEK and db
// `openssl req -nodes -x509 -subj /CN=<name>-<T>/`, the DER copy, an ESL with one random owner GUID,
// KEK/db with an extra list appended (genkey appends Microsoft's UEFI CAs; here a stand-in certificate
// under Microsoft's owner GUID), .auth signed PK->PK, PK->KEK, KEK->db, and tpm2-pcr-private.pem.
// Made with openssl and efitools, since AuroraBoot itself cannot run here.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";
import { OPENSSL_ENV } from "../../provider/toolkit/keys/openssl";

const MICROSOFT_OWNER_GUID = "77fa9abd-0359-4d32-bd60-28f4e78f784b";
const SIGNER = { PK: "PK", KEK: "PK", db: "KEK" } as const;

export interface GenkeyOptions {
    days?: number;
    /** Append a stand-in for Microsoft's CA lists to KEK and db (genkey's default). @default true */
    microsoftLists?: boolean;
    /** The signing time in the .auth files, "YYYY-MM-DD HH:MM:SS". */
    timestamp?: string;
}

export async function makeGenkeyFolder(dir: string, name: string, opts: GenkeyOptions = {}): Promise<void> {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const at = (f: string) => path.join(dir, f);
    const guid = crypto.randomUUID();
    let extra: Buffer | undefined;
    if (opts.microsoftLists ?? true) {
        const scratch = fs.mkdtempSync(path.join(dir, ".ms-"));
        await run(["openssl", "req", "-nodes", "-x509", "-newkey", "rsa:2048", "-subj", "/CN=Stand-in Microsoft Corporation KEK CA 2011/", "-keyout", path.join(scratch, "ms.key"), "-out", path.join(scratch, "ms.pem"), "-days", "30"], { env: OPENSSL_ENV });
        await run(["cert-to-efi-sig-list", "-g", MICROSOFT_OWNER_GUID, path.join(scratch, "ms.pem"), path.join(scratch, "ms.esl")]);
        extra = fs.readFileSync(path.join(scratch, "ms.esl"));
        fs.rmSync(scratch, { recursive: true });
    }
    for (const t of ["PK", "KEK", "db"] as const) {
        await run(["openssl", "req", "-nodes", "-x509", "-newkey", "rsa:2048", "-subj", `/CN=${name}-${t}/`, "-keyout", at(`${t}.key`), "-out", at(`${t}.pem`), "-days", String(opts.days ?? 365)], { env: OPENSSL_ENV });
        await run(["openssl", "x509", "-in", at(`${t}.pem`), "-outform", "DER", "-out", at(`${t}.der`)], { env: OPENSSL_ENV });
        await run(["cert-to-efi-sig-list", "-g", guid, at(`${t}.pem`), at(`${t}.esl`)]);
        if (extra && t !== "PK") fs.appendFileSync(at(`${t}.esl`), extra);
    }
    for (const t of ["PK", "KEK", "db"] as const) {
        const s = SIGNER[t];
        await run(["sign-efi-sig-list", "-g", guid, "-t", opts.timestamp ?? "2026-11-30 10:00:00", "-k", at(`${s}.key`), "-c", at(`${s}.pem`), t, at(`${t}.esl`), at(`${t}.auth`)]);
    }
    await run(["openssl", "genrsa", "-out", at("tpm2-pcr-private.pem"), "2048"], { env: OPENSSL_ENV });
    for (const f of fs.readdirSync(dir)) if (f.endsWith(".key") || f === "tpm2-pcr-private.pem") fs.chmodSync(at(f), 0o600);
}

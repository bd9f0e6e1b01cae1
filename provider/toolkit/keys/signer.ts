// One RSA signing key, wherever it lives: a PEM/DER file (Node's crypto signs in-process) or a PKCS#11
// token (the token signs; the private key never leaves it). RSA PKCS#1 v1.5 is deterministic, so both
// give the same bytes for the same key: a token-signed artifact is byte-identical to a file-signed one.
import * as fs from "fs";
import { createHash, createPrivateKey, createPublicKey, KeyObject, sign as rsaSign } from "crypto";
import { isPkcs11Uri, tokenPublicKey, tokenSignDigest } from "./pkcs11";
import { redactPin } from "../pin";

export interface RsaSigner {
    /** The key's file path or PKCS#11 URI, for messages. */
    readonly ref: string;
    readonly publicKey: KeyObject;
    /** RSA PKCS#1 v1.5 over `data` hashed with `hash` (sha1, sha256, sha384, sha512). */
    sign(hash: string, data: Buffer): Promise<Buffer>;
}

/** A signer for a key file path, PEM text, a KeyObject, or a `pkcs11:` URI. Only RSA keys. */
export function openSigner(key: string | Buffer | KeyObject | RsaSigner): RsaSigner {
    if (isSigner(key)) return key;
    if (typeof key === "string" && isPkcs11Uri(key)) {
        const publicKey = tokenPublicKey(key);
        requireRsa(publicKey, redactPin(key));
        return { ref: redactPin(key), publicKey, sign: (hash, data) => tokenSignDigest(key, hash, createHash(hash).update(data).digest()) };
    }
    const isPath = typeof key === "string" && !key.includes("-----BEGIN");
    const privateKey = key instanceof KeyObject ? key : createPrivateKey(isPath ? fs.readFileSync(key as string) : (key as string | Buffer));
    const ref = isPath ? (key as string) : "(key in memory)";
    requireRsa(privateKey, ref);
    return { ref, publicKey: createPublicKey(privateKey), sign: async (hash, data) => rsaSign(hash, data, privateKey) };
}

export class NotRsaKeyError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "NotRsaKeyError";
    }
}

function requireRsa(key: KeyObject, ref: string): void {
    if (key.asymmetricKeyType !== "rsa") throw new NotRsaKeyError(`${ref} is an ${key.asymmetricKeyType?.toUpperCase()} key; Secure Boot, verity signatures and PCR policies here need RSA`);
}

function isSigner(k: unknown): k is RsaSigner {
    return !!k && typeof k === "object" && typeof (k as RsaSigner).sign === "function" && (k as RsaSigner).publicKey instanceof KeyObject;
}

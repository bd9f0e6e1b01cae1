// Keys that never leave a PKCS#11 token (an HSM, a YubiHSM, a cloud KMS's PKCS#11 module; SoftHSM2 in
// the tests). A key is named by an RFC 7512 URI (`pkcs11:token=kairos-prod;object=db`); every use goes
// through OpenSSL's pkcs11 engine (libp11), which loads p11-kit's proxy and so every module p11-kit
// knows, or the module in PKCS11_MODULE_PATH. The token PIN comes from the environment
// (KAIROS_PKCS11_PIN) and reaches the engine through a 0600 file that lives only for one command
// (`pin-source=file:`), so it is never in an argv, a log line, an input or the state; pin.ts says
// which processes get it at all.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { createHash, createPublicKey, KeyObject, verify } from "crypto";
import { run, ToolFailedError } from "../run";
import { PIN_ENV, carriesPin, makePinFolder, pinEnv, redactPin, toolEnv } from "../pin";

export { PIN_ENV };
/** p11-kit's proxy module, found on the library path: every token p11-kit knows (softhsm2, opensc, registered vendor modules). */
const P11_KIT_PROXY = "p11-kit-proxy.so";

export function isPkcs11Uri(ref: string | undefined): boolean {
    return typeof ref === "string" && /^pkcs11:/i.test(ref);
}

/** The module pkcs11-tool and the engine load: PKCS11_MODULE_PATH, else p11-kit's proxy. */
export function pkcs11Module(): string {
    return process.env.PKCS11_MODULE_PATH || P11_KIT_PROXY;
}

/** Environment for tools that load the engine: the host's openssl.cnf stays out, the module is named. */
function engineEnv(): Record<string, string> {
    return { OPENSSL_CONF: "/dev/null", ...(process.env.PKCS11_MODULE_PATH ? { PKCS11_MODULE_PATH: process.env.PKCS11_MODULE_PATH } : {}) };
}

export interface Pkcs11Uri {
    token?: string;
    object?: string;
    id?: string;
    type?: string;
    attributes: Record<string, string>;
}

export function parsePkcs11Uri(uri: string): Pkcs11Uri {
    const body = uri.replace(/^pkcs11:/i, "").split("?")[0];
    const attributes: Record<string, string> = {};
    for (const part of body.split(";").filter(Boolean)) {
        const eq = part.indexOf("=");
        const k = eq < 0 ? part : part.slice(0, eq);
        attributes[k] = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
    }
    return { token: attributes.token, object: attributes.object, id: attributes.id, type: attributes.type, attributes };
}

/** Why a URI cannot name a signing key here, or undefined. */
export function pkcs11UriProblem(uri: string): string | undefined {
    const u = parsePkcs11Uri(uri);
    // the one PIN rule (pin.ts), the same check refuses inputs with: path attribute or query, any case
    if (carriesPin(uri)) {
        return `carries a PIN; a PIN in the URI would be kept in the state and shown in logs. Remove it and give the PIN in ${PIN_ENV}`;
    }
    if (!u.token) return "names no token (token=…)";
    if (!u.object && !u.id) return "names no key (object=… or id=…)";
    if (u.type && u.type !== "private") return `names a ${u.type} object; give the private key (type=private, or no type)`;
    return undefined;
}

/** `uri` for one object type (private or public), without any PIN attribute. */
function withType(uri: string, type: "private" | "public" | "cert"): string {
    const parts = uri.replace(/^pkcs11:/i, "").split("?")[0].split(";").filter((p) => p && !/^(type|pin-value|pin-source)=/.test(p));
    return `pkcs11:${[...parts, `type=${type}`].join(";")}`;
}

/** The token's label, for messages. */
export function tokenLabel(uri: string): string {
    return parsePkcs11Uri(uri).token ?? "?";
}

/**
 * Runs `fn` with the private-key URI carrying `pin-source=file:` of a 0600 file that holds the PIN
 * from the environment; the file is removed when `fn` ends, whatever happened.
 */
export async function withPin<T>(uri: string, fn: (uriWithPin: string, env: Record<string, string>) => Promise<T>): Promise<T> {
    const pin = process.env[PIN_ENV];
    if (!pin) throw new Pkcs11Error(`the key ${redactPin(uri)} is in a PKCS#11 token: set ${PIN_ENV} to the token's user PIN (a Pulumi secret or CI secret in the environment)`);
    const dir = makePinFolder(pin);
    try {
        return await fn(`${withType(uri, "private")};pin-source=file:${path.join(dir, "pin")}`, engineEnv());
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** The engine arguments openssl's apps take to use a token key as `-inkey`/`-key`. */
export const ENGINE_KEY_ARGS = ["-engine", "pkcs11", "-keyform", "engine"];

/** A key-related failure from a token, said in words (wrong PIN, no such token or key). */
export class Pkcs11Error extends Error {
    constructor(message: string) {
        super(message);
        this.name = "Pkcs11Error";
    }
}

/** RSA PKCS#1 v1.5 signature over `digest` (already hashed with `hash`) by the token key at `uri`. */
export async function tokenSignDigest(uri: string, hash: string, digest: Buffer): Promise<Buffer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-p11sig-"));
    try {
        fs.writeFileSync(path.join(dir, "digest"), digest);
        await withPin(uri, (key, env) =>
            run(["openssl", "pkeyutl", "-sign", ...ENGINE_KEY_ARGS, "-inkey", key, "-pkeyopt", `digest:${hash}`, "-in", path.join(dir, "digest"), "-out", path.join(dir, "sig")], { env }).catch((e) => {
                throw explainTokenFailure(uri, e);
            }),
        );
        return fs.readFileSync(path.join(dir, "sig"));
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * The public key of the token key at `uri` (no PIN needed: the public object). Synchronous, for input
 * checks; throws a Pkcs11Error that says what is missing.
 */
export function tokenPublicKey(uri: string): KeyObject {
    const res = spawnSync("openssl", ["pkey", ...ENGINE_KEY_ARGS.slice(0, 2), "-inform", "engine", "-in", withType(uri, "public"), "-pubin", "-pubout"], {
        env: toolEnv(engineEnv()), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"],
    });
    if (res.error) throw new Pkcs11Error(`cannot run openssl to read ${redactPin(uri)}: ${res.error.message}`);
    if (res.status !== 0 || !res.stdout.includes("BEGIN PUBLIC KEY")) throw explainTokenFailure(uri, new Error(res.stderr));
    return createPublicKey(res.stdout);
}

/** Token label + PIN digest -> the refusal, for PINs a token refused in this process. */
const refusedPins = new Map<string, string>();

/** Whether a problem is about the PIN (further tries would count towards the token's lockout). */
export function isPinProblem(problem: string): boolean {
    return problem.includes(`the PIN in ${PIN_ENV} is not`) || problem.includes("locked its user PIN") || problem.includes(`set ${PIN_ENV}`);
}

/** What failed, in words: a wrong PIN, a token that is not there, a key that is not in it. */
export function explainTokenFailure(pinnedUri: string, e: unknown): Error {
    const uri = redactPin(pinnedUri); // check() refuses a URI with a PIN; a message never shows one either way
    const text = redactPin(e instanceof ToolFailedError ? `${e.message}` : String((e as Error)?.message ?? e));
    const label = tokenLabel(uri);
    if (/PIN incorrect|CKR_PIN_INCORRECT/i.test(text)) return new Pkcs11Error(`the PIN in ${PIN_ENV} is not the user PIN of token "${label}" (the token refused it; it may lock after a few tries). Nothing was signed.`);
    if (/PIN locked|CKR_PIN_LOCKED/i.test(text)) return new Pkcs11Error(`token "${label}" has locked its user PIN; unlock it with the SO PIN. Nothing was signed.`);
    if (/object not found|Could not read|cannot load|No such/i.test(text)) {
        const tokens = listTokens();
        if (!tokens.includes(label)) {
            return new Pkcs11Error(`no PKCS#11 token is labelled "${label}" (tokens seen through ${pkcs11Module()}: ${tokens.length ? tokens.join(", ") : "none"}). Check the URI ${uri}, the token's module (PKCS11_MODULE_PATH, or its p11-kit registration) and, for SoftHSM2, SOFTHSM2_CONF.`);
        }
        return new Pkcs11Error(`token "${label}" holds no key matching ${uri} (object=/id= name its private key; \`pkcs11-tool --module ${pkcs11Module()} --token-label ${label} -O\` lists them)`);
    }
    if (/invalid engine "pkcs11"|engine.*not (found|available)|could not load the shared library|DSO support routines/i.test(text)) {
        return new Pkcs11Error(`OpenSSL has no pkcs11 engine to reach ${uri}: install libengine-pkcs11-openssl (Debian, Ubuntu) or openssl-pkcs11 (Fedora)`);
    }
    if (/not permitted|CKR_KEY_FUNCTION_NOT_PERMITTED|KEY_TYPE_INCONSISTENT/i.test(text)) return new Pkcs11Error(`the key ${uri} may not sign (its token does not allow it): use a key with the sign usage`);
    return new Pkcs11Error(`the token key ${uri} failed: ${text.split("\n").slice(-4).join(" ").trim()}`);
}

/** Token labels the module shows (pkcs11-tool -L), no login needed. */
export function listTokens(): string[] {
    const res = spawnSync("pkcs11-tool", ["--module", pkcs11Module(), "-L"], { env: toolEnv(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if (res.status !== 0) return [];
    return [...res.stdout.matchAll(/token label\s*:\s*(.*)$/gm)].map((m) => m[1].trim());
}

/**
 * Makes an RSA key pair inside the token (sensitive, never extractable), labelled `label` with `id`
 * (hex); returns its URI. An object of that label already there is refused: keys are never replaced.
 */
export async function generateTokenKey(tokenUri: string, label: string, id: string, bits: number): Promise<string> {
    const token = tokenLabel(tokenUri);
    const uri = `pkcs11:token=${encodeURIComponent(token)};object=${encodeURIComponent(label)}`;
    if (tokenObjectExists(uri)) throw new Pkcs11Error(`token "${token}" already holds a key labelled "${label}"; SigningKeys never replaces keys (use it with import, or pick another name)`);
    if (!process.env[PIN_ENV]) throw new Pkcs11Error(`generating keys in token "${token}" needs its user PIN: set ${PIN_ENV}`);
    await run(["pkcs11-tool", "--module", pkcs11Module(), "--token-label", token, "--login", "--pin", `env:${PIN_ENV}`,
        "--keypairgen", "--key-type", `rsa:${bits}`, "--id", id, "--label", label, "--usage-sign"], { env: pinEnv() }).catch((e) => {
        throw explainTokenFailure(uri, e);
    });
    return uri;
}

/** Writes a certificate (DER) into the token next to its key, under the same label and id. */
export async function writeTokenCertificate(tokenUri: string, label: string, id: string, derFile: string): Promise<void> {
    await run(["pkcs11-tool", "--module", pkcs11Module(), "--token-label", tokenLabel(tokenUri), "--login", "--pin", `env:${PIN_ENV}`,
        "--write-object", derFile, "--type", "cert", "--id", id, "--label", label], { env: pinEnv() });
}

/** Whether the token has a public key object matching `uri` (no login). */
export function tokenObjectExists(uri: string): boolean {
    try {
        tokenPublicKey(uri);
        return true;
    } catch {
        return false;
    }
}

/**
 * Everything that would stop the token key at `uri` from signing, found before anything is built: a
 * bad URI, no PIN, no such token or key, a wrong PIN, a key that is not RSA or may not sign. A probe
 * signature over a fixed digest is made and checked against the key's public half. Synchronous, for
 * the input checks preview runs.
 */
export function tokenKeyProblem(pinnedUri: string): string | undefined {
    const bad = pkcs11UriProblem(pinnedUri);
    if (bad) return `${redactPin(pinnedUri)} ${bad}`;
    const uri = pinnedUri; // no PIN in it from here on
    const module = process.env.PKCS11_MODULE_PATH;
    if (module && !fs.existsSync(module)) return `PKCS11_MODULE_PATH names ${module}, which does not exist: point it at your token's PKCS#11 module (or unset it to use p11-kit's proxy)`;
    let publicKey: KeyObject;
    try {
        publicKey = tokenPublicKey(uri);
    } catch (e) {
        return (e as Error).message;
    }
    if (publicKey.asymmetricKeyType !== "rsa") return `${uri} is an ${publicKey.asymmetricKeyType?.toUpperCase()} key; Secure Boot, verity signatures and PCR policies here need RSA`;
    const pin = process.env[PIN_ENV];
    if (!pin) return `${uri} is in a PKCS#11 token: set ${PIN_ENV} to the token's user PIN (a Pulumi secret or CI secret in the environment)`;
    // A PIN the token refused is not offered again in this process: real HSMs lock after a few tries.
    const refusedKey = `${tokenLabel(uri)}\0${createHash("sha256").update(pin).digest("hex")}`;
    const refused = refusedPins.get(refusedKey);
    if (refused) return refused;
    const dir = makePinFolder(pin);
    try {
        const digest = createHash("sha256").update("pulumi-kairos token probe").digest();
        fs.writeFileSync(path.join(dir, "digest"), digest);
        const res = spawnSync("openssl", ["pkeyutl", "-sign", ...ENGINE_KEY_ARGS, "-inkey", `${withType(uri, "private")};pin-source=file:${path.join(dir, "pin")}`, "-pkeyopt", "digest:sha256", "-in", path.join(dir, "digest"), "-out", path.join(dir, "sig")], {
            env: toolEnv(engineEnv()), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"],
        });
        if (res.status !== 0) {
            const problem = explainTokenFailure(uri, new Error(res.stderr)).message;
            if (isPinProblem(problem)) refusedPins.set(refusedKey, problem);
            return problem;
        }
        if (!verify("sha256", Buffer.from("pulumi-kairos token probe"), publicKey, fs.readFileSync(path.join(dir, "sig")))) {
            return `${uri}: the token's private key does not match its public key object (the probe signature does not verify)`;
        }
        return undefined;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

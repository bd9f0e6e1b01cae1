// Where the token PIN may go, and where it may not. The PIN comes from KAIROS_PKCS11_PIN in the
// provider's environment and reaches exactly two kinds of process: pkcs11-tool when it logs in to make
// a key or write a certificate (passed by name, `--pin env:`), and the OpenSSL engine through a 0600
// file in /dev/shm that lives for one command (`pin-source=file:`). Every other tool the provider runs,
// among them the ones that parse untrusted images (tar, mkfs.erofs, xorriso, sfdisk …), is started
// without it. A URI that carries a PIN is refused as an input, and messages never show the value.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { processAlive, processTag, taggedProcess } from "./process-alive";

export const PIN_ENV = "KAIROS_PKCS11_PIN";

/** Variables of the provider's environment that no tool gets unless its call names them (RunOptions.env). */
const WITHHELD_ENV = [PIN_ENV];

/** The environment for a tool: the provider's own without the withheld variables, plus `extra` (undefined: unset). */
export function toolEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
    const env: Record<string, string | undefined> = { ...process.env };
    for (const name of WITHHELD_ENV) delete env[name];
    for (const [k, v] of Object.entries(extra)) {
        if (v === undefined) delete env[k];
        else env[k] = v;
    }
    return env as NodeJS.ProcessEnv;
}

/** The PIN, for the one call that needs it by name (pkcs11-tool `--pin env:KAIROS_PKCS11_PIN`). */
export function pinEnv(): Record<string, string> {
    const pin = process.env[PIN_ENV];
    return pin === undefined ? {} : { [PIN_ENV]: pin };
}

const PIN_ATTRIBUTE = /(pin-(?:value|source)=)[^;?&"'\s]*/gi;

/** Whether a `pkcs11:` URI carries a PIN (pin-value / pin-source, as a path attribute or in the query). */
export function carriesPin(uri: string): boolean {
    return /^pkcs11:/i.test(uri) && /(^|[:;?&])pin-(value|source)=/i.test(uri);
}

/** `text` with the value of every pin-value / pin-source attribute replaced by "***". */
export function redactPin(text: string): string {
    return text.replace(PIN_ATTRIBUTE, "$1***");
}

/**
 * Every string in `inputs` that is a `pkcs11:` URI carrying a PIN, by property path ("signing.key",
 * "import.PK.key"): such a URI would be kept in the state and shown in logs.
 */
export function pinCarryingInputs(inputs: unknown, at = ""): { property: string; reason: string }[] {
    if (typeof inputs === "string") {
        return carriesPin(inputs) ? [{ property: at, reason: `${redactPin(inputs)} carries a PIN, which would be kept in the state and shown in logs: remove pin-value/pin-source from the URI and give the PIN in ${PIN_ENV}` }] : [];
    }
    if (Array.isArray(inputs)) return inputs.flatMap((v, i) => pinCarryingInputs(v, `${at}[${i}]`));
    if (inputs && typeof inputs === "object") return Object.entries(inputs).flatMap(([k, v]) => pinCarryingInputs(v, at ? `${at}.${k}` : k));
    return [];
}

/** `value` with every string in it redacted (for inputs handed back with a refusal). */
export function redactedDeep<T>(value: T): T {
    if (typeof value === "string") return redactPin(value) as T;
    if (Array.isArray(value)) return value.map(redactedDeep) as T;
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactedDeep(v)])) as T;
    return value;
}

/**
 * PIN folders are named kairos-pin-<pid>-<start>-<random>: pid and start time say whose, so a dead
 * signer's can be swept even when its pid has been reused. Versions before 0.3 named them
 * kairos-pin-<pid>-<random> or kairos-pin-<random> (no owner at all).
 */
const PIN_FOLDER_PREFIX = "kairos-pin-";

/**
 * An ownerless PIN folder (of an older version) untouched this long is a dead signer's: each one held
 * the PIN for a single signing command, which takes seconds.
 */
export const OWNERLESS_PIN_FOLDER_AGE_MS = 60 * 60 * 1000;

/** Where PIN files live: in memory where /dev/shm exists. */
export function pinFolderParent(): string {
    return fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
}

/**
 * A private folder holding `pin` in a 0600 file named "pin"; the caller removes it. A signer killed
 * before it could (SIGKILL, OOM, a power cut of the CI job) leaves it behind; the next signing run of
 * any pulumi-kairos process on this machine removes it (sweepStalePinFolders).
 */
export function makePinFolder(pin: string): string {
    sweepStalePinFolders();
    const dir = fs.mkdtempSync(path.join(pinFolderParent(), `${PIN_FOLDER_PREFIX}${processTag()}-`));
    fs.writeFileSync(path.join(dir, "pin"), pin, { mode: 0o600 });
    return dir;
}

/** Removes PIN folders whose process is gone; a live process's folder is its signing run's. Returns the names removed. */
export function sweepStalePinFolders(parent = pinFolderParent()): string[] {
    let names: string[];
    try {
        names = fs.readdirSync(parent);
    } catch {
        return [];
    }
    const removed: string[] = [];
    for (const name of names) {
        if (!name.startsWith(PIN_FOLDER_PREFIX) || !stale(path.join(parent, name))) continue;
        try {
            fs.rmSync(path.join(parent, name), { recursive: true, force: true });
            removed.push(name);
        } catch {
            // another user's folder in a shared /dev/shm: not ours to remove
        }
    }
    return removed;
}

function stale(folder: string): boolean {
    let changed: Date;
    try {
        changed = fs.lstatSync(folder).mtime;
    } catch {
        return false; // gone meanwhile
    }
    const rest = path.basename(folder).slice(PIN_FOLDER_PREFIX.length);
    const owner = taggedProcess(rest);
    if (owner) return !processAlive(owner.pid, { started: owner.started, notAfter: owner.started ? undefined : changed });
    // kairos-pin-XXXXXX (mkdtemp's six characters) of a version that did not name the owner
    return /^[A-Za-z0-9]{6}$/.test(rest) && Date.now() - changed.getTime() > OWNERLESS_PIN_FOLDER_AGE_MS;
}

// PCR 11 predictions and the signed PCR policy (.pcrsig) of a UKI, computed the way systemd-measure does,
// with no TPM: a TPM2 PolicyPCR digest is plain hashing, and the signature is RSA PKCS#1 v1.5.
//
// What the stub measures into PCR 11, in this order, for each section that is present and not empty:
// extend(H(name + "\0")), then extend(H(content)), where extend(x) sets pcr = H(pcr || x) from all zeroes.
// systemd-pcrphase later extends H(word) for each boot phase word ("enter-initrd", "leave-initrd", ...).
//
// Which sections count depends on the stub that will run, not on the tool that builds the UKI:
// - systemd-stub 252 (Debian 12) measures .linux .osrel .cmdline .initrd .splash .dtb .pcrpkey. It does not
//   know .uname or .sbat (its section-name table holds only .linux .osrel .cmdline .initrd .splash .dtb
//   .pcrsig .pcrpkey, and systemd-measure 252 has no --uname/--sbat). A UKI booted here with a .uname and
//   the stub's own .sbat showed the PCR 11 that the 252 list predicts (probe-uki-iso-boot.md §3).
// - systemd-stub 254 and later also measure .uname and .sbat (systemd 254's NEWS); 257 (Debian 13, and
//   what Kairos images ship) measures every section of its list but .pcrsig, in the list's order:
//   .linux .osrel .cmdline .initrd .ucode .splash .dtb .uname .sbat .pcrpkey .profile .dtbauto .hwids
//   (src/fundamental/uki.h, unified_section_measure). A UKI on Debian 13's 257 stub booted here under
//   a vTPM showed the PCR 11 this list predicts (test/boot/installed-node.test.ts).
// - go-ukify (AuroraBoot) measures .linux .osrel .cmdline .initrd .splash .dtb .uname .sbat .pcrpkey:
//   the same order for the sections a Kairos UKI has.
// .pcrsig is never measured (it cannot sign itself).
import { sha256Hex } from "../files";
import { createHash, createPrivateKey, createPublicKey, KeyObject, verify as rsaVerify } from "crypto";
import { NotRsaKeyError, openSigner, RsaSigner } from "../keys/signer";
import * as fs from "fs";

export type PcrBank = "sha1" | "sha256" | "sha384" | "sha512";

/** Canonical bank order; systemd-measure prints banks in this order whatever order they were asked in. */
export const PCR_BANKS: readonly PcrBank[] = ["sha1", "sha256", "sha384", "sha512"];

/** What systemd-stub 252 measures, in its measurement order. */
export const SYSTEMD_252_MEASURED_SECTIONS: readonly string[] = [".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey"];

/** What systemd-stub 257 measures, in its order (every unified section but .pcrsig); 254-256 measure a prefix-compatible subset. */
export const SYSTEMD_257_MEASURED_SECTIONS: readonly string[] = [
    ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey", ".profile", ".dtbauto", ".hwids",
];

/** go-ukify's OrderedSections (what AuroraBoot signs for), the list newer stubs measure. */
export const GO_UKIFY_MEASURED_SECTIONS: readonly string[] = [
    ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey",
];

/** systemd-measure's default phase paths: from entering the initrd to the fully booted system. */
export const DEFAULT_PHASES: readonly string[] = [
    "enter-initrd",
    "enter-initrd:leave-initrd",
    "enter-initrd:leave-initrd:sysinit",
    "enter-initrd:leave-initrd:sysinit:ready",
];

export const PCR_KERNEL_BOOT = 11;

/** TPM_CC_PolicyPCR. */
const TPM_CC_POLICY_PCR = 0x0000017f;
/** TPM_ALG_ID of each bank, for the TPMS_PCR_SELECTION inside the policy. */
const TPM_ALG: Record<PcrBank, number> = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d };
const READ_CHUNK = 1 << 20;

export class Pcr11Error extends Error {
    readonly code = "PCR11";
}

/** A UKI section's content, as a file or as bytes. */
export interface SectionContent {
    /** PE section name with the dot, e.g. ".linux". */
    name: string;
    file?: string;
    data?: Buffer;
    /**
     * The content's sha256 (hex) when the caller has just computed it (the initrd's, as it was made or
     * verified): the sha256 bank takes it instead of reading a large file again.
     */
    sha256?: string;
}

export interface Pcr11Options {
    /** Banks to compute (default ["sha256"]). */
    banks?: PcrBank[];
    /** Sections the target stub measures, in its order (default: systemd 252's). */
    measuredSections?: readonly string[];
    /** Phase paths (default: systemd-measure's four). "" (or ":") is the value right after the stub. */
    phases?: readonly string[];
}

/** bank -> phase path -> PCR 11 value (hex). */
export type Pcr11Values = Record<string, Record<string, string>>;

export interface PcrSignatureEntry {
    pcrs: number[];
    /** hex SHA-256 of the public key in PKCS#1 RSAPublicKey DER form. */
    pkfp: string;
    /** hex TPM2 PolicyPCR digest (SHA-256 policy session). */
    pol: string;
    /** base64 RSA PKCS#1 v1.5 signature over H_bank(pol). */
    sig: string;
}

/** The .pcrsig document: bank -> one entry per phase, in phase order. */
export type PcrSignatureDocument = Record<string, PcrSignatureEntry[]>;

export interface SignedPcr11 {
    values: Pcr11Values;
    document: PcrSignatureDocument;
    /** The document as systemd-measure prints it (compact JSON and a newline): the .pcrsig content. */
    json: string;
    /** PCR 11 right after the stub measured the sections, before any phase (hex per bank): no second pass over the sections. */
    stubOnly: Record<string, string>;
}

function checkBanks(banks: PcrBank[] | undefined): PcrBank[] {
    const wanted = banks ?? ["sha256"];
    if (wanted.length === 0) throw new Pcr11Error("at least one PCR bank is needed");
    for (const b of wanted) {
        if (!PCR_BANKS.includes(b)) throw new Pcr11Error(`unknown PCR bank '${b}'; expected one of ${PCR_BANKS.join(", ")}`);
    }
    return PCR_BANKS.filter((b) => wanted.includes(b));
}

/** The phase path as systemd writes it: ":" and "" both mean "no phase yet". */
function phaseWords(phase: string): string[] {
    return phase.split(":").filter((w) => w !== "");
}

/** extend(PCR, digest) = H(PCR || digest), what the TPM does for every measurement. */
export function extendPcr(bank: PcrBank, pcr: Buffer, digest: Buffer): Buffer {
    return createHash(bank).update(pcr).update(digest).digest();
}

async function digestContent(section: SectionContent, banks: PcrBank[]): Promise<{ size: number; digests: Map<PcrBank, Buffer> }> {
    const hashes = banks.map((b) => createHash(b));
    let size = 0;
    if (section.sha256 !== undefined && section.file !== undefined && banks.length === 1 && banks[0] === "sha256") {
        if (!/^[0-9a-f]{64}$/.test(section.sha256)) throw new Pcr11Error(`section ${section.name}: '${section.sha256}' is not a sha256`);
        return { size: fs.statSync(section.file).size, digests: new Map([["sha256", Buffer.from(section.sha256, "hex")]]) };
    }
    if (section.data !== undefined) {
        for (const h of hashes) h.update(section.data);
        size = section.data.length;
    } else if (section.file !== undefined) {
        const fh = await fs.promises.open(section.file, "r");
        try {
            const buf = Buffer.alloc(READ_CHUNK);
            for (;;) {
                const { bytesRead } = await fh.read(buf, 0, buf.length, null);
                if (bytesRead === 0) break;
                const chunk = buf.subarray(0, bytesRead);
                for (const h of hashes) h.update(chunk);
                size += bytesRead;
            }
        } finally {
            await fh.close();
        }
    } else {
        throw new Pcr11Error(`section ${section.name} has neither a file nor data`);
    }
    return { size, digests: new Map(banks.map((b, i) => [b, hashes[i].digest()])) };
}

/**
 * PCR 11 after the stub has measured `sections` (before any phase), per bank. Sections the stub does not
 * measure are ignored; a section given twice is an error; empty sections are skipped, as the stub does.
 */
export async function measureSections(sections: SectionContent[], opts: Pcr11Options = {}): Promise<Map<PcrBank, Buffer>> {
    const banks = checkBanks(opts.banks);
    const measured = opts.measuredSections ?? SYSTEMD_252_MEASURED_SECTIONS;
    const byName = new Map<string, SectionContent>();
    for (const s of sections) {
        if (byName.has(s.name)) throw new Pcr11Error(`section ${s.name} is given twice`);
        byName.set(s.name, s);
    }
    const pcrs = new Map<PcrBank, Buffer>(banks.map((b) => [b, Buffer.alloc(createHash(b).digest().length)]));
    for (const name of measured) {
        if (name === ".pcrsig") continue;
        const section = byName.get(name);
        if (!section) continue;
        const { size, digests } = await digestContent(section, banks);
        if (size === 0) continue;
        for (const bank of banks) {
            const nameDigest = createHash(bank).update(Buffer.from(`${name}\0`, "latin1")).digest();
            let pcr = extendPcr(bank, pcrs.get(bank)!, nameDigest);
            pcr = extendPcr(bank, pcr, digests.get(bank)!);
            pcrs.set(bank, pcr);
        }
    }
    return pcrs;
}

/** PCR 11 after each phase path, starting from the value the stub left (`base`). */
export function extendPhases(base: Map<PcrBank, Buffer>, phases: readonly string[] = DEFAULT_PHASES): Map<PcrBank, Map<string, Buffer>> {
    const out = new Map<PcrBank, Map<string, Buffer>>();
    for (const [bank, start] of base) {
        const perPhase = new Map<string, Buffer>();
        for (const phase of phases) {
            let pcr = start;
            for (const word of phaseWords(phase)) pcr = extendPcr(bank, pcr, createHash(bank).update(word, "utf8").digest());
            perPhase.set(phase, pcr);
        }
        out.set(bank, perPhase);
    }
    return out;
}

/** Predicted PCR 11 values (hex) per bank and phase path. */
export async function predictPcr11(sections: SectionContent[], opts: Pcr11Options = {}): Promise<Pcr11Values> {
    const phases = opts.phases ?? DEFAULT_PHASES;
    const perBank = extendPhases(await measureSections(sections, opts), phases);
    const values: Pcr11Values = {};
    for (const [bank, perPhase] of perBank) {
        values[bank] = Object.fromEntries([...perPhase].map(([phase, v]) => [phase, v.toString("hex")]));
    }
    return values;
}

/**
 * The TPM2 policy digest of PolicyPCR on PCR 11 holding `pcrValue` in `bank`, in a SHA-256 policy session
 * starting from the all-zero digest: SHA256(zeros || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || SHA256(pcrValue)).
 */
export function pcrPolicyDigest(bank: PcrBank, pcrValue: Buffer, pcr = PCR_KERNEL_BOOT): Buffer {
    const select = Buffer.alloc(3);
    select[pcr >> 3] |= 1 << (pcr & 7);
    const selection = Buffer.alloc(4 + 2 + 1 + 3);
    selection.writeUInt32BE(1, 0); // count
    selection.writeUInt16BE(TPM_ALG[bank], 4); // hash
    selection.writeUInt8(3, 6); // sizeofSelect
    select.copy(selection, 7);
    const cc = Buffer.alloc(4);
    cc.writeUInt32BE(TPM_CC_POLICY_PCR, 0);
    const pcrDigest = createHash("sha256").update(pcrValue).digest();
    return createHash("sha256").update(Buffer.alloc(32)).update(cc).update(selection).update(pcrDigest).digest();
}

/** A private key from PEM text, a PEM/DER file path or a KeyObject. Must be RSA. */
export function loadRsaPrivateKey(key: string | Buffer | KeyObject): KeyObject {
    let obj: KeyObject;
    if (key instanceof KeyObject) obj = key;
    else if (Buffer.isBuffer(key)) obj = createPrivateKey(key);
    else if (key.includes("-----BEGIN")) obj = createPrivateKey(key);
    else obj = createPrivateKey(fs.readFileSync(key));
    if (obj.asymmetricKeyType !== "rsa") {
        throw new Pcr11Error(`the PCR signing key must be RSA (systemd-measure and the stub only take RSA), not ${obj.asymmetricKeyType}`);
    }
    return obj;
}

/** The public half as the SPKI PEM that goes into .pcrpkey. */
export function pcrPublicKeyPem(key: KeyObject): string {
    return publicOf(key).export({ type: "spki", format: "pem" }).toString();
}

/** systemd's key fingerprint: SHA-256 of the PKCS#1 RSAPublicKey DER. */
export function publicKeyFingerprint(key: KeyObject): string {
    const der = publicOf(key).export({ type: "pkcs1", format: "der" });
    return sha256Hex(der);
}

/**
 * Predicts PCR 11 and signs the policy for every phase and bank, like `systemd-measure sign`. The .pcrpkey
 * section, if present among `sections`, must hold the public half of `privateKey` (checked).
 */
export async function signPcr11(sections: SectionContent[], privateKey: string | Buffer | KeyObject | RsaSigner, opts: Pcr11Options = {}): Promise<SignedPcr11> {
    let signer: RsaSigner;
    try {
        signer = openSigner(privateKey);
    } catch (e) {
        if (e instanceof NotRsaKeyError) throw new Pcr11Error(`the PCR signing key must be RSA (systemd-measure and the stub only take RSA): ${e.message}`);
        throw e;
    }
    const key = signer.publicKey;
    const pcrpkey = sections.find((s) => s.name === ".pcrpkey");
    if (pcrpkey) {
        const content = pcrpkey.data ?? fs.readFileSync(pcrpkey.file!);
        const given = createPublicKey(content).export({ type: "spki", format: "der" });
        const ours = publicOf(key).export({ type: "spki", format: "der" });
        if (!given.equals(ours)) throw new Pcr11Error("the .pcrpkey section does not hold the public half of the PCR signing key");
    }
    const phases = opts.phases ?? DEFAULT_PHASES;
    const base = await measureSections(sections, opts);
    const perBank = extendPhases(base, phases);
    const pkfp = publicKeyFingerprint(key);
    const values: Pcr11Values = {};
    const document: PcrSignatureDocument = {};
    for (const [bank, perPhase] of perBank) {
        values[bank] = {};
        document[bank] = [];
        for (const [phase, pcr] of perPhase) {
            values[bank][phase] = pcr.toString("hex");
            const pol = pcrPolicyDigest(bank, pcr);
            const sig = await signer.sign(bank, pol); // PKCS#1 v1.5, as systemd-measure signs
            document[bank].push({ pcrs: [PCR_KERNEL_BOOT], pkfp, pol: pol.toString("hex"), sig: sig.toString("base64") });
        }
    }
    const stubOnly = Object.fromEntries([...base].map(([bank, pcr]) => [bank, pcr.toString("hex")]));
    return { values, document, json: `${JSON.stringify(document)}\n`, stubOnly };
}

/**
 * Checks a .pcrsig document (as signPcr11 writes it) against the sections it claims to sign: the banks
 * it names, one entry per phase of the PCR 11 recomputed here from `sections`, each entry with
 * `publicKey`'s fingerprint, that phase's policy digest and a signature by `publicKey` over it. Returns
 * the recomputation (per bank: the stub-only value and each phase's); throws Pcr11Error naming the
 * first thing that does not hold.
 */
export async function verifyPcr11Signature(
    doc: PcrSignatureDocument, sections: SectionContent[], publicKey: KeyObject, opts: Omit<Pcr11Options, "banks"> = {},
): Promise<{ banks: PcrBank[]; base: Map<PcrBank, Buffer>; perBank: Map<PcrBank, Map<string, Buffer>> }> {
    const banks = Object.keys(doc) as PcrBank[];
    if (banks.length === 0 || !banks.every((b) => PCR_BANKS.includes(b))) throw new Pcr11Error(`its .pcrsig names banks ${banks.join(", ") || "none"}`);
    const base = await measureSections(sections, { ...opts, banks });
    const perBank = extendPhases(base, opts.phases ?? DEFAULT_PHASES);
    const fingerprint = publicKeyFingerprint(publicKey);
    for (const bank of banks) {
        const phases = [...perBank.get(bank)!];
        const entries = doc[bank];
        if (!Array.isArray(entries) || entries.length !== phases.length) throw new Pcr11Error(`its .pcrsig has ${entries?.length} ${bank} entries, not one per phase (${phases.length})`);
        phases.forEach(([phase, pcr], k) => {
            const e = entries[k];
            const pol = pcrPolicyDigest(bank, pcr);
            if (e.pkfp !== fingerprint) throw new Pcr11Error(`its .pcrsig is signed by key ${e.pkfp}, not pcrKey (${fingerprint})`);
            if (e.pol !== pol.toString("hex")) throw new Pcr11Error(`its .pcrsig policy for phase "${phase}" (${bank}) is not the PCR 11 its sections give`);
            if (typeof e.sig !== "string" || !rsaVerify(bank, pol, publicKey, Buffer.from(e.sig, "base64"))) throw new Pcr11Error(`its .pcrsig signature for phase "${phase}" (${bank}) does not verify with pcrKey`);
        });
    }
    return { banks, base, perBank };
}

/** The public half of a private or public key object. */
function publicOf(key: KeyObject): KeyObject {
    return key.type === "public" ? key : createPublicKey(key);
}

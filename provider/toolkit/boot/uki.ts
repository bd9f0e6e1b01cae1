// Unified kernel images: a systemd-stub with the kernel, initrd, command line, os-release and the PCR 11
// signature appended as PE sections (objcopy's layout, the large sections streamed in: uki-writer.ts),
// then Authenticode-signed for Secure Boot.
//
// Layout: sections are appended after the stub's last section at page-aligned addresses
// (max(stub SectionAlignment, 4 KiB)), small ones first and .linux last, the order the probe booted
// under OVMF with systemd 252: .osrel .cmdline .uname .splash .pcrsig .pcrpkey .initrd .linux. The stub
// finds sections by name, so the order is free; the PCR measurement order is fixed by the stub (pcr11.ts).
//
// Determinism: objcopy stamps the current time into the PE header, so the stub's TimeDateStamp is put
// back (and the checksum recomputed); sbsign adds a signingTime to its PKCS#7, so the default signer
// builds the signature itself without one (authenticode.ts) and writes it in as sbattach would
// (uki-writer.ts; signEfi, for other EFI binaries, runs sbattach). Same inputs and keys give the same bytes. `signer: "sbsign"` uses sbsign instead (valid, but different every second).
import { X509Certificate } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { run } from "../run";
import { firstMatchInFile, sha256File } from "../files";
import { PeError, type PeInfo, align, authenticodeDigest, readPeSections, readSectionData, signedImageDigests } from "./pe";
import { type WrittenImage, attachSignature, writeUkiImage } from "./uki-writer";
import { authenticodeSignature, imageDigestOfSignature, signedContentOfSignature } from "./authenticode";
import { openSigner } from "../keys/signer";
import { OPENSSL_ENV, writePemBundle } from "../keys/openssl";
import { isPkcs11Uri, withPin } from "../keys/pkcs11";
import {
    DEFAULT_PHASES,
    SYSTEMD_257_MEASURED_SECTIONS,
    PcrBank,
    Pcr11Values,
    SYSTEMD_252_MEASURED_SECTIONS,
    SectionContent,
    pcrPublicKeyPem,
    signPcr11,
} from "./pcr11";

export { readPeSections } from "./pe";
export type { PeInfo, PeSection } from "./pe";

export class UkiError extends Error {
    readonly code = "UKI";
}

/** Page alignment for appended sections (the stub's own SectionAlignment may be as small as 0x200). */
export const SECTION_ALIGNMENT = 0x1000;

/** Assembly order (see the header comment). */
export const UKI_SECTION_ORDER: readonly string[] = [".osrel", ".cmdline", ".uname", ".splash", ".dtb", ".pcrsig", ".pcrpkey", ".initrd", ".linux"];

export interface UkiSectionFile {
    /** PE section name with the dot, at most 8 characters. */
    name: string;
    file: string;
}

export interface AssembleUkiOptions {
    stub: string;
    /** Appended in this order. */
    sections: UkiSectionFile[];
    out: string;
    /** Minimum alignment of the appended sections (default 4 KiB; never less than the stub's). */
    alignment?: number;
}

export interface PlacedSection {
    name: string;
    /** RVA the section was placed at. */
    virtualAddress: number;
    size: number;
}

/** Where each section goes: after the stub's last section, each aligned, in the given order. */
export function planSectionLayout(stub: PeInfo, sections: { name: string; size: number }[], alignment = SECTION_ALIGNMENT): PlacedSection[] {
    const a = Math.max(stub.sectionAlignment, alignment);
    if (a & (a - 1)) throw new UkiError(`section alignment 0x${a.toString(16)} is not a power of two`);
    let next = 0;
    for (const s of stub.sections) next = Math.max(next, s.virtualAddress + Math.max(s.virtualSize, s.sizeOfRawData));
    next = align(next, a);
    return sections.map((s) => {
        const placed = { name: s.name, virtualAddress: next, size: s.size };
        next = align(next + s.size, a);
        return placed;
    });
}

function checkSectionNames(stub: PeInfo, sections: UkiSectionFile[]): void {
    const seen = new Set<string>();
    for (const s of sections) {
        if (!/^\.[a-z0-9_]{1,7}$/.test(s.name)) {
            throw new UkiError(`section name '${s.name}' must be a dot and 1-7 lowercase letters, digits or underscores (PE names are 8 bytes)`);
        }
        if (seen.has(s.name)) throw new UkiError(`section ${s.name} is given twice`);
        if (stub.sections.some((x) => x.name === s.name)) throw new UkiError(`the stub already has a ${s.name} section`);
        seen.add(s.name);
    }
}

/** Appends `sections` to the stub (uki-writer.ts: objcopy's layout) and checks that they landed where planned. */
export async function assembleUki(opts: AssembleUkiOptions): Promise<PeInfo> {
    return (await assembleUkiImage(opts)).info;
}

/** assembleUki, also returning the sums signing needs (the image is hashed while it is written). */
export async function assembleUkiImage(opts: AssembleUkiOptions): Promise<WrittenImage> {
    let stubFile = opts.stub;
    let stub = readPeSections(stubFile);
    const unsignedCopy = `${opts.out}.stub-${process.pid}`;
    if (stub.certificateTable.size !== 0) {
        // A signed stub (e.g. a distribution's): its signature would not cover the new sections and objcopy
        // would carry a stale security directory. Work on a copy without it; the UKI is signed afterwards.
        fs.copyFileSync(stubFile, unsignedCopy);
        await run(["sbattach", "--remove", unsignedCopy]);
        stubFile = unsignedCopy;
        stub = readPeSections(stubFile);
    }
    try {
        return await appendSections(stubFile, stub, opts);
    } finally {
        fs.rmSync(unsignedCopy, { force: true });
    }
}

async function appendSections(stubFile: string, stub: PeInfo, opts: AssembleUkiOptions): Promise<WrittenImage> {
    checkSectionNames(stub, opts.sections);
    const sized = opts.sections.map((s) => {
        const size = fs.statSync(s.file).size;
        if (size === 0) throw new UkiError(`section ${s.name} would be empty (${s.file}); leave it out instead`);
        return { ...s, size };
    });
    const layout = planSectionLayout(stub, sized, opts.alignment);
    const image = await writeUkiImage(stubFile, stub, sized.map((s, i) => ({ ...s, virtualAddress: layout[i].virtualAddress })), opts.out);
    const info = image.info;
    for (const want of layout) {
        const got = info.sections.find((s) => s.name === want.name);
        if (!got || got.virtualAddress !== want.virtualAddress || got.virtualSize !== want.size) {
            throw new UkiError(
                `objcopy placed ${want.name} at ${got ? `0x${got.virtualAddress.toString(16)} (size ${got.virtualSize})` : "nowhere"}, ` +
                    `expected 0x${want.virtualAddress.toString(16)} (size ${want.size})`,
            );
        }
    }
    return image;
}

export type EfiSigner = "authenticode" | "sbsign";

export interface SignEfiOptions {
    /** "authenticode" (default): deterministic, built here; "sbsign": sbsign's own (adds signingTime). */
    signer?: EfiSigner;
}

/** Authenticode-signs an unsigned EFI image into `outFile` (written atomically). */
export async function signEfi(inFile: string, outFile: string, key: string, cert: string, opts: SignEfiOptions = {}): Promise<void> {
    const tmp = `${outFile}.tmp-${process.pid}`;
    try {
        if ((opts.signer ?? "authenticode") === "sbsign") {
            const certPem = await pemCertificate(cert, tmp);
            if (isPkcs11Uri(key)) await withPin(key, (k, env) => run(["sbsign", "--engine", "pkcs11", "--key", k, "--cert", certPem, "--output", tmp, inFile], { env }));
            else await run(["sbsign", "--key", key, "--cert", certPem, "--output", tmp, inFile]);
        } else {
            const { digest } = await authenticodeDigest(inFile);
            const p7 = `${tmp}.p7`;
            fs.writeFileSync(p7, await authenticodeSignature(digest, { key, certificate: cert }));
            fs.copyFileSync(inFile, tmp);
            try {
                await run(["sbattach", "--attach", p7, tmp]);
            } finally {
                fs.rmSync(p7, { force: true });
            }
        }
        fs.renameSync(tmp, outFile);
    } finally {
        fs.rmSync(tmp, { force: true });
        fs.rmSync(`${tmp}.crt`, { force: true });
    }
}

/** sbsign and sbverify read PEM certificates only; a DER one is converted next to `scratch`. */
async function pemCertificate(cert: string, scratch: string): Promise<string> {
    const raw = fs.readFileSync(cert);
    let parsed: X509Certificate;
    try {
        parsed = new X509Certificate(raw);
    } catch (e) {
        throw new UkiError(`${cert} is not an X.509 certificate (PEM or DER): ${(e as Error).message}`);
    }
    if (raw.includes("-----BEGIN CERTIFICATE-----")) return cert;
    return writePemBundle([parsed], `${scratch}.crt`);
}

/**
 * Checks of a UKI signed here, by tools other than the code that wrote it, and cheap ones: objdump
 * (binutils' own PE reader) finds every section at the address and with the size the image was planned
 * with, and openssl verifies the PKCS#7 signature, by the db certificate, over the SpcIndirectDataContent
 * that carries the Authenticode digest computed while the image was written. That the file hashes to
 * that digest is checked by the read-back that takes its sha256 (signedImageDigests), not by sbverify,
 * which would hash the 300 MB a third time (about 2 s, most of a rebuild once the image is written in
 * one pass); the tests check both against sbverify for the stubs of systemd 252 and 257, and the sbsign
 * signer and systemd-boot are still checked with sbverify.
 */
async function checkSignedUki(file: string, image: WrittenImage, p7: Buffer, cert: string): Promise<void> {
    const objdump = (await run(["objdump", "-h", file])).stdout;
    const seen = [...objdump.matchAll(/^\s+\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s/gm)].map((m) => `${m[1]} ${parseInt(m[2], 16)} 0x${m[3]}`);
    const planned = image.info.sections.map((s) => `${s.name} ${s.virtualSize} 0x${(image.info.imageBase + BigInt(s.virtualAddress)).toString(16).padStart(16, "0")}`);
    if (seen.join("\n") !== planned.join("\n")) {
        throw new UkiError(`objdump reads other sections in the signed UKI ${file} than were planned:\n  objdump: ${seen.join(", ")}\n  planned: ${planned.join(", ")}`);
    }
    if (!imageDigestOfSignature(p7).equals(image.authenticode)) throw new UkiError(`the signature written into ${file} is not over its image digest`);
    const p7File = `${file}.p7`;
    const contentFile = `${file}.content`;
    try {
        fs.writeFileSync(p7File, p7);
        fs.writeFileSync(contentFile, signedContentOfSignature(p7));
        const certPem = await pemCertificate(cert, file);
        // -partial_chain: the db certificate is the trust anchor even when a CA issued it (as for firmware);
        // -no_check_time: firmware does not check validity dates either.
        const r = await run(
            ["openssl", "smime", "-verify", "-inform", "DER", "-in", p7File, "-content", contentFile, "-binary", "-CAfile", certPem, "-partial_chain", "-purpose", "any", "-no_check_time", "-out", "/dev/null"],
            { env: OPENSSL_ENV, okCodes: [0, 4] },
        );
        if (r.code !== 0) throw new UkiError(`openssl does not verify the signature of ${file} against ${cert}: ${r.stderr.trim()}`);
    } finally {
        for (const f of [p7File, contentFile, `${file}.crt`]) fs.rmSync(f, { force: true });
    }
}

export type EfiVerification =
    | { ok: true }
    | { ok: false; reason: "unsigned" | "hash-mismatch" | "untrusted-signer"; detail: string };

/**
 * What sbverify says about `file` and `cert` (or several: the signature must chain to one of them, as
 * firmware checks against every certificate in db); throws when sbverify cannot read them.
 */
export async function checkEfiSignature(file: string, cert: string | string[]): Promise<EfiVerification> {
    if (!fs.existsSync(file)) throw new UkiError(`cannot verify ${file}: no such file`);
    const certs = Array.isArray(cert) ? cert : [cert];
    const scratches = certs.map((_, i) => path.join(path.dirname(file), `.verify-${process.pid}-${i}-${path.basename(file)}`));
    try {
        const pems = await Promise.all(certs.map((c, i) => pemCertificate(c, scratches[i])));
        const r = await run(["sbverify", ...pems.flatMap((p) => ["--cert", p]), file], { okCodes: [0, 1] });
        const out = `${r.stdout}\n${r.stderr}`;
        if (r.code === 0) return { ok: true };
        const detail = out.split("\n").filter((l) => l && !l.startsWith("warning: data remaining")).join("\n").trim();
        if (/No signature table present/.test(out)) return { ok: false, reason: "unsigned", detail };
        if (/Image fails hash check|Hash doesn't match image/.test(out)) return { ok: false, reason: "hash-mismatch", detail };
        if (/Signature verification failed/.test(out)) return { ok: false, reason: "untrusted-signer", detail };
        throw new UkiError(`sbverify could not check ${file} against ${certs.join(", ")}:\n${detail}`);
    } finally {
        for (const s of scratches) fs.rmSync(`${s}.crt`, { force: true });
    }
}

/** True when `file` carries a valid Authenticode signature by `cert` (sbverify). */
export async function verifyEfi(file: string, cert: string): Promise<boolean> {
    return (await checkEfiSignature(file, cert)).ok;
}

export interface LoaderInfo {
    /** "systemd-stub" or "systemd-boot". */
    component: string;
    /** e.g. "252.39-1~deb12u2". */
    version: string;
    major: number;
}

const LOADER_INFO = /#### LoaderInfo: (systemd-[a-z]+) ([^ ]+) ####/;
/** Far longer than any real marker (about 50 bytes); the file scan finds markers up to this length. */
const MAX_LOADER_INFO_BYTES = 4096;

/**
 * The `#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####` marker every systemd EFI binary carries: in
 * its .sdmagic section, or anywhere in a binary without one. That file may be a whole UKI (BootMedia reads
 * the stub version of the UKI it is given), so it is scanned a chunk at a time, never read whole.
 */
export function readLoaderInfo(file: string): LoaderInfo | undefined {
    const info = readPeSections(file);
    const sdmagic = readSectionData(file, info, ".sdmagic");
    const m = sdmagic ? LOADER_INFO.exec(sdmagic.toString("latin1")) : firstMatchInFile(file, LOADER_INFO, { maxMatchBytes: MAX_LOADER_INFO_BYTES });
    if (!m) return undefined;
    return { component: m[1], version: m[2], major: parseInt(m[2], 10) };
}

/**
 * The sections a stub measures into PCR 11: systemd 252's list for stubs before 254, 257's (which adds
 * .uname and .sbat, measured since 254) for newer ones. Throws for a stub whose version cannot be read.
 */
export function measuredSectionsForStub(stub: string): readonly string[] {
    const li = readLoaderInfo(stub);
    if (!li || li.component !== "systemd-stub" || !Number.isFinite(li.major)) {
        throw new UkiError(`${stub} has no systemd-stub version marker; pass measuredSections explicitly`);
    }
    return li.major < 254 ? SYSTEMD_252_MEASURED_SECTIONS : SYSTEMD_257_MEASURED_SECTIONS;
}

export interface BuildUkiOptions {
    /** linuxx64.efi.stub. */
    stub: string;
    kernel: string;
    /** The compressed initrd (initrd.ts). */
    initrd: string;
    /** Its sha256 (hex), when the caller has it (buildInitrd's): PCR 11 is then predicted without reading it again. */
    initrdSha256?: string;
    /** The rootfs's os-release file (its content becomes .osrel). */
    osRelease: string;
    cmdline: string;
    /** Kernel release for .uname (kairos-rootfs.ts reads it from the bzImage). */
    uname?: string;
    /** A BMP for .splash. */
    splash?: string;
    /** PEM RSA key that signs the PCR 11 policy; its public half becomes .pcrpkey. */
    pcrPrivateKey: string;
    /** Secure Boot db key and certificate (PEM). */
    sbKey: string;
    sbCert: string;
    out: string;
    /** Scratch directory for the small section files and the unsigned image (created if missing). */
    workDir: string;
    /** Sections the stub measures; default by the stub's version (measuredSectionsForStub). */
    measuredSections?: readonly string[];
    /** PCR banks signed into .pcrsig (default ["sha256"]). */
    banks?: PcrBank[];
    phases?: readonly string[];
    signer?: EfiSigner;
}

/** Key of the stub-only value in BuiltUki.pcr11 (systemd-measure's phase path ""). */
export const PCR11_STUB_ONLY = "stub";

export interface BuiltUki {
    sha256: string;
    size: number;
    /** Predicted PCR 11 per phase path in the sha256 bank (or the first bank signed), plus "stub". */
    pcr11: Record<string, string>;
    pcr11Banks: Pcr11Values;
    /** The appended sections in file order. */
    sections: { name: string; size: number }[];
    /** The sections PCR 11 was predicted over. */
    measuredSections: string[];
    stubVersion?: string;
}

/** Builds, signs and verifies a UKI. */
export async function buildUki(opts: BuildUkiOptions): Promise<BuiltUki> {
    if (opts.cmdline.includes("\0")) throw new UkiError("the kernel command line contains a NUL byte");
    if (opts.uname !== undefined && !/^[^\s\0]+$/.test(opts.uname)) throw new UkiError(`'${opts.uname}' is not a kernel release`);
    fs.mkdirSync(opts.workDir, { recursive: true });
    const measured = opts.measuredSections ?? measuredSectionsForStub(opts.stub);
    const key = openSigner(opts.pcrPrivateKey);
    const w = (name: string, content: string) => {
        const f = path.join(opts.workDir, name);
        fs.writeFileSync(f, content);
        return f;
    };
    const files = new Map<string, string>([
        [".osrel", opts.osRelease],
        [".cmdline", w("cmdline", opts.cmdline)],
        [".pcrpkey", w("pcrpkey.pem", pcrPublicKeyPem(key.publicKey))],
        [".initrd", opts.initrd],
        [".linux", opts.kernel],
    ]);
    if (opts.uname !== undefined) files.set(".uname", w("uname", opts.uname));
    if (opts.splash !== undefined) files.set(".splash", opts.splash);

    const measuredInputs: SectionContent[] = [...files].map(([name, file]) => ({ name, file, ...(name === ".initrd" && opts.initrdSha256 ? { sha256: opts.initrdSha256 } : {}) }));
    if (measured.includes(".sbat")) {
        const stubInfo = readPeSections(opts.stub);
        const sbat = readSectionData(opts.stub, stubInfo, ".sbat");
        if (sbat) measuredInputs.push({ name: ".sbat", data: sbat });
    }
    const signed = await signPcr11(measuredInputs, key, { banks: opts.banks, measuredSections: measured, phases: opts.phases ?? DEFAULT_PHASES });
    files.set(".pcrsig", w("pcrsig.json", signed.json));

    const ordered = UKI_SECTION_ORDER.filter((n) => files.has(n)).map((name) => ({ name, file: files.get(name)! }));
    let outSha256: string | undefined;
    if ((opts.signer ?? "authenticode") === "sbsign") {
        const unsigned = path.join(opts.workDir, "uki.unsigned.efi");
        await assembleUki({ stub: opts.stub, sections: ordered, out: unsigned });
        await signEfi(unsigned, opts.out, opts.sbKey, opts.sbCert, { signer: "sbsign" });
        fs.rmSync(unsigned, { force: true });
        const check = await checkEfiSignature(opts.out, opts.sbCert);
        if (!check.ok) throw new UkiError(`the signed UKI ${opts.out} does not verify against ${opts.sbCert} (${check.reason}): ${check.detail}`);
    } else {
        // Written, hashed and signed in place: the image is never copied; it is read back once, for its
        // sha256 and for the Authenticode digest of what landed on disk, which must be the one signed.
        const tmp = `${opts.out}.tmp-${process.pid}`;
        try {
            const image = await assembleUkiImage({ stub: opts.stub, sections: ordered, out: tmp });
            const p7 = await authenticodeSignature(image.authenticode, { key: opts.sbKey, certificate: opts.sbCert });
            await attachSignature(tmp, image, p7);
            const [readBack] = await Promise.all([signedImageDigests(tmp), checkSignedUki(tmp, image, p7, opts.sbCert)]);
            if (!readBack.authenticode.equals(image.authenticode)) {
                throw new UkiError(`the UKI written to ${tmp} does not hash to the Authenticode digest that was signed (${readBack.authenticode.toString("hex")}, signed ${image.authenticode.toString("hex")})`);
            }
            fs.renameSync(tmp, opts.out);
            outSha256 = readBack.sha256;
        } finally {
            fs.rmSync(tmp, { force: true });
        }
    }

    const bank = signed.values.sha256 ? "sha256" : Object.keys(signed.values)[0];
    // Also the value right after the stub, before any boot phase: what an initrd without
    // systemd-pcrphase (and a TPM quote taken that early) sees.
    const stubOnly = signed.stubOnly[bank];
    return {
        sha256: outSha256 ?? (await sha256File(opts.out)),
        size: fs.statSync(opts.out).size,
        pcr11: { [PCR11_STUB_ONLY]: stubOnly, ...signed.values[bank] },
        pcr11Banks: signed.values,
        sections: ordered.map((s) => ({ name: s.name, size: fs.statSync(s.file).size })),
        measuredSections: measured.filter((n) => n !== ".pcrsig" && measuredInputs.some((s) => s.name === n)),
        stubVersion: readLoaderInfo(opts.stub)?.version,
    };
}

export { PeError };

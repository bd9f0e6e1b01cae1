// KairosUkiImage in the artifact store: its layout, and fetched UKIs held to what a build makes.
import * as fs from "fs";
import * as path from "path";
import { sha256File } from "../toolkit/files";
import { publicKeyPem } from "../toolkit/keys/openssl";
import { kairosReleaseIn } from "../toolkit/boot/kairos-rootfs";
import { LoaderEntryKey, loaderEntryFileName } from "../toolkit/boot/boot-entries";
import { PCR11_STUB_ONLY, checkEfiSignature, measuredSectionsForStub, readLoaderInfo, readPeSections } from "../toolkit/boot/uki";
import { copySectionData, readSectionData } from "../toolkit/boot/pe";
import { PcrSignatureDocument, SectionContent, verifyPcr11Signature } from "../toolkit/boot/pcr11";
import { KeyObject, createPublicKey } from "crypto";
import { StoreIntegrityError } from "../store/manifest";
import type { ArtifactLayout } from "../store/stored-artifacts";
import { CheckedInputs, OWNER_MARKER, OWNER_TEXT, Outputs, UKI_KEY_MIN_SYSTEMD_BOOT, UkiOutput, bootEntriesOf, renderedEntry, sectionText, ukiOsRelease } from "./uki-image";
import { refuseForeignFiles } from "./build";

/** The whole outputDir is the resource's (UKIs, entries, BOOTX64.EFI, the owner marker). */
export const kairosUkiImageLayout: ArtifactLayout = {
    root: (p) => p.outputDir,
    placement: () => "dir",
    localFiles: (outs) => [...outs.ukis.flatMap((u: UkiOutput) => [u.path, u.entryPath]), outs.systemdBoot.path],
    label: () => "KairosUkiImage",
    expectedFiles: (i) => [
        OWNER_MARKER,
        "BOOTX64.EFI",
        ...bootEntriesOf(i as CheckedInputs).flatMap((e) => [`${e.fileName}.efi`, `entries/${loaderEntryFileName(e)}`]),
    ],
    accept: (i, staged, stored, work) => acceptFetched(i as CheckedInputs, staged, stored, work),
    beforePlace: (i) => refuseForeignFiles(i.outputDir),
};

/**
 * Fetched UKIs, checked as build() checks its own and more: every UKI and BOOTX64.EFI must pass sbverify
 * against this runner's db certificate; each UKI's .pcrpkey must be pcrKey's public half, and its .pcrsig
 * must sign, with that key, the PCR 11 policy recomputed here from the UKI's own sections (the pcr11
 * output is that recomputation); each UKI's .cmdline must be its entry's command line from these inputs
 * (a db-signed UKI of another build is not this one), and every UKI must carry the same .osrel; the
 * loader entries must be byte-for-byte what these inputs render. The entries (file names, command
 * lines, titles) come from the inputs, kairosRelease from the UKIs' .osrel (from the manifest, validated,
 * only when .osrel has no KAIROS_RELEASE: the build then read it from /etc/kairos-release); only the two
 * origins are taken from the manifest, validated.
 */
async function acceptFetched(i: CheckedInputs, staged: string, stored: Record<string, unknown>, work: string): Promise<Partial<Outputs>> {
    const refuse = (why: string) => new StoreIntegrityError(`the stored KairosUkiImage for ${i.outputDir} is not what a build would accept: ${why}`);
    const origin = (v: unknown, what: string): "image" | "host" => {
        if (v !== "image" && v !== "host") throw refuse(`its manifest gives ${what} ${JSON.stringify(v)}`);
        return v;
    };
    const osrel = ukiOsRelease(bootEntriesOf(i).map((e) => path.join(staged, `${e.fileName}.efi`)), refuse);
    const kairosRelease = kairosReleaseIn(osrel) ?? stored.kairosRelease;
    if (typeof kairosRelease !== "string" || kairosRelease === "" || kairosRelease.length > 256 || /[\0\n\r]/.test(kairosRelease)) throw refuse("neither its .osrel nor its manifest gives a one-line kairosRelease");
    const storedBoot = (stored.systemdBoot ?? {}) as Record<string, unknown>;
    if (fs.readFileSync(path.join(staged, OWNER_MARKER), "utf8") !== OWNER_TEXT) throw refuse(`${OWNER_MARKER} is not the marker a build writes`);
    const bootx64 = path.join(staged, "BOOTX64.EFI");
    for (const f of [bootx64, ...bootEntriesOf(i).map((e) => path.join(staged, `${e.fileName}.efi`))]) {
        const check = await checkEfiSignature(f, i.signing.certificate).catch((e) => ({ ok: false as const, reason: "unreadable", detail: (e as Error).message }));
        if (!check.ok) throw refuse(`${path.basename(f)} does not verify against the db certificate ${i.signing.certificate} (${check.reason}): ${check.detail}`);
    }
    const sdbootInfo = readLoaderInfo(bootx64);
    if (sdbootInfo?.component !== "systemd-boot") throw refuse("BOOTX64.EFI is not systemd-boot");
    const entryKey: LoaderEntryKey = i.loaderEntryKey !== "auto" ? i.loaderEntryKey : (sdbootInfo.major ?? 0) >= UKI_KEY_MIN_SYSTEMD_BOOT ? "uki" : "efi";
    const pcrPublic = createPublicKey(publicKeyPem(i.pcrKey));
    const ukis: UkiOutput[] = [];
    const pcr11: Outputs["pcr11"] = {};
    for (const entry of bootEntriesOf(i)) {
        const file = path.join(staged, `${entry.fileName}.efi`);
        pcr11[entry.fileName] = await verifiedPcr11(file, pcrPublic, path.join(work, `pcr-${entry.fileName}`)).catch((e) => {
            throw refuse(`${entry.fileName}.efi: ${(e as Error).message}`);
        });
        const cmdline = sectionText(file, ".cmdline");
        if (cmdline !== entry.cmdline) throw refuse(`${entry.fileName}.efi carries the command line ${JSON.stringify(cmdline)}, not ${JSON.stringify(entry.cmdline)} that these inputs give it: a UKI of another build`);
        const entryName = loaderEntryFileName(entry);
        const want = renderedEntry(i, entry, entryKey, kairosRelease);
        if (fs.readFileSync(path.join(staged, "entries", entryName), "utf8") !== want) throw refuse(`entries/${entryName} is not the loader entry these inputs make`);
        ukis.push({
            fileName: entry.fileName, path: path.join(i.outputDir, `${entry.fileName}.efi`), sha256: await sha256File(file), size: fs.statSync(file).size,
            cmdline: entry.cmdline, title: entry.title, entryPath: path.join(i.outputDir, "entries", entryName),
        });
    }
    const systemdBootPath = path.join(i.outputDir, "BOOTX64.EFI");
    return {
        ukis,
        systemdBoot: { path: systemdBootPath, sha256: await sha256File(bootx64), version: sdbootInfo.version, origin: origin(storedBoot.origin, "systemdBoot.origin") },
        bootFiles: { efiFiles: ukis.map((u) => u.path), loaderEntries: ukis.map((u) => u.entryPath), systemdBoot: systemdBootPath },
        stubOrigin: origin(stored.stubOrigin, "stubOrigin"),
        pcr11,
        kairosRelease,
        entryKey,
    };
}

/**
 * PCR 11 of a UKI, recomputed from its own sections (as its stub measures them), once its .pcrpkey is
 * `pcrPublic` and its .pcrsig signs, with that key, the policy of every phase of that recomputation.
 */
async function verifiedPcr11(uki: string, pcrPublic: KeyObject, work: string): Promise<Record<string, string>> {
    const info = readPeSections(uki);
    const pkey = readSectionData(uki, info, ".pcrpkey");
    if (!pkey || !createPublicKey(pkey).export({ type: "spki", format: "der" }).equals(pcrPublic.export({ type: "spki", format: "der" }))) {
        throw new Error("its .pcrpkey is not the public half of pcrKey");
    }
    const sigText = readSectionData(uki, info, ".pcrsig");
    if (!sigText) throw new Error("it has no .pcrsig");
    let doc: PcrSignatureDocument;
    try {
        doc = JSON.parse(sigText.toString("utf8").replace(/\0+$/, ""));
    } catch {
        throw new Error("its .pcrsig is not JSON");
    }
    const measured = measuredSectionsForStub(uki);
    fs.mkdirSync(work, { recursive: true });
    const sections: SectionContent[] = [];
    for (const s of info.sections) {
        if (!measured.includes(s.name) || s.name === ".pcrsig") continue;
        const out = path.join(work, `section${sections.length}`);
        copySectionData(uki, s, out);
        sections.push({ name: s.name, file: out });
    }
    const { banks, base, perBank } = await verifyPcr11Signature(doc, sections, pcrPublic, { measuredSections: measured });
    fs.rmSync(work, { recursive: true, force: true });
    const bank = banks.includes("sha256") ? "sha256" : banks[0];
    return { [PCR11_STUB_ONLY]: base.get(bank)!.toString("hex"), ...Object.fromEntries([...perBank.get(bank)!].map(([phase, v]) => [phase, v.toString("hex")])) };
}

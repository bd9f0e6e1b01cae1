// KairosUkiImage: the Kairos OS as signed Unified Kernel Images, one per boot entry (norole.efi
// first), with their loader entries and a signed systemd-boot — what `auroraboot build-uki` makes,
// natively. Every UKI carries a PCR 11 policy signed with the TPM PCR key.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { MoveSpec, sameInputHash } from "./artifact-move";
import { Handler, checkInputs, packageProvider, privateKeyProblems, replacedFields, samePath, signingPairProblems, sourceProblems } from "./resource-kit";
import { BuildLog, BuildReport, driftOf, updateAction, updateReasons } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, sha256File, sha256FileIfExists, sha256Hex } from "./toolkit/files";
import { HOST_EFI_DIR } from "./toolkit/tools";
import { isPkcs11Uri } from "./toolkit/keys/pkcs11";
import { publicKeyPem, readCertificate } from "./toolkit/keys/openssl";
import { replaceDirectory, restoreInterruptedSwap, withScratch } from "./output/staging";
import { ExtensionSourceSpec, materializeSource, sourceDigest } from "./toolkit/source/extension-source";
import { inspectKairosRootfs, kairosReleaseIn, prepareUkiRootfs } from "./toolkit/boot/kairos-rootfs";
import { buildInitrd, INITRD_EXCLUDES, isInitrdWindowLog, MAX_KERNEL_WINDOW_LOG } from "./toolkit/boot/initrd";
import { InitrdCache } from "./output/initrd-cache";
import { BootEntry, LoaderEntryKey, SingleEntry, loaderEntryFileName, planBootEntries, renderLoaderEntry } from "./toolkit/boot/boot-entries";
import { PCR11_STUB_ONLY, buildUki, checkEfiSignature, measuredSectionsForStub, readLoaderInfo, readPeSections, signEfi, verifyEfi } from "./toolkit/boot/uki";
import { copySectionData, readSectionData } from "./toolkit/boot/pe";
import { PcrSignatureDocument, SectionContent, verifyPcr11Signature } from "./toolkit/boot/pcr11";
import { KeyObject, createPublicKey } from "crypto";
import { StoreIntegrityError } from "./store/artifact-store";
import { largestContributors } from "./toolkit/size-report";
import type { SigningKeys } from "./signing-keys";
import type { ArtifactLayout, StoreOutput } from "./store/stored-artifacts";
import type { ArtifactStoreSpec } from "./store/artifact-store";
import { artifactStoreInput } from "./artifact-store-config";
import { plainHashValues, replaceFields } from "./validation/input-roles";

export const KAIROS_UKI_IMAGE_TOKEN = "kairos:index:KairosUkiImage";
const BUILDER_VERSION = "kairos-uki-image/1";
const STUB_IN_IMAGE = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const SDBOOT_IN_IMAGE = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";
/** systemd-boot learned the `uki` entry key late; kairos-agent writes it only for >= 259. */
const UKI_KEY_MIN_SYSTEMD_BOOT = 259;
const MB = 1_000_000;
/** Filled at boot and left out of the initrd: an OS directory's contents there are not even copied. */
const RUNTIME_DIRS = INITRD_EXCLUDES.filter((d) => d !== "boot");
/** Marks a folder as made (and so owned) by KairosUkiImage: only such a folder is ever replaced. */
const OWNER_MARKER = ".kairos-uki-image";
const OWNER_TEXT = "This folder is rebuilt whole by pulumi-kairos' KairosUkiImage.\n";
/** What a KairosUkiImage folder may hold; anything else is someone else's and stops a rebuild. */
const OWN_ENTRY = /^(\.kairos-uki-image|BOOTX64\.EFI|entries|[^/]+\.efi)$/;

export interface KairosUkiImageArgs {
    outputDir: pulumi.Input<string>;
    /** A UKI-flavour Kairos image (all layers flattened) or a rootfs directory. */
    source: pulumi.Input<{ dir?: pulumi.Input<string>; ociLayout?: pulumi.Input<string>; dockerArchive?: pulumi.Input<string>; image?: pulumi.Input<string>; insecureRegistry?: pulumi.Input<boolean> }>;
    signing?: pulumi.Input<{ key: pulumi.Input<string>; certificate: pulumi.Input<string> }>;
    pcrKey?: pulumi.Input<string>;
    /** Shorthand for signing + pcrKey: a SigningKeys resource's db pair and TPM PCR key. */
    signingKeys?: SigningKeys;
    /** @default "Kairos" */
    bootTitle?: pulumi.Input<string>;
    extendCmdline?: pulumi.Input<string>;
    extraCmdlines?: pulumi.Input<pulumi.Input<string>[]>;
    singleEntries?: pulumi.Input<pulumi.Input<{ title?: pulumi.Input<string>; cmdline: pulumi.Input<string> }>[]>;
    /** @default false */
    includeVersionInConfig?: pulumi.Input<boolean>;
    /** @default false */
    includeCmdlineInConfig?: pulumi.Input<boolean>;
    /** @default "auto" */
    loaderEntryKey?: pulumi.Input<"auto" | "uki" | "efi">;
    splash?: pulumi.Input<string>;
    /** @default 800 */
    maxUkiSizeMB?: pulumi.Input<number>;
    /** zstd level of the initrd, 1-19. @default 12 */
    initrdCompressionLevel?: pulumi.Input<number>;
    /** zstd long-distance window of the initrd, log2 (10-27), or 0 for none. @default 27 */
    initrdWindowLog?: pulumi.Input<number>;
    /** Keep the UKIs in an S3-compatible store and fetch them instead of building. @default the stack config kairos:artifactStore */
    artifactStore?: pulumi.Input<ArtifactStoreSpec>;
}

interface CheckedInputs {
    outputDir: string;
    source: ExtensionSourceSpec;
    signing: { key: string; certificate: string };
    pcrKey: string;
    bootTitle: string;
    extendCmdline?: string;
    extraCmdlines?: string[];
    singleEntries?: SingleEntry[];
    includeVersionInConfig: boolean;
    includeCmdlineInConfig: boolean;
    loaderEntryKey: "auto" | LoaderEntryKey;
    splash?: string;
    maxUkiSizeMB: number;
    initrdCompressionLevel: number;
    initrdWindowLog: number;
    sourceDigest: string;
    hashParts: Record<string, string>;
    inputHash: string;
}

export interface UkiOutput {
    fileName: string;
    path: string;
    sha256: string;
    size: number;
    cmdline: string;
    title: string;
    entryPath: string;
}

interface Outputs extends CheckedInputs {
    ukis: UkiOutput[];
    systemdBoot: { path: string; sha256: string; version: string; origin: "image" | "host" };
    /** The files BootMedia's `uki` input takes, in its shape (YAML programs pass `${os.bootFiles}`). */
    bootFiles: { efiFiles: string[]; loaderEntries: string[]; systemdBoot: string };
    stubOrigin: "image" | "host";
    pcr11: Record<string, Record<string, string>>;
    kairosRelease: string;
    entryKey: LoaderEntryKey;
    drift: string[];
    lastBuild: BuildReport;
}

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

function bootEntriesOf(i: CheckedInputs): BootEntry[] {
    return planBootEntries({ extendCmdline: i.extendCmdline, extraCmdlines: i.extraCmdlines, singleEntries: i.singleEntries, bootTitle: i.bootTitle });
}

/** The loader entry file for `entry`, as a build writes it; a fetch and a move hold the files found to it. */
function renderedEntry(i: CheckedInputs, entry: BootEntry, key: LoaderEntryKey, kairosRelease: string): string {
    return renderLoaderEntry(entry, { key, version: i.includeVersionInConfig ? kairosRelease : undefined, includeCmdline: i.includeCmdlineInConfig });
}

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

/** A UKI section's text as the stub reads it (trailing NUL padding dropped); undefined without the section. */
function sectionText(uki: string, name: string): string | undefined {
    return readSectionData(uki, readPeSections(uki), name)?.toString("utf8").replace(/\0+$/, "");
}

/** The .osrel every one of `ukis` carries: one build embeds one os-release in all of them. */
function ukiOsRelease(ukis: string[], refuse: (why: string) => Error): string {
    const texts = ukis.map((f) => sectionText(f, ".osrel"));
    if (texts.some((t) => t === undefined)) throw refuse(`${path.basename(ukis[texts.indexOf(undefined)])} has no .osrel section`);
    if (new Set(texts).size !== 1) throw refuse("its UKIs carry different .osrel sections: they are not from one build");
    return texts[0]!;
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

export const kairosUkiImageHandler: Handler = {
    writes: (p) => [p.outputDir],
    check: (olds, news) =>
        checkInputs<CheckedInputs>(KAIROS_UKI_IMAGE_TOKEN, olds, news, { crossField: crossFieldProblems, derive: deriveHashes }),

    async diff(_id, olds: Outputs, news: CheckedInputs) {
        const replaces = replacedFields(olds, news, replaceFields<CheckedInputs>(KAIROS_UKI_IMAGE_TOKEN), ["outputDir"]);
        return { changes: replaces.length > 0 || olds.inputHash !== news.inputHash || (olds.drift ?? []).length > 0, replaces };
    },

    async create(inputs: CheckedInputs) {
        const outs = await build(inputs, new BuildLog("KairosUkiImage", "created", ["new"]));
        return { id: inputs.outputDir, outs };
    },

    async read(id, props: Outputs) {
        restoreInterruptedSwap(props.outputDir);
        const files = [...props.ukis.map((u) => ({ path: u.path, sha256: u.sha256 })), props.systemdBoot];
        const drift: string[] = [];
        for (const f of files) drift.push(...driftOf(f.path, f.sha256, await sha256FileIfExists(f.path)));
        return { id, props: { ...props, drift } };
    },

    async update(_id, olds: Outputs, news: CheckedInputs) {
        const reasons = updateReasons(olds, news);
        return { outs: await build(news, new BuildLog("KairosUkiImage", updateAction(reasons), reasons)) };
    },

    async delete(_id, props: Outputs) {
        // Only what this resource made; the folder goes only if that leaves it empty.
        const own = [...props.ukis.flatMap((u) => [u.path, u.entryPath]), props.systemdBoot.path, path.join(props.outputDir, OWNER_MARKER)];
        for (const f of own) fs.rmSync(f, { force: true });
        for (const d of [path.join(props.outputDir, "entries"), props.outputDir]) {
            if (fs.existsSync(d) && fs.readdirSync(d).length === 0) fs.rmdirSync(d);
        }
    },
};

async function deriveHashes(inputs: CheckedInputs): Promise<InputProblem[]> {
    try {
        inputs.sourceDigest = await sourceDigest(inputs.source, { layers: "all", arch: "amd64" });
    } catch (e) {
        return [{ property: "source", reason: `cannot read the source: ${(e as Error).message}` }];
    }
    const pick = (part: string) => sha256Hex(canonicalJson(plainHashValues(KAIROS_UKI_IMAGE_TOKEN, part, inputs)));
    inputs.hashParts = {
        source: inputs.sourceDigest,
        cmdlines: pick("cmdlines"),
        build: pick("build"),
        splash: inputs.splash ? await sha256File(inputs.splash) : "none",
        signing: readCertificate(inputs.signing.certificate).sha256Fingerprint,
        pcrKey: sha256Hex(publicKeyPem(inputs.pcrKey)), // the public half: no digest of private key bytes in state
        hostEfi: await hostEfiDigest(),
        builder: BUILDER_VERSION,
    };
    inputs.inputHash = sha256Hex(canonicalJson(inputs.hashParts));
    return [];
}

/** The host's systemd-boot-efi is the fallback stub; an upgrade of it may change the UKI. */
async function hostEfiDigest(): Promise<string> {
    const files = ["linuxx64.efi.stub", "systemd-bootx64.efi"].map((f) => path.join(HOST_EFI_DIR, f)).filter((f) => fs.existsSync(f));
    return sha256Hex((await Promise.all(files.map(sha256File))).join(":") || "none");
}

async function build(inputs: CheckedInputs, log: BuildLog): Promise<Outputs> {
    return withScratch(inputs.outputDir, "uki", async (work) => {
        const rootfs = path.join(work, "rootfs");
        await log.step("read OS image", () => materializeSource(inputs.source, inputs.sourceDigest, rootfs, { layers: "all", arch: "amd64", workDir: work, skipTop: RUNTIME_DIRS }));
        const info = inspectKairosRootfs(rootfs);
        const stub = pickEfiBinary(rootfs, STUB_IN_IMAGE, "linuxx64.efi.stub");
        const sdboot = pickEfiBinary(rootfs, SDBOOT_IN_IMAGE, "systemd-bootx64.efi");
        // Copied out first: the rootfs loses /boot and the stub must not be read from the initrd tree.
        const kernel = path.join(work, "vmlinuz");
        const osRelease = path.join(work, "os-release");
        fs.copyFileSync(stub.path, path.join(work, "stub.efi"));
        fs.copyFileSync(sdboot.path, path.join(work, "systemd-boot.efi"));
        prepareUkiRootfs(rootfs, { saveKernelTo: kernel, saveOsReleaseTo: osRelease });
        const initrd = path.join(work, "initrd.zst");
        const initrdInfo = await log.step("build initrd", () => buildInitrd(rootfs, initrd, { level: inputs.initrdCompressionLevel, windowLog: inputs.initrdWindowLog }, new InitrdCache()));
        if (initrdInfo.reused) log.say(`initrd reused: this OS tree was compressed at level ${inputs.initrdCompressionLevel} before (sha256 ${initrdInfo.sha256.slice(0, 12)}…, verified)`);
        checkSize(inputs, rootfs, [{ name: ".linux (kernel)", bytes: fs.statSync(kernel).size }, { name: ".initrd", bytes: initrdInfo.size }, { name: "stub", bytes: fs.statSync(stub.path).size }]);

        const entries = planBootEntries({ extendCmdline: inputs.extendCmdline, extraCmdlines: inputs.extraCmdlines, singleEntries: inputs.singleEntries, bootTitle: inputs.bootTitle });
        const sdbootInfo = readLoaderInfo(path.join(work, "systemd-boot.efi"));
        const entryKey: LoaderEntryKey = inputs.loaderEntryKey !== "auto" ? inputs.loaderEntryKey : (sdbootInfo?.major ?? 0) >= UKI_KEY_MIN_SYSTEMD_BOOT ? "uki" : "efi";

        refuseForeignFiles(inputs.outputDir);
        return await replaceDirectory(inputs.outputDir, async (staging) => {
            fs.writeFileSync(path.join(staging, OWNER_MARKER), OWNER_TEXT);
            const ukis: UkiOutput[] = [];
            const pcr11: Outputs["pcr11"] = {};
            fs.mkdirSync(path.join(staging, "entries"));
            for (const entry of entries) {
                const out = path.join(staging, `${entry.fileName}.efi`);
                const built = await log.step(`assemble and sign ${entry.fileName}.efi`, () =>
                    buildUki({
                        stub: path.join(work, "stub.efi"), kernel, initrd, osRelease, cmdline: entry.cmdline, uname: info.uname, splash: inputs.splash,
                        pcrPrivateKey: inputs.pcrKey, sbKey: inputs.signing.key, sbCert: inputs.signing.certificate, out, workDir: path.join(work, `uki-${entry.fileName}`),
                    }),
                );
                checkBuiltSize(inputs, entry, built.size, built.sections);
                const entryFile = path.join(staging, "entries", loaderEntryFileName(entry));
                fs.writeFileSync(entryFile, renderedEntry(inputs, entry, entryKey, info.kairosRelease));
                pcr11[entry.fileName] = built.pcr11;
                ukis.push({
                    fileName: entry.fileName, path: path.join(inputs.outputDir, `${entry.fileName}.efi`), sha256: built.sha256, size: built.size,
                    cmdline: entry.cmdline, title: entry.title, entryPath: path.join(inputs.outputDir, "entries", path.basename(entryFile)),
                });
            }
            const bootx64 = path.join(staging, "BOOTX64.EFI");
            await log.step("sign systemd-boot", async () => {
                await signEfi(path.join(work, "systemd-boot.efi"), bootx64, inputs.signing.key, inputs.signing.certificate);
                if (!(await verifyEfi(bootx64, inputs.signing.certificate))) throw new Error(`sbverify refused the signed systemd-boot ${bootx64}`);
            });
            const systemdBootPath = path.join(inputs.outputDir, "BOOTX64.EFI");
            return {
                ...inputs,
                ukis,
                systemdBoot: { path: systemdBootPath, sha256: await sha256File(bootx64), version: sdbootInfo?.version ?? "unknown", origin: sdboot.origin },
                bootFiles: { efiFiles: ukis.map((u) => u.path), loaderEntries: ukis.map((u) => u.entryPath), systemdBoot: systemdBootPath },
                stubOrigin: stub.origin,
                pcr11,
                kairosRelease: info.kairosRelease,
                entryKey,
                drift: [],
                lastBuild: log.report(),
            };
        });
    });
}

/** A rebuild replaces the whole folder: refuse if it holds anything KairosUkiImage did not make. */
function refuseForeignFiles(dir: string): void {
    if (!fs.existsSync(dir)) return;
    const names = fs.readdirSync(dir);
    if (names.length === 0) return;
    const foreign = fs.existsSync(path.join(dir, OWNER_MARKER)) ? names.filter((n) => !OWN_ENTRY.test(n)) : names;
    if (foreign.length > 0) {
        throw new Error(`outputDir ${dir} holds files KairosUkiImage did not make (${foreign.slice(0, 5).join(", ")}${foreign.length > 5 ? ", …" : ""}); it rebuilds that folder whole, so give it an empty folder of its own`);
    }
}

/** The image's own systemd EFI binary when it has one (AuroraBoot --sdboot-in-source), else the host's. */
function pickEfiBinary(rootfs: string, inImage: string, hostName: string): { path: string; origin: "image" | "host" } {
    const own = path.join(rootfs, inImage);
    if (fs.existsSync(own) && fs.lstatSync(own).isFile()) return { path: own, origin: "image" };
    const host = path.join(HOST_EFI_DIR, hostName);
    if (!fs.existsSync(host)) throw new Error(`the image has no /${inImage} and the host has no ${host}; install the Debian package systemd-boot-efi`);
    return { path: host, origin: "host" };
}

/** Fails before assembling when the kernel + initrd alone are over the limit (AuroraBoot never checked). */
function checkSize(inputs: CheckedInputs, rootfs: string, parts: { name: string; bytes: number }[]): void {
    const total = parts.reduce((a, p) => a + p.bytes, 0);
    if (total <= inputs.maxUkiSizeMB * MB) return;
    throw new Error(sizeMessage(inputs, total, parts, largestContributors(rootfs, 8)));
}

function checkBuiltSize(inputs: CheckedInputs, entry: BootEntry, size: number, sections: { name: string; size: number }[]): void {
    if (size <= inputs.maxUkiSizeMB * MB) return;
    throw new Error(sizeMessage(inputs, size, sections.map((s) => ({ name: s.name, bytes: s.size })), [], `${entry.fileName}.efi`));
}

function sizeMessage(inputs: CheckedInputs, total: number, parts: { name: string; bytes: number }[], inTree: { path: string; bytes: number }[], what = "the UKI"): string {
    const mb = (b: number) => `${(b / MB).toFixed(1)} MB`;
    const lines = [...parts].sort((a, b) => b.bytes - a.bytes).map((p) => `  ${p.name}: ${mb(p.bytes)}`);
    const tree = inTree.map((t) => `  /${t.path}: ${mb(t.bytes)} uncompressed`);
    return (
        `${what} would be ${mb(total)}, over maxUkiSizeMB (${inputs.maxUkiSizeMB} MB); firmware has been seen refusing EFI files from 800 MB up.\n` +
        `Largest parts:\n${lines.join("\n")}` +
        (tree.length ? `\nLargest folders in the OS image (candidates for a system extension):\n${tree.join("\n")}` : "")
    );
}

function crossFieldProblems(i: CheckedInputs, olds: Partial<CheckedInputs>): InputProblem[] {
    const problems: InputProblem[] = sourceProblems(i.source);
    if (!samePath(olds.outputDir, i.outputDir) && fs.existsSync(i.outputDir) && fs.readdirSync(i.outputDir).length > 0 && !fs.existsSync(path.join(i.outputDir, OWNER_MARKER))) {
        problems.push({ property: "outputDir", reason: `${i.outputDir} is not empty and was not made by KairosUkiImage; it rebuilds its folder whole, so give it an empty folder of its own` });
    }
    if (i.extendCmdline && (i.extraCmdlines?.length ?? 0) > 0) {
        problems.push({ property: "extendCmdline", reason: "cannot be combined with extraCmdlines (as in auroraboot): extendCmdline changes the one norole.efi, extraCmdlines add more UKIs" });
    }
    if (!isInitrdWindowLog(i.initrdWindowLog)) problems.push({ property: "initrdWindowLog", reason: `${i.initrdWindowLog} is not a zstd window: 0 (none) or 10-${MAX_KERNEL_WINDOW_LOG}` });
    problems.push(...signingPairProblems("signing", i.signing));
    const missing = [i.pcrKey, i.splash].filter((f): f is string => !!f && !isPkcs11Uri(f) && !fs.existsSync(f));
    if (missing.length > 0) problems.push({ property: i.splash && missing.includes(i.splash) ? "splash" : "pcrKey", reason: `${missing.join(", ")} not found` });
    else problems.push(...privateKeyProblems("pcrKey", i.pcrKey));
    // A line break would end the loader entry's line and start another one of the user's making.
    for (const [property, value] of [["extendCmdline", i.extendCmdline], ["bootTitle", i.bootTitle], ...(i.extraCmdlines ?? []).map((c, n) => [`extraCmdlines[${n}]`, c])]) {
        if (typeof value === "string" && /[\0\n\r]/.test(value)) problems.push({ property: property!, reason: "contains a NUL or a line break; a command line and a title are one line" });
    }
    return problems;
}

/** The Kairos OS as signed UKIs with loader entries and a signed systemd-boot; see schema.json. */
export class KairosUkiImage extends pulumi.dynamic.Resource {
    declare readonly outputDir: pulumi.Output<string>;
    declare readonly ukis: pulumi.Output<UkiOutput[]>;
    declare readonly systemdBoot: pulumi.Output<Outputs["systemdBoot"]>;
    declare readonly bootFiles: pulumi.Output<Outputs["bootFiles"]>;
    declare readonly stubOrigin: pulumi.Output<string>;
    declare readonly pcr11: pulumi.Output<Outputs["pcr11"]>;
    declare readonly kairosRelease: pulumi.Output<string>;
    declare readonly sourceDigest: pulumi.Output<string>;
    declare readonly entryKey: pulumi.Output<string>;
    declare readonly inputHash: pulumi.Output<string>;
    declare readonly hashParts: pulumi.Output<Record<string, string>>;
    declare readonly lastBuild: pulumi.Output<BuildReport>;
    declare readonly drift: pulumi.Output<string[]>;
    /** Where the artifact store keeps the UKIs (undefined without a store). */
    declare readonly store: pulumi.Output<StoreOutput | undefined>;

    /** Which handler contract wrote this state (handlers.ts); an older one updates on the next up. */
    declare readonly stateVersion: pulumi.Output<number>;

    constructor(name: string, args: KairosUkiImageArgs, opts?: pulumi.CustomResourceOptions) {
        const { signingKeys, ...rest } = args;
        const signing = rest.signing ?? signingKeys?.files.apply((f) => ({ key: f.db.key, certificate: f.db.pem }));
        const pcrKey = rest.pcrKey ?? signingKeys?.tpmPcrKeyFile;
        const outputs = {
            stateVersion: undefined, outputDir: undefined,
            ukis: undefined, systemdBoot: undefined, bootFiles: undefined, stubOrigin: undefined, pcr11: undefined, kairosRelease: undefined, entryKey: undefined,
            sourceDigest: undefined, inputHash: undefined, hashParts: undefined, lastBuild: undefined, drift: undefined, store: undefined,
        };
        super(packageProvider(KAIROS_UKI_IMAGE_TOKEN), name, { ...outputs, ...rest, signing, pcrKey, artifactStore: artifactStoreInput(rest.artifactStore) }, opts, "kairos", "KairosUkiImage");
    }
}

/**
 * A new outputDir already holding the recorded folder is a move (artifact-move.ts): every UKI and
 * systemd-boot with its recorded sha256, the loader entries and the owner marker present.
 */
export const kairosUkiImageMoves: MoveSpec = {
    label: kairosUkiImageLayout.label,
    placeFields: ["outputDir"],
    root: kairosUkiImageLayout.root,
    sameArtifact: sameInputHash,
    // State without these outputs (an older version) names no files, so it is never taken for a move.
    // Every file is held to its bytes: the UKIs and systemd-boot to their recorded sha256, each loader
    // entry to what the recorded inputs render (as a fetch is, acceptFetched), the marker to its text.
    files: (olds, _news, at) => {
        if (!Array.isArray(olds.ukis) || !olds.systemdBoot?.path || !olds.bootFiles || typeof olds.entryKey !== "string" || typeof olds.kairosRelease !== "string") return [];
        const entries = new Map(bootEntriesOf(olds as Outputs).map((e) => [e.fileName, e]));
        const ukis = olds.ukis as UkiOutput[];
        if (ukis.some((u) => !entries.has(u.fileName))) return [];
        return [
            ...ukis.flatMap((u) => [
                { from: u.path, to: at(u.path), sha256: u.sha256 },
                { from: u.entryPath, to: at(u.entryPath), sha256: sha256Hex(renderedEntry(olds as Outputs, entries.get(u.fileName)!, olds.entryKey, olds.kairosRelease)) },
            ]),
            { from: olds.systemdBoot.path, to: at(olds.systemdBoot.path), sha256: olds.systemdBoot.sha256 },
            { from: path.join(olds.outputDir, OWNER_MARKER), to: at(path.join(olds.outputDir, OWNER_MARKER)), sha256: sha256Hex(OWNER_TEXT) },
        ];
    },
    moved: (olds, _news, at) => ({
        ukis: (olds.ukis as UkiOutput[]).map((u) => ({ ...u, path: at(u.path), entryPath: at(u.entryPath) })),
        systemdBoot: { ...olds.systemdBoot, path: at(olds.systemdBoot.path) },
        bootFiles: { efiFiles: olds.bootFiles.efiFiles.map(at), loaderEntries: olds.bootFiles.loaderEntries.map(at), systemdBoot: at(olds.bootFiles.systemdBoot) },
    }),
};

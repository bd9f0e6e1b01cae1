// Signed systemd extension images (sysext/confext Discoverable Disk Images) built from a directory
// tree with plain tools: mkfs.erofs -> veritysetup format -> PKCS#7 signature JSON -> GPT by sfdisk.
// systemd-repart is not used because Debian 12's v252 cannot make erofs, pads partitions to 10 MiB
// and picks a random verity salt (so no two builds match). Here every UUID and the salt come from a
// seed, so the same tree, epoch and key give the same bytes. Nothing needs root, loop or dm.
import * as fs from "fs";
import * as path from "path";
import { pipeline } from "stream/promises";
import { run, ToolFailedError } from "./run";
import { sha256File, sha256Hex } from "./files";
import { keyMatchesCertificate, readCertificate } from "./openssl";

export type ExtensionKind = "sysext" | "confext";
export type DdiArchitecture = "x86-64" | "arm64";
export type ErofsCompression = "none" | "lz4" | "lz4hc";

export interface PartitionTypes {
    root: string;
    verity: string;
    signature: string;
}

/** Type GUIDs from the Discoverable Partitions Specification (root, root-verity, root-verity-sig). */
export const PARTITION_TYPES: Record<DdiArchitecture, PartitionTypes> = {
    "x86-64": {
        root: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        verity: "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
        signature: "41092b05-9fc8-4523-994f-2def0408b176",
    },
    arm64: {
        root: "b921b045-1df0-41c3-af44-4c6f280d3fae",
        verity: "df3300ce-d69f-4c92-978c-9bfb0f38d820",
        signature: "6db69de6-29f4-4758-a7a5-962190f00ce3",
    },
};

export const SECTOR_SIZE = 512;
/** The first partition starts at 1 MiB and partitions are 4 KiB-granular, as systemd-repart does. */
export const FIRST_LBA = 2048;
export const PARTITION_ALIGNMENT = 4096;
/** systemd-repart's fixed size for the verity signature partition. */
export const SIGNATURE_PARTITION_SIZE = 16384;
/** The backup GPT at the end of the disk: 128 entries of 128 bytes plus the header sector. */
const BACKUP_GPT_SECTORS = 33;
/** 4 KiB verity blocks (modern repart), not v252's 512 B: 8x smaller hash tree, page-sized reads. */
const VERITY_BLOCK_SIZE = 4096;
/** Bit 60 = read-only; current repart sets it on all three partitions of a verity set. */
const READ_ONLY_ATTRS = "GUID:60";
/** Keeps the host's openssl.cnf from changing what is signed or how it is verified. */
const OPENSSL_ENV = { OPENSSL_CONF: "/dev/null" };
const COPY_CHUNK = 1 << 20;

export class DdiError extends Error {
    readonly code = "DDI";
}

export interface SigningPair {
    /** PEM private key. */
    key: string;
    /** PEM or DER certificate of that key. */
    certificate: string;
}

export interface BuildSysextOptions {
    sourceDir: string;
    outFile: string;
    /** Scratch space; intermediate files live in a fresh subfolder that is removed afterwards. */
    workDir: string;
    /** Image name; the file must be deployed as NAME.raw and the tree must hold extension-release.NAME. */
    name: string;
    kind: ExtensionKind;
    arch: DdiArchitecture;
    compression: ErofsCompression;
    /** Every file's mtime (and the filesystem's build time) is set to this. */
    sourceDateEpoch: number;
    /** Without it the image has no signature partition (verity-protected, but unsigned). */
    signing?: SigningPair;
    /** Seed for the disk GUID, filesystem UUID, verity UUID and salt; default: from name, kind and arch. */
    seed?: string;
}

export interface PartitionInfo {
    name: string;
    type: string;
    uuid: string;
    /** Byte offset in the image. */
    offset: number;
    size: number;
}

export interface ImagePartitions {
    root: PartitionInfo;
    verity: PartitionInfo;
    signature?: PartitionInfo;
}

export interface SysextImage {
    rootHash: string;
    sha256: string;
    size: number;
    /** sha256 of the DER signing certificate, when signed. */
    certificateFingerprint?: string;
    partitions: ImagePartitions;
}

// ---------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------

/** The stable seed of an image: renaming it or changing kind/arch gives other UUIDs, rebuilding does not. */
export function defaultSeed(name: string, kind: ExtensionKind, arch: DdiArchitecture): string {
    return sha256Hex(`pulumi-kairos/ddi:${kind}:${arch}:${name}`);
}

/** A version-4-shaped UUID from sha256(seed:tag), so each tag gets its own stable value. */
export function seededUuid(seed: string, tag: string): string {
    const bytes = Buffer.from(sha256Hex(`${seed}:${tag}`).slice(0, 32), "hex");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    return uuidFromHex(bytes.toString("hex"));
}

/** 32 bytes of verity salt, as hex. */
export function seededSalt(seed: string): string {
    return sha256Hex(`${seed}:verity-salt`);
}

/** 32 hex digits -> 8-4-4-4-12 UUID text, bytes in order (as repart memcpy's the root hash into sd_id128). */
export function uuidFromHex(hex: string): string {
    if (!/^[0-9a-f]{32}$/.test(hex)) throw new DdiError(`expected 32 lowercase hex digits, got '${hex}'`);
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}

/** systemd finds the verity pair by these: root = first half of the root hash, verity = second half. */
export function rootHashPartitionUuids(rootHash: string): { root: string; verity: string } {
    if (!/^[0-9a-f]{64}$/.test(rootHash)) throw new DdiError(`root hash must be 64 lowercase hex digits, got '${rootHash}'`);
    return { root: uuidFromHex(rootHash.slice(0, 32)), verity: uuidFromHex(rootHash.slice(32)) };
}

export interface GptSlot {
    startSector: number;
    sectors: number;
    offset: number;
    size: number;
}

/** Contiguous partitions from LBA 2048; the disk ends after the backup GPT, rounded up to 4 KiB. */
export function gptLayout(partitionSizes: number[]): { slots: GptSlot[]; diskSize: number } {
    let next = FIRST_LBA;
    const slots = partitionSizes.map((size) => {
        if (!Number.isSafeInteger(size) || size <= 0 || size % PARTITION_ALIGNMENT !== 0) {
            throw new DdiError(`partition size ${size} is not a positive multiple of ${PARTITION_ALIGNMENT}`);
        }
        const slot = { startSector: next, sectors: size / SECTOR_SIZE, offset: next * SECTOR_SIZE, size };
        next += slot.sectors;
        return slot;
    });
    return { slots, diskSize: roundUp((next + BACKUP_GPT_SECTORS) * SECTOR_SIZE, PARTITION_ALIGNMENT) };
}

export function roundUp(n: number, multiple: number): number {
    return Math.ceil(n / multiple) * multiple;
}

export interface GptEntry {
    slot: GptSlot;
    type: string;
    uuid: string;
    name: string;
}

/** sfdisk's input script for the image's partition table. */
export function sfdiskScript(diskGuid: string, entries: GptEntry[]): string {
    const header = ["label: gpt", `label-id: ${diskGuid}`, "unit: sectors", `first-lba: ${FIRST_LBA}`, `sector-size: ${SECTOR_SIZE}`, ""];
    const lines = entries.map(
        (e) =>
            `start=${e.slot.startSector}, size=${e.slot.sectors}, type=${e.type}, uuid=${e.uuid}, name="${e.name}", attrs="${READ_ONLY_ATTRS}"`,
    );
    return [...header, ...lines, ""].join("\n");
}

export function partitionNames(arch: DdiArchitecture): PartitionTypes {
    return { root: `root-${arch}`, verity: `root-${arch}-verity`, signature: `root-${arch}-verity-sig` };
}

/** Where systemd-sysext / systemd-confext look for the image's release file. */
export function extensionReleasePath(kind: ExtensionKind, name: string): string {
    const dir = kind === "sysext" ? "usr/lib/extension-release.d" : "etc/extension-release.d";
    return `${dir}/extension-release.${name}`;
}

/** The content of the signature partition, as repart writes it: compact JSON, zero-padded to 16 KiB. */
export function signaturePartitionContent(rootHash: string, certificateFingerprint: string, signatureDer: Buffer): Buffer {
    const json = JSON.stringify({ rootHash, certificateFingerprint, signature: signatureDer.toString("base64") });
    if (json.length > SIGNATURE_PARTITION_SIZE) {
        throw new DdiError(`the verity signature JSON is ${json.length} bytes; it must fit in ${SIGNATURE_PARTITION_SIZE}`);
    }
    const content = Buffer.alloc(SIGNATURE_PARTITION_SIZE);
    content.write(json, "utf8");
    return content;
}

export interface VeritySignature {
    rootHash: string;
    certificateFingerprint: string;
    signature: Buffer;
}

export function parseSignaturePartition(content: Buffer): VeritySignature {
    const end = content.indexOf(0);
    const text = content.subarray(0, end < 0 ? content.length : end).toString("utf8");
    let parsed: Record<string, unknown>;
    try {
        parsed = JSON.parse(text);
    } catch {
        throw new DdiError("the verity signature partition does not hold JSON");
    }
    const { rootHash, certificateFingerprint, signature } = parsed;
    if (typeof rootHash !== "string" || typeof signature !== "string") {
        throw new DdiError("the verity signature JSON lacks rootHash or signature");
    }
    return {
        rootHash,
        certificateFingerprint: typeof certificateFingerprint === "string" ? certificateFingerprint : "",
        signature: Buffer.from(signature, "base64"),
    };
}

// ---------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------

/**
 * Builds the image at outFile (written in place; rename it into its final spot yourself), then
 * verifies it from the written bytes before returning. File modes and owners are taken from the
 * tree except that everything is owned by root; the mode of sourceDir itself becomes the mode of the
 * image's root directory, so stage trees with the same umask to get the same bytes.
 */
export async function buildSysextImage(opts: BuildSysextOptions): Promise<SysextImage> {
    checkBuildOptions(opts);
    const seed = opts.seed ?? defaultSeed(opts.name, opts.kind, opts.arch);
    const scratch = fs.mkdtempSync(path.join(opts.workDir, "ddi-"));
    try {
        const rootFile = path.join(scratch, "root.erofs");
        const verityFile = path.join(scratch, "root.verity");
        await makeErofs(opts, seed, rootFile);
        const rootHash = await formatVerity(rootFile, verityFile, seed);
        const signed = opts.signing ? await signRootHash(rootHash, opts.signing, scratch) : undefined;
        await assembleImage(opts.outFile, opts.arch, seed, rootHash, [rootFile, verityFile], signed?.content);
        const checked = await verifySysextImage(opts.outFile, {
            workDir: scratch,
            rootHash,
            certificate: opts.signing?.certificate,
            requireSignature: opts.signing !== undefined,
        });
        return {
            rootHash,
            sha256: await sha256File(opts.outFile),
            size: fs.statSync(opts.outFile).size,
            certificateFingerprint: signed?.certificateFingerprint,
            partitions: checked.partitions,
        };
    } catch (e) {
        fs.rmSync(opts.outFile, { force: true }); // never leave a half-built or unverified image behind
        throw e;
    } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

function checkBuildOptions(opts: BuildSysextOptions): void {
    // systemd looks the image up as NAME.raw and matches extension-release.NAME, so NAME must be a plain file name.
    if (!/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(opts.name) || opts.name.length > 200) {
        throw new DdiError(`image name '${opts.name}' must start with a letter or digit and use only letters, digits and _.+-`);
    }
    if (!Number.isSafeInteger(opts.sourceDateEpoch) || opts.sourceDateEpoch < 0) {
        throw new DdiError(`sourceDateEpoch must be a non-negative integer, got ${opts.sourceDateEpoch}`);
    }
    if (!PARTITION_TYPES[opts.arch]) throw new DdiError(`unsupported architecture '${opts.arch}'`);
    if (!["none", "lz4", "lz4hc"].includes(opts.compression)) throw new DdiError(`unsupported compression '${opts.compression}'`);
    if (!fs.statSync(opts.sourceDir, { throwIfNoEntry: false })?.isDirectory()) {
        throw new DdiError(`source folder ${opts.sourceDir} does not exist`);
    }
    checkExtensionRelease(opts.sourceDir, opts.name, opts.kind, opts.arch);
    if (opts.signing) checkSigningPair(opts.signing);
}

/** systemd refuses an extension without its release file, or with another ARCHITECTURE: fail at build time instead. */
export function checkExtensionRelease(sourceDir: string, name: string, kind: ExtensionKind, arch: DdiArchitecture): void {
    const relative = extensionReleasePath(kind, name);
    const file = path.join(sourceDir, relative);
    if (!fs.existsSync(file)) {
        throw new DdiError(`${kind} '${name}' needs ${relative} in its tree (with ID=... or ID=_any); ${sourceDir} has none`);
    }
    const declared = /^ARCHITECTURE=["']?([^"'\n]*)["']?\s*$/m.exec(fs.readFileSync(file, "utf8"))?.[1];
    if (declared !== undefined && declared !== "_any" && declared !== arch) {
        throw new DdiError(`${relative} says ARCHITECTURE=${declared} but the image is built for ${arch}`);
    }
}

function checkSigningPair(signing: SigningPair): void {
    for (const f of [signing.key, signing.certificate]) {
        if (!fs.existsSync(f)) throw new DdiError(`signing file ${f} does not exist`);
    }
    if (!keyMatchesCertificate(signing.key, signing.certificate)) {
        throw new DdiError(`the signing key ${signing.key} does not belong to certificate ${signing.certificate}`);
    }
}

async function makeErofs(opts: BuildSysextOptions, seed: string, rootFile: string): Promise<void> {
    await run(
        [
            "mkfs.erofs", "--quiet",
            "-T", String(opts.sourceDateEpoch),
            "-U", seededUuid(seed, "fs"),
            "--all-root",
            "-x", "-1", // no xattrs: they would carry host labels (SELinux, capabilities of the build tree)
            ...(opts.compression === "none" ? [] : ["-z", opts.compression]),
            rootFile, opts.sourceDir,
        ],
        // erofs-utils 1.5 reads SOURCE_DATE_EPOCH as "clamp": older mtimes would survive and differ between trees.
        // Unset, -T stamps every inode with the epoch.
        { env: { SOURCE_DATE_EPOCH: undefined } },
    );
    padFile(rootFile, PARTITION_ALIGNMENT);
}

/** Writes the hash tree next to the data and returns the root hash. Works on regular files, no dm. */
async function formatVerity(dataFile: string, hashFile: string, seed: string): Promise<string> {
    const rootHashFile = `${hashFile}.roothash`;
    await run([
        "veritysetup", "format", dataFile, hashFile,
        "--hash=sha256",
        `--data-block-size=${VERITY_BLOCK_SIZE}`,
        `--hash-block-size=${VERITY_BLOCK_SIZE}`,
        `--salt=${seededSalt(seed)}`,
        `--uuid=${seededUuid(seed, "verity-superblock")}`,
        `--root-hash-file=${rootHashFile}`,
    ]);
    padFile(hashFile, PARTITION_ALIGNMENT);
    const rootHash = fs.readFileSync(rootHashFile, "utf8").trim();
    rootHashPartitionUuids(rootHash); // throws unless it is 64 hex digits
    return rootHash;
}

interface SignedRootHash {
    content: Buffer;
    certificateFingerprint: string;
}

/** PKCS#7 over the root hash text, byte-identical to repart's PKCS7_sign(DETACHED|NOATTR|BINARY). */
async function signRootHash(rootHash: string, signing: SigningPair, scratch: string): Promise<SignedRootHash> {
    const cert = readCertificate(signing.certificate);
    const certPem = path.join(scratch, "signer.pem");
    const rootHashText = path.join(scratch, "roothash.txt");
    const signatureFile = path.join(scratch, "roothash.p7s");
    // openssl smime reads the signer as PEM only; re-encoding also accepts DER input.
    fs.writeFileSync(certPem, cert.pem);
    fs.writeFileSync(rootHashText, rootHash); // no newline: the kernel and systemd sign/verify exactly the hex
    await run(
        [
            "openssl", "smime", "-sign",
            "-in", rootHashText,
            "-signer", certPem,
            "-inkey", signing.key,
            "-noattr", "-binary",
            "-outform", "DER",
            "-out", signatureFile,
        ],
        { env: OPENSSL_ENV },
    );
    const content = signaturePartitionContent(rootHash, cert.sha256Fingerprint, fs.readFileSync(signatureFile));
    return { content, certificateFingerprint: cert.sha256Fingerprint };
}

/** Lays the partitions into outFile at their offsets, then writes the GPT around them. */
async function assembleImage(
    outFile: string,
    arch: DdiArchitecture,
    seed: string,
    rootHash: string,
    dataFiles: [string, string],
    signature: Buffer | undefined,
): Promise<void> {
    const sizes = [...dataFiles.map((f) => fs.statSync(f).size), ...(signature ? [signature.length] : [])];
    const { slots, diskSize } = gptLayout(sizes);
    fs.rmSync(outFile, { force: true });
    fs.writeFileSync(outFile, "");
    fs.truncateSync(outFile, diskSize); // sparse zeros: the gaps and the GPT areas
    await copyInto(dataFiles[0], outFile, slots[0].offset);
    await copyInto(dataFiles[1], outFile, slots[1].offset);
    if (signature) writeAt(outFile, slots[2].offset, signature);

    const types = PARTITION_TYPES[arch];
    const names = partitionNames(arch);
    const uuids = rootHashPartitionUuids(rootHash);
    const entries: GptEntry[] = [
        { slot: slots[0], type: types.root, uuid: uuids.root, name: names.root },
        { slot: slots[1], type: types.verity, uuid: uuids.verity, name: names.verity },
    ];
    if (signature) entries.push({ slot: slots[2], type: types.signature, uuid: seededUuid(seed, "root-verity-sig"), name: names.signature });
    await run(
        [
            "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel",
            "--wipe", "never",
            "--wipe-partitions", "never", // sfdisk would otherwise erase the erofs superblock it finds
            outFile,
        ],
        { input: sfdiskScript(seededUuid(seed, "disk"), entries) },
    );
}

// ---------------------------------------------------------------------------------------------
// Re-sign
// ---------------------------------------------------------------------------------------------

export interface ResignSysextOptions {
    /** A signed image from buildSysextImage. */
    inFile: string;
    /** May equal inFile to re-sign in place. */
    outFile: string;
    workDir: string;
    signing: SigningPair;
}

/**
 * Swaps the signature for one by another key. Only the 16 KiB signature partition changes: the
 * filesystem, hash tree, root hash and every UUID stay, so the result equals a fresh build with
 * that key. An unsigned image has no room for a signature partition: rebuild it instead.
 */
export async function resignSysextImage(opts: ResignSysextOptions): Promise<SysextImage> {
    checkSigningPair(opts.signing);
    const scratch = fs.mkdtempSync(path.join(opts.workDir, "ddi-resign-"));
    try {
        const table = await readPartitionTable(opts.inFile);
        const signature = table.partitions.signature;
        if (!signature) throw new DdiError(`${opts.inFile} is not signed, so it has no signature partition to rewrite; rebuild it with signing`);
        const rootHash = rootHashFromUuids(table.partitions);
        const signed = await signRootHash(rootHash, opts.signing, scratch);
        if (path.resolve(opts.inFile) !== path.resolve(opts.outFile)) fs.copyFileSync(opts.inFile, opts.outFile);
        writeAt(opts.outFile, signature.offset, signed.content);
        const checked = await verifySysextImage(opts.outFile, { workDir: scratch, rootHash, certificate: opts.signing.certificate, requireSignature: true });
        return {
            rootHash,
            sha256: await sha256File(opts.outFile),
            size: fs.statSync(opts.outFile).size,
            certificateFingerprint: signed.certificateFingerprint,
            partitions: checked.partitions,
        };
    } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

// ---------------------------------------------------------------------------------------------
// Verify
// ---------------------------------------------------------------------------------------------

export interface VerifySysextOptions {
    workDir: string;
    /** When given, the image's root hash must be this one. */
    rootHash?: string;
    /** When given, the signature must verify against this certificate (as the trust anchor). */
    certificate?: string;
    /** Fail when the image has no signature partition. */
    requireSignature?: boolean;
}

export interface VerifiedImage {
    rootHash: string;
    arch: DdiArchitecture;
    signed: boolean;
    certificateFingerprint?: string;
    partitions: ImagePartitions;
}

/**
 * Checks an image from its bytes alone: GPT shape, partition UUIDs = root hash, the whole hash tree
 * against the data (veritysetup verify), and the signature JSON and PKCS#7 against the certificate.
 * The kernel's own check (dm-verity with the key in its keyring) needs device-mapper, which build
 * hosts often lack, so the same verification is done in userspace.
 */
export async function verifySysextImage(file: string, opts: VerifySysextOptions): Promise<VerifiedImage> {
    const scratch = fs.mkdtempSync(path.join(opts.workDir, "ddi-verify-"));
    try {
        return await verifyImage(file, opts, scratch);
    } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

async function verifyImage(file: string, opts: VerifySysextOptions, scratch: string): Promise<VerifiedImage> {
    const { arch, partitions } = await readPartitionTable(file);
    const rootHash = rootHashFromUuids(partitions);
    if (opts.rootHash !== undefined && opts.rootHash !== rootHash) {
        throw new DdiError(`${file} has root hash ${rootHash}, expected ${opts.rootHash}`);
    }
    await verifyHashTree(file, partitions, rootHash, scratch);
    if (!partitions.signature) {
        if (opts.requireSignature) throw new DdiError(`${file} has no verity signature partition`);
        return { rootHash, arch, signed: false, partitions };
    }
    const signature = parseSignaturePartition(readAt(file, partitions.signature.offset, partitions.signature.size));
    if (signature.rootHash !== rootHash) {
        throw new DdiError(`${file}: the signature covers root hash ${signature.rootHash}, but the partitions have ${rootHash}`);
    }
    if (opts.certificate) await verifySignature(file, signature, opts.certificate, scratch);
    return { rootHash, arch, signed: true, certificateFingerprint: signature.certificateFingerprint, partitions };
}

interface SfdiskPartition {
    start: number;
    size: number;
    type: string;
    uuid: string;
    name?: string;
}

/** The image's verity set, found by type GUID, with offsets from sfdisk --json. */
export async function readPartitionTable(file: string): Promise<{ arch: DdiArchitecture; partitions: ImagePartitions }> {
    const { stdout } = await run(["sfdisk", "--json", file]).catch((e: unknown) => {
        throw new DdiError(`${file} has no readable partition table: ${(e as Error).message}`);
    });
    const table = JSON.parse(stdout).partitiontable as { label: string; sectorsize: number; partitions?: SfdiskPartition[] };
    if (table.label !== "gpt") throw new DdiError(`${file} has a ${table.label} partition table, not GPT`);
    const entries = table.partitions ?? [];
    for (const arch of Object.keys(PARTITION_TYPES) as DdiArchitecture[]) {
        const find = (type: string) => entries.find((p) => p.type.toLowerCase() === type);
        const root = find(PARTITION_TYPES[arch].root);
        if (!root) continue;
        const verity = find(PARTITION_TYPES[arch].verity);
        if (!verity) throw new DdiError(`${file} has a ${arch} root partition but no root-verity partition`);
        const signature = find(PARTITION_TYPES[arch].signature);
        const info = (p: SfdiskPartition): PartitionInfo => ({
            name: p.name ?? "",
            type: p.type.toLowerCase(),
            uuid: p.uuid.toLowerCase(),
            offset: p.start * table.sectorsize,
            size: p.size * table.sectorsize,
        });
        return { arch, partitions: { root: info(root), verity: info(verity), signature: signature && info(signature) } };
    }
    throw new DdiError(`${file} has no root partition of a supported architecture (${Object.keys(PARTITION_TYPES).join(", ")})`);
}

/** systemd pairs root and verity by these UUIDs, so they must spell out one root hash. */
function rootHashFromUuids(partitions: ImagePartitions): string {
    const rootHash = (partitions.root.uuid + partitions.verity.uuid).replace(/-/g, "");
    if (!/^[0-9a-f]{64}$/.test(rootHash)) throw new DdiError(`partition UUIDs ${partitions.root.uuid} / ${partitions.verity.uuid} are not a root hash`);
    return rootHash;
}

async function verifyHashTree(file: string, partitions: ImagePartitions, rootHash: string, scratch: string): Promise<void> {
    // veritysetup has a hash offset but no data offset, so the data partition is cut out.
    const dataFile = path.join(scratch, "root.img");
    try {
        await copyRange(file, partitions.root.offset, partitions.root.size, dataFile);
        await run(["veritysetup", "verify", dataFile, file, rootHash, `--hash-offset=${partitions.verity.offset}`]);
    } catch (e) {
        if (e instanceof ToolFailedError) throw new DdiError(`${file}: the verity hash tree does not match the data for root hash ${rootHash}\n${e.message}`);
        throw e;
    } finally {
        fs.rmSync(dataFile, { force: true }); // as large as the payload: do not keep it until the end
    }
}

async function verifySignature(file: string, signature: VeritySignature, certificate: string, scratch: string): Promise<void> {
    const cert = readCertificate(certificate);
    if (signature.certificateFingerprint !== cert.sha256Fingerprint) {
        throw new DdiError(
            `${file} was signed by certificate ${signature.certificateFingerprint || "(none named)"}, not by ${certificate} (${cert.sha256Fingerprint})`,
        );
    }
    const files = { p7s: path.join(scratch, "roothash.p7s"), content: path.join(scratch, "roothash.txt"), ca: path.join(scratch, "anchor.pem") };
    fs.writeFileSync(files.p7s, signature.signature);
    fs.writeFileSync(files.content, signature.rootHash);
    fs.writeFileSync(files.ca, cert.pem);
    try {
        await run(
            [
                "openssl", "smime", "-verify",
                "-inform", "DER",
                "-in", files.p7s,
                "-content", files.content,
                "-binary",
                "-CAfile", files.ca,
                "-partial_chain", // the signing cert itself is the anchor, even when a CA issued it
                "-purpose", "any",
                "-out", "/dev/null",
            ],
            { env: OPENSSL_ENV },
        );
    } catch (e) {
        if (e instanceof ToolFailedError) throw new DdiError(`${file}: the verity signature does not verify against ${certificate}\n${e.message}`);
        throw e;
    }
}

// ---------------------------------------------------------------------------------------------
// File plumbing
// ---------------------------------------------------------------------------------------------

function padFile(file: string, multiple: number): void {
    const size = fs.statSync(file).size;
    if (size % multiple !== 0) fs.truncateSync(file, roundUp(size, multiple));
}

async function copyInto(source: string, target: string, offset: number): Promise<void> {
    await pipeline(
        fs.createReadStream(source, { highWaterMark: COPY_CHUNK }),
        fs.createWriteStream(target, { flags: "r+", start: offset }),
    );
}

async function copyRange(source: string, offset: number, size: number, target: string): Promise<void> {
    await pipeline(
        fs.createReadStream(source, { start: offset, end: offset + size - 1, highWaterMark: COPY_CHUNK }),
        fs.createWriteStream(target),
    );
}

function writeAt(file: string, offset: number, data: Buffer): void {
    const fd = fs.openSync(file, "r+");
    try {
        fs.writeSync(fd, data, 0, data.length, offset);
    } finally {
        fs.closeSync(fd);
    }
}

function readAt(file: string, offset: number, size: number): Buffer {
    const fd = fs.openSync(file, "r");
    try {
        const buf = Buffer.alloc(size);
        const read = fs.readSync(fd, buf, 0, size, offset);
        return buf.subarray(0, read);
    } finally {
        fs.closeSync(fd);
    }
}

// The layout of a systemd extension image (DDI): partition types, the seeded UUIDs and salt, GPT
// arithmetic, the sfdisk script (the GPT's reference) and the verity-signature JSON. Pure functions;
// ddi.ts builds with them.
import { roundUp, sha256Hex } from "../files";

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
/** Bit 60 = read-only; current repart sets it on all three partitions of a verity set. */
const READ_ONLY_ATTRS = "GUID:60";

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

export interface GptEntry {
    slot: GptSlot;
    type: string;
    uuid: string;
    name: string;
}

/** sfdisk's input script for the image's partition table: the reference gpt-writer.ts's bytes are tested against. */
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
/** Where systemd looks for an extension's release file, relative to the image root. */
export function extensionReleaseDir(kind: ExtensionKind): string {
    return kind === "sysext" ? "usr/lib/extension-release.d" : "etc/extension-release.d";
}

export function extensionReleasePath(kind: ExtensionKind, name: string): string {
    return `${extensionReleaseDir(kind)}/extension-release.${name}`;
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

/** The ARCHITECTURE= value of an extension-release file (quotes removed), or undefined when absent. */
export function declaredArchitecture(releaseText: string): string | undefined {
    return /^ARCHITECTURE=["']?([^"'\n]*)["']?\s*$/m.exec(releaseText)?.[1];
}

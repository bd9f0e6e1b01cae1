// Checks a signed systemd extension image from its bytes alone: GPT shape, partition UUIDs = root hash,
// the hash tree against the data, and the signature JSON and PKCS#7 against a certificate.
import * as fs from "fs";
import * as path from "path";
import { run, ToolFailedError } from "../run";
import { OPENSSL_ENV, readCertificate } from "../keys/openssl";
import { DdiArchitecture, DdiError, ImagePartitions, parseSignaturePartition, PARTITION_TYPES, PartitionInfo, VeritySignature } from "./ddi-layout";
import { copyRange, readAt } from "../files";

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
export function rootHashFromUuids(partitions: ImagePartitions): string {
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

export async function verifySignature(file: string, signature: VeritySignature, certificate: string, scratch: string): Promise<void> {
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

/** What an image's partitions say about its verity signature, read from the GPT and the signature partition only. */
export interface VeritySignatureOf {
    rootHash: string;
    arch: DdiArchitecture;
    /** Undefined when the image has no signature partition. */
    signature?: VeritySignature;
}

/**
 * The root hash (from the partition UUIDs) and the signature partition of an image, without reading
 * its data: a consumer's check that it is a signed DDI at all (the kernel checks the hash tree when it
 * mounts it; verifySysextImage checks it in userspace). Throws a DdiError for anything that is not one.
 */
export async function readVeritySignature(file: string): Promise<VeritySignatureOf> {
    const { arch, partitions } = await readPartitionTable(file);
    const rootHash = rootHashFromUuids(partitions);
    if (!partitions.signature) return { rootHash, arch };
    const signature = parseSignaturePartition(readAt(file, partitions.signature.offset, partitions.signature.size));
    if (signature.rootHash !== rootHash) {
        throw new DdiError(`${file}: the signature covers root hash ${signature.rootHash}, but the partitions have ${rootHash}`);
    }
    return { rootHash, arch, signature };
}

/**
 * Whether the PKCS#7 signature over the root hash verifies with any of `anchorsPem` (a PEM file of one
 * or more certificates) as trust anchors: what systemd and the kernel do with the certificates in
 * /run/verity.d or the keyring. Resolves false when it does not; throws when openssl cannot run.
 */
export async function veritySignatureVerifiesWith(signature: VeritySignature, anchorsPem: string, scratch: string): Promise<boolean> {
    const files = { p7s: path.join(scratch, "roothash.p7s"), content: path.join(scratch, "roothash.txt") };
    fs.writeFileSync(files.p7s, signature.signature);
    fs.writeFileSync(files.content, signature.rootHash);
    try {
        await run(
            ["openssl", "smime", "-verify", "-inform", "DER", "-in", files.p7s, "-content", files.content, "-binary", "-CAfile", anchorsPem, "-partial_chain", "-purpose", "any", "-out", "/dev/null"],
            { env: OPENSSL_ENV },
        );
        return true;
    } catch (e) {
        if (e instanceof ToolFailedError) return false;
        throw e;
    }
}

// Signed systemd extension images (sysext/confext Discoverable Disk Images) built from a directory
// tree: mkfs.erofs writes the filesystem, and everything else is done in-process in one pass over it:
// the filesystem is copied into the image while its dm-verity hash tree is computed (verity-tree.ts,
// the bytes veritysetup format writes), the root hash is signed (openssl smime, PKCS#7 as repart signs)
// and the GPT is written (gpt-writer.ts, the bytes sfdisk writes). systemd-repart is not used because
// Debian 12's v252 cannot make erofs, pads partitions to 10 MiB and picks a random verity salt (so no
// two builds match). Here every UUID and the salt come from a seed, so the same tree, epoch and key
// give the same bytes. Nothing needs root, loop or dm.
import { ENGINE_KEY_ARGS, explainTokenFailure, isPkcs11Uri, withPin } from "../keys/pkcs11";
import * as fs from "fs";
import * as path from "path";
import { run } from "../run";
import { OPENSSL_ENV, keyMatchesCertificate, readCertificate } from "../keys/openssl";
import { resolveInTree } from "../tree-chase";
import {
    BuildSysextOptions, DdiArchitecture, DdiError, declaredArchitecture, defaultSeed, ExtensionKind, extensionReleasePath, GptEntry, GptSlot, gptLayout, ImagePartitions, PARTITION_ALIGNMENT, parseSignaturePartition, PARTITION_TYPES, partitionNames, rootHashPartitionUuids, seededSalt, seededUuid, SIGNATURE_PARTITION_SIZE, signaturePartitionContent, SigningPair, SysextImage,
} from "./ddi-layout";
import { readPartitionTable, rootHashFromUuids, verifySignature, verifySysextImage } from "./ddi-verify";
import { copyIntoVisiting, roundUp, sha256File, writeAt } from "../files";
import { VerityHasher } from "./verity-tree";
import { gptBytes } from "./gpt-writer";
import { ReadBack } from "./read-back";
import { DigestWorker } from "./verity-worker";

export * from "./ddi-layout";

/** The filesystem is read in these pieces; the helper thread's half starts at a multiple of it. */
const COPY_CHUNK = 1 << 20;
/** Below this per half, the helper thread's hand-over costs more than it saves. */
const HELPER_MIN_BYTES = 8 << 20;

// ---------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------
/**
 * Builds the image at outFile (written in place; rename it into its final spot yourself), then
 * checks it from the written bytes before returning. File modes and owners are taken from the
 * tree except that everything is owned by root; the mode of sourceDir itself becomes the mode of the
 * image's root directory, so stage trees with the same umask to get the same bytes.
 */
export async function buildSysextImage(opts: BuildSysextOptions): Promise<SysextImage> {
    checkBuildOptions(opts);
    const seed = opts.seed ?? defaultSeed(opts.name, opts.kind, opts.arch);
    const scratch = fs.mkdtempSync(path.join(opts.workDir, "ddi-"));
    let readBack: ReadBack | undefined;
    const helper = DigestWorker.acquire(); // the first build's thread starts up while mkfs.erofs runs
    try {
        const rootFile = path.join(scratch, "root.erofs");
        await makeErofs(opts, seed, rootFile);
        // The data partition's place does not depend on any size: the filesystem is copied there while
        // it is hashed, so it is read once (the helper thread's half is read once more, from the page cache).
        const dataOffset = gptLayout([PARTITION_ALIGNMENT]).slots[0].offset;
        fs.rmSync(opts.outFile, { force: true });
        fs.writeFileSync(opts.outFile, "");
        const salt = seededSalt(seed);
        const hasher = new VerityHasher({ salt, uuid: seededUuid(seed, "verity-superblock") });
        const fsSize = fs.statSync(rootFile).size;
        const split = helper && fsSize >= 2 * HELPER_MIN_BYTES ? Math.floor(fsSize / 2 / COPY_CHUNK) * COPY_CHUNK : fsSize;
        const secondHalf = split < fsSize ? helper!.digests(rootFile, split, fsSize, salt) : undefined;
        secondHalf?.catch(() => undefined); // awaited below
        let at = 0;
        const dataSize = await copyIntoVisiting(rootFile, opts.outFile, dataOffset, (chunk) => {
            if (at < split) hasher.update(chunk.subarray(0, Math.min(chunk.length, split - at)));
            at += chunk.length;
        }, COPY_CHUNK);
        if (dataSize !== fsSize) throw new DdiError(`internal: ${rootFile} changed size while it was copied`);
        if (secondHalf) hasher.updateDigests(await secondHalf);
        const { hashArea, rootHash } = hasher.finish();
        rootHashPartitionUuids(rootHash); // throws unless it is 64 hex digits

        // The signature partition has a fixed size, so the whole layout is known before openssl has signed.
        const signing = opts.signing ? signRootHash(rootHash, opts.signing, scratch) : undefined;
        signing?.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
        const sizes = [dataSize, roundUp(hashArea.length, PARTITION_ALIGNMENT), ...(signing ? [SIGNATURE_PARTITION_SIZE] : [])];
        const { slots, diskSize } = gptLayout(sizes);
        if (slots[0].offset !== dataOffset) throw new DdiError(`internal: the data partition moved from ${dataOffset} to ${slots[0].offset}`);
        const gpt = gptBytes(seededUuid(seed, "disk"), gptEntries(opts.arch, seed, rootHash, slots), diskSize);
        fs.truncateSync(opts.outFile, diskSize); // sparse zeros: the gaps
        writeAt(opts.outFile, 0, gpt.head);
        writeAt(opts.outFile, slots[1].offset, hashArea);
        writeAt(opts.outFile, gpt.tailOffset, gpt.tail);

        // While openssl signs: sfdisk parses the table, and the image is read back for its sha256 up to
        // the signature partition; the rest once the signature is in place.
        const table = checkPartitionTable(opts.outFile, rootHash, slots);
        table.catch(() => undefined); // awaited below
        readBack = await ReadBack.open(opts.outFile);
        readBack.expect({ name: "GPT", offset: 0, bytes: gpt.head });
        readBack.expect({ name: "root", offset: slots[0].offset, size: dataSize, file: rootFile });
        readBack.expect({ name: "verity", offset: slots[1].offset, bytes: hashArea });
        const signatureAt = slots[2]?.offset ?? gpt.tailOffset;
        // The signature goes in and openssl verifies it as soon as it is made, while the read-back goes on.
        const placed = signing?.then(async (signed) => {
            writeAt(opts.outFile, signatureAt, signed.content);
            await checkSignature(opts.outFile, rootHash, signed.content, opts.signing!.certificate, scratch);
            return signed;
        });
        placed?.catch(() => undefined); // awaited below
        const [signed] = await Promise.all([placed, readBack.readTo(signatureAt)]);
        if (signed) readBack.expect({ name: "signature", offset: signatureAt, bytes: signed.content });
        readBack.expect({ name: "backup GPT", offset: gpt.tailOffset, bytes: gpt.tail });
        const [read, partitions] = await Promise.all([readBack.finish(), table]);
        if (read.differs) throw new DdiError(`${opts.outFile}: the ${read.differs} area is not byte for byte what was written there`);
        if (read.size !== diskSize) throw new DdiError(`${opts.outFile} is ${read.size} bytes, expected ${diskSize}`);
        return {
            rootHash,
            sha256: read.sha256,
            size: read.size,
            certificateFingerprint: signed?.certificateFingerprint,
            partitions,
        };
    } catch (e) {
        await readBack?.close();
        fs.rmSync(opts.outFile, { force: true }); // never leave a half-built or unchecked image behind
        throw e;
    } finally {
        helper?.release();
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

function gptEntries(arch: DdiArchitecture, seed: string, rootHash: string, slots: GptSlot[]): GptEntry[] {
    const types = PARTITION_TYPES[arch];
    const names = partitionNames(arch);
    const uuids = rootHashPartitionUuids(rootHash);
    const entries: GptEntry[] = [
        { slot: slots[0], type: types.root, uuid: uuids.root, name: names.root },
        { slot: slots[1], type: types.verity, uuid: uuids.verity, name: names.verity },
    ];
    if (slots[2]) entries.push({ slot: slots[2], type: types.signature, uuid: seededUuid(seed, "root-verity-sig"), name: names.signature });
    return entries;
}

// The checks of a freshly built image by tools other than the ones that wrote it. Its bytes are compared
// with what was written by ReadBack; re-hashing the whole tree (verifySysextImage, veritysetup verify)
// would only repeat the hashing on the same bytes, which tests compare against veritysetup's. Images
// from elsewhere (re-sign, promotion) still get that full check.

/** sfdisk parses the GPT: the verity set by type, UUIDs spelling the root hash, each partition where it was written. */
async function checkPartitionTable(file: string, rootHash: string, slots: GptSlot[]): Promise<ImagePartitions> {
    const { partitions } = await readPartitionTable(file);
    const found = rootHashFromUuids(partitions);
    if (found !== rootHash) throw new DdiError(`${file} has root hash ${found}, expected ${rootHash}`);
    const placed = [partitions.root, partitions.verity, partitions.signature];
    if (placed.filter(Boolean).length !== slots.length) throw new DdiError(`${file} has ${placed.filter(Boolean).length} partitions of its verity set, expected ${slots.length}`);
    slots.forEach((slot, i) => {
        const p = placed[i];
        if (!p || p.offset !== slot.offset || p.size !== slot.size) throw new DdiError(`${file}: partition ${i + 1} is not where it was written (${slot.offset}+${slot.size})`);
    });
    return partitions;
}

/** openssl verifies the signature partition's PKCS#7 over the root hash with the certificate. */
async function checkSignature(file: string, rootHash: string, content: Buffer, certificate: string, scratch: string): Promise<void> {
    const signature = parseSignaturePartition(content);
    if (signature.rootHash !== rootHash) throw new DdiError(`${file}: the signature covers root hash ${signature.rootHash}, not ${rootHash}`);
    await verifySignature(file, signature, certificate, scratch);
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
    const file = resolveInTree(sourceDir, relative); // the image's own file, even through its links: never the host's
    if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
        throw new DdiError(`${kind} '${name}' needs ${relative} in its tree (with ID=... or ID=_any); ${sourceDir} has none`);
    }
    const declared = declaredArchitecture(fs.readFileSync(file, "utf8"));
    if (declared !== undefined && declared !== "_any" && declared !== arch) {
        throw new DdiError(`${relative} says ARCHITECTURE=${declared} but the image is built for ${arch}`);
    }
}

function checkSigningPair(signing: SigningPair): void {
    for (const f of [signing.key, signing.certificate]) {
        if (!isPkcs11Uri(f) && !fs.existsSync(f)) throw new DdiError(`signing file ${f} does not exist`);
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
    const smime = (key: string, engine: string[], env: Record<string, string>) =>
        run(["openssl", "smime", "-sign", ...engine, "-in", rootHashText, "-signer", certPem, "-inkey", key, "-noattr", "-binary", "-outform", "DER", "-out", signatureFile], { env });
    // A token key signs inside the token; RSA PKCS#1 v1.5 gives the same bytes as from a file.
    if (isPkcs11Uri(signing.key)) await withPin(signing.key, (key, env) => smime(key, ENGINE_KEY_ARGS, env).catch((e) => { throw explainTokenFailure(signing.key, e); }));
    else await smime(signing.key, [], OPENSSL_ENV);
    const content = signaturePartitionContent(rootHash, cert.sha256Fingerprint, fs.readFileSync(signatureFile));
    return { content, certificateFingerprint: cert.sha256Fingerprint };
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

function padFile(file: string, multiple: number): void {
    const size = fs.statSync(file).size;
    if (size % multiple !== 0) fs.truncateSync(file, roundUp(size, multiple));
}

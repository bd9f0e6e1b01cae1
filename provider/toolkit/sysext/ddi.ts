// Signed systemd extension images (sysext/confext Discoverable Disk Images) built from a directory
// tree with plain tools: mkfs.erofs -> veritysetup format -> PKCS#7 signature JSON -> GPT by sfdisk.
// systemd-repart is not used because Debian 12's v252 cannot make erofs, pads partitions to 10 MiB
// and picks a random verity salt (so no two builds match). Here every UUID and the salt come from a
// seed, so the same tree, epoch and key give the same bytes. Nothing needs root, loop or dm.
import { ENGINE_KEY_ARGS, explainTokenFailure, isPkcs11Uri, withPin } from "../keys/pkcs11";
import * as fs from "fs";
import * as path from "path";
import { run } from "../run";
import { OPENSSL_ENV, keyMatchesCertificate, readCertificate } from "../keys/openssl";
import { resolveInTree } from "../tree-chase";
import {
    BuildSysextOptions, DdiArchitecture, DdiError, declaredArchitecture, defaultSeed, ExtensionKind, extensionReleasePath, GptEntry, GptSlot, gptLayout, ImagePartitions, parseSignaturePartition, PARTITION_ALIGNMENT, PARTITION_TYPES, partitionNames, rootHashPartitionUuids, seededSalt, seededUuid, sfdiskScript, signaturePartitionContent, SigningPair, SysextImage,
} from "./ddi-layout";
import { readPartitionTable, rootHashFromUuids, verifySignature, verifySysextImage } from "./ddi-verify";
import { copyInto, readAt, roundUp, sha256ComparingRanges, sha256File, writeAt } from "../files";

export * from "./ddi-layout";

/** 4 KiB verity blocks (modern repart), not v252's 512 B: 8x smaller hash tree, page-sized reads. */
const VERITY_BLOCK_SIZE = 4096;

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
        // The data partition's place does not depend on the sizes, so the filesystem goes into the image
        // while veritysetup hashes it: two cores, one read of the filesystem each.
        const dataOffset = gptLayout([PARTITION_ALIGNMENT]).slots[0].offset;
        fs.rmSync(opts.outFile, { force: true });
        fs.writeFileSync(opts.outFile, "");
        const [rootHash] = await Promise.all([formatVerity(rootFile, verityFile, seed), copyInto(rootFile, opts.outFile, dataOffset)]);
        const signed = opts.signing ? await signRootHash(rootHash, opts.signing, scratch) : undefined;
        const slots = await assembleImage(opts.outFile, opts.arch, seed, rootHash, [rootFile, verityFile], signed?.content);
        if (slots[0].offset !== dataOffset) throw new DdiError(`internal: the data partition moved from ${dataOffset} to ${slots[0].offset}`);
        const checked = await verifyBuiltImage(opts.outFile, {
            scratch,
            written: { root: rootFile, verity: verityFile },
            rootHash,
            certificate: opts.signing?.certificate,
            requireSignature: opts.signing !== undefined,
        });
        return {
            rootHash,
            sha256: checked.sha256,
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

interface BuiltImageCheck {
    scratch: string;
    /** What was copied into the data and hash partitions: veritysetup format's input and output files. */
    written: Record<"root" | "verity", string>;
    rootHash: string;
    certificate?: string;
    requireSignature: boolean;
}

/**
 * The check of a freshly built image, read once: its GPT and UUIDs as for any image, its data and hash
 * partitions byte for byte what veritysetup format hashed and wrote (compared while the image is read
 * for its own sha256), and the signature verified with openssl. Re-hashing the
 * whole tree (verifySysextImage, veritysetup verify) would only repeat veritysetup format's work on the
 * same bytes; images from elsewhere (re-sign, promotion) still get that full check.
 */
async function verifyBuiltImage(file: string, o: BuiltImageCheck): Promise<{ sha256: string; partitions: ImagePartitions }> {
    const { partitions } = await readPartitionTable(file);
    const rootHash = rootHashFromUuids(partitions);
    if (rootHash !== o.rootHash) throw new DdiError(`${file} has root hash ${rootHash}, expected ${o.rootHash}`);
    const read = await sha256ComparingRanges(file, {
        root: { offset: partitions.root.offset, size: partitions.root.size, expected: o.written.root },
        verity: { offset: partitions.verity.offset, size: partitions.verity.size, expected: o.written.verity },
    });
    if (read.differs) throw new DdiError(`${file}: the ${read.differs} partition is not byte for byte what was built (${o.written[read.differs]})`);
    const digests = { file: read.sha256 };
    if (!partitions.signature) {
        if (o.requireSignature) throw new DdiError(`${file} has no verity signature partition`);
        return { sha256: digests.file, partitions };
    }
    const signature = parseSignaturePartition(readAt(file, partitions.signature.offset, partitions.signature.size));
    if (signature.rootHash !== rootHash) {
        throw new DdiError(`${file}: the signature covers root hash ${signature.rootHash}, but the partitions have ${rootHash}`);
    }
    if (o.certificate) await verifySignature(file, signature, o.certificate, o.scratch);
    return { sha256: digests.file, partitions };
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
    const smime = (key: string, engine: string[], env: Record<string, string>) =>
        run(["openssl", "smime", "-sign", ...engine, "-in", rootHashText, "-signer", certPem, "-inkey", key, "-noattr", "-binary", "-outform", "DER", "-out", signatureFile], { env });
    // A token key signs inside the token; RSA PKCS#1 v1.5 gives the same bytes as from a file.
    if (isPkcs11Uri(signing.key)) await withPin(signing.key, (key, env) => smime(key, ENGINE_KEY_ARGS, env).catch((e) => { throw explainTokenFailure(signing.key, e); }));
    else await smime(signing.key, [], OPENSSL_ENV);
    const content = signaturePartitionContent(rootHash, cert.sha256Fingerprint, fs.readFileSync(signatureFile));
    return { content, certificateFingerprint: cert.sha256Fingerprint };
}

/** Lays the hash tree and signature into outFile (which already holds the data partition), then writes the GPT around them. */
async function assembleImage(
    outFile: string,
    arch: DdiArchitecture,
    seed: string,
    rootHash: string,
    dataFiles: [string, string],
    signature: Buffer | undefined,
): Promise<GptSlot[]> {
    const sizes = [...dataFiles.map((f) => fs.statSync(f).size), ...(signature ? [signature.length] : [])];
    const { slots, diskSize } = gptLayout(sizes);
    fs.truncateSync(outFile, diskSize); // sparse zeros: the gaps and the GPT areas
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
    return slots;
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

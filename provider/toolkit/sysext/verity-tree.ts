// The dm-verity hash area exactly as `veritysetup format` writes it (format version 1, "normal" hash
// type), computed in-process: the build already reads the filesystem once to place it in the image,
// and hashing those same chunks saves veritysetup's second read and its slower per-block hashing.
// The bytes must equal veritysetup's (test/toolkit/sysext/verity-tree.test.ts compares them), so
// images built before and after this module are identical.
//
// Layout (cryptsetup lib/verity): one hash block holding the superblock, then the tree's levels from
// the top (one block) down to level 0 (the digests of the data blocks). Each digest is
// sha256(salt || block); a level's last block is zero-padded. The root hash is the digest of the top
// level's single block (of the lone data block when there is only one).
import * as crypto from "crypto";
import { DdiError } from "./ddi-layout";

export const VERITY_BLOCK_SIZE = 4096;
const DIGEST_SIZE = 32;
const DIGESTS_PER_BLOCK = VERITY_BLOCK_SIZE / DIGEST_SIZE;
const SUPERBLOCK_SIZE = 512;

export interface VerityParams {
    /** Hex salt, as given to veritysetup --salt. */
    salt: string;
    /** The superblock's UUID, as given to veritysetup --uuid. */
    uuid: string;
}

/**
 * Level-0 digests of a data area fed in whole blocks, in order. Kept whole in memory: 32 bytes per
 * 4 KiB block, 8 MiB for a 1 GiB filesystem.
 */
export class VerityHasher {
    private readonly salt: Buffer;
    /** salt || block, reused for every block. */
    private readonly scratch: Buffer;
    private readonly digests: Buffer[] = [];
    private blocks = 0;

    constructor(private readonly params: VerityParams) {
        this.salt = Buffer.from(params.salt, "hex");
        if (this.salt.length === 0 || this.salt.length > 256 || this.salt.toString("hex") !== params.salt.toLowerCase()) {
            throw new DdiError(`verity salt must be 1 to 256 bytes of hex, got '${params.salt}'`);
        }
        this.scratch = Buffer.alloc(this.salt.length + VERITY_BLOCK_SIZE);
        this.salt.copy(this.scratch);
    }

    /** Hashes `data`, a whole number of blocks that follow the ones fed before. */
    update(data: Buffer): void {
        if (data.length % VERITY_BLOCK_SIZE !== 0) throw new DdiError(`verity data must come in whole ${VERITY_BLOCK_SIZE}-byte blocks, got ${data.length} bytes`);
        const out = Buffer.allocUnsafe((data.length / VERITY_BLOCK_SIZE) * DIGEST_SIZE);
        for (let i = 0, o = 0; i < data.length; i += VERITY_BLOCK_SIZE, o += DIGEST_SIZE) {
            this.saltedDigest(data.subarray(i, i + VERITY_BLOCK_SIZE)).copy(out, o);
        }
        this.digests.push(out);
        this.blocks += data.length / VERITY_BLOCK_SIZE;
    }

    /** Adds level-0 digests computed elsewhere (DigestWorker) for the blocks that follow the ones fed before. */
    updateDigests(digests: Buffer): void {
        if (digests.length % DIGEST_SIZE !== 0) throw new DdiError(`verity digests must be whole ${DIGEST_SIZE}-byte digests, got ${digests.length} bytes`);
        this.digests.push(digests);
        this.blocks += digests.length / DIGEST_SIZE;
    }

    /** The hash area (superblock block + tree) and the root hash, once every data block was fed. */
    finish(): { hashArea: Buffer; rootHash: string } {
        if (this.blocks === 0) throw new DdiError("verity needs at least one data block");
        const level0 = Buffer.concat(this.digests);
        // Levels from the bottom up: each is the digests of the blocks of the one below, zero-padded to whole blocks.
        const levels: Buffer[] = [];
        let below: Buffer = level0;
        for (let i = 0; i < levelCount(this.blocks); i++) {
            const level = padToBlocks(below);
            levels.push(level);
            below = this.digestBlocks(level);
        }
        // With no levels, `below` is still the lone data block's digest: that is the root hash.
        const rootHash = below.toString("hex");
        const hashArea = Buffer.concat([this.superblockBlock(), ...levels.reverse()]);
        return { hashArea, rootHash };
    }

    private digestBlocks(level: Buffer): Buffer {
        const out = Buffer.allocUnsafe((level.length / VERITY_BLOCK_SIZE) * DIGEST_SIZE);
        for (let i = 0, o = 0; i < level.length; i += VERITY_BLOCK_SIZE, o += DIGEST_SIZE) {
            this.saltedDigest(level.subarray(i, i + VERITY_BLOCK_SIZE)).copy(out, o);
        }
        return out;
    }

    private saltedDigest(block: Buffer): Buffer {
        return saltedSha256(this.salt, block, this.scratch);
    }

    /** struct verity_sb (cryptsetup lib/verity/verity.h), little-endian, in a zeroed hash block. */
    private superblockBlock(): Buffer {
        const b = Buffer.alloc(VERITY_BLOCK_SIZE);
        b.write("verity", 0, "latin1"); // signature[8], NUL-padded
        b.writeUInt32LE(1, 8); // version
        b.writeUInt32LE(1, 12); // hash_type: 1 = normal (0 is Chrome OS)
        const uuid = Buffer.from(this.params.uuid.replace(/-/g, ""), "hex");
        if (uuid.length !== 16) throw new DdiError(`verity UUID '${this.params.uuid}' is not a UUID`);
        uuid.copy(b, 16);
        b.write("sha256", 32, "latin1"); // algorithm[32]
        b.writeUInt32LE(VERITY_BLOCK_SIZE, 64); // data_block_size
        b.writeUInt32LE(VERITY_BLOCK_SIZE, 68); // hash_block_size
        b.writeBigUInt64LE(BigInt(this.blocks), 72); // data_blocks
        b.writeUInt16LE(this.salt.length, 80); // salt_size, then _pad1[6]
        this.salt.copy(b, 88); // salt[256], then _pad2[168]
        if (88 + 256 + 168 !== SUPERBLOCK_SIZE) throw new Error("internal: verity superblock layout");
        return b;
    }
}

type OneShotHash = (algorithm: string, data: Buffer, encoding: "buffer") => Buffer;
/** crypto.hash (Node 20.12+): one call per 4 KiB block costs ~30% less than a Hash object per block. */
const oneShot = (crypto as unknown as { hash?: OneShotHash }).hash;

/** sha256(salt || block) (format version 1: salt first); `scratch` holds the salt and room for one block. */
function saltedSha256(salt: Buffer, block: Buffer, scratch: Buffer): Buffer {
    if (!oneShot || block.length !== scratch.length - salt.length) return crypto.createHash("sha256").update(salt).update(block).digest();
    block.copy(scratch, salt.length);
    return oneShot("sha256", scratch, "buffer");
}

/** cryptsetup's hash_levels(): levels until one block's worth of digests covers all data blocks. */
export function levelCount(dataBlocks: number): number {
    let levels = 0;
    while ((dataBlocks - 1) / DIGESTS_PER_BLOCK ** levels >= 1) levels++;
    return levels;
}

function padToBlocks(b: Buffer): Buffer {
    const size = Math.ceil(b.length / VERITY_BLOCK_SIZE) * VERITY_BLOCK_SIZE;
    return size === b.length ? b : Buffer.concat([b, Buffer.alloc(size - b.length)]);
}

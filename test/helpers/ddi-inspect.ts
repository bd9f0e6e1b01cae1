// Independent inspection of built DDIs for the tests: sfdisk for the layout, fsck.erofs to read the
// files back, systemd-dissect for what systemd sees, openssl for the verity signature.
import * as fs from "fs";
import * as path from "path";
import { run } from "../../provider/toolkit/run";

export interface SfdiskTable {
    id: string;
    sectorsize: number;
    partitions: Array<{ node: string; start: number; size: number; type: string; uuid: string; name: string; attrs?: string }>;
}

export async function sfdiskJson(file: string): Promise<SfdiskTable> {
    const table = JSON.parse((await run(["sfdisk", "--json", file])).stdout).partitiontable;
    return {
        ...table,
        id: table.id.toLowerCase(),
        partitions: table.partitions.map((p: SfdiskTable["partitions"][0]) => ({ ...p, type: p.type.toLowerCase(), uuid: p.uuid.toLowerCase() })),
    };
}

/** Bytes of partition `index` (0-based, table order), located through the image's own GPT. */
export async function partitionBytes(image: string, index: number): Promise<Buffer> {
    const table = await sfdiskJson(image);
    const p = table.partitions[index];
    return fs.readFileSync(image).subarray(p.start * table.sectorsize, (p.start + p.size) * table.sectorsize);
}

/** The files of the image's erofs root partition, extracted by fsck.erofs into `out`. */
export async function extractRootTree(image: string, out: string): Promise<string> {
    const part = `${out}.root.part`;
    fs.writeFileSync(part, await partitionBytes(image, 0));
    await run(["fsck.erofs", `--extract=${out}`, part]);
    fs.rmSync(part);
    return out;
}

/** Relative paths of regular files and symlinks below `root`, sorted. */
export function listTree(root: string, rel = ""): string[] {
    const out: string[] = [];
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
        const child = rel ? `${rel}/${name}` : name;
        const st = fs.lstatSync(path.join(root, child));
        if (st.isDirectory()) out.push(...listTree(root, child));
        else out.push(child);
    }
    return out;
}

export async function dissectJson(image: string): Promise<any> {
    return JSON.parse((await run(["systemd-dissect", "--json=short", image])).stdout);
}

/** Verifies the verity-sig partition's PKCS#7 over its root hash with openssl against `cert`. */
export async function veritySignatureVerifies(image: string, cert: string, work: string): Promise<{ ok: boolean; rootHash: string }> {
    const table = await sfdiskJson(image);
    const json = JSON.parse((await partitionBytes(image, table.partitions.length - 1)).toString("utf8").replace(/\0+$/, ""));
    const content = path.join(work, "roothash.txt");
    const sig = path.join(work, "roothash.p7s");
    fs.writeFileSync(content, json.rootHash);
    fs.writeFileSync(sig, Buffer.from(json.signature, "base64"));
    try {
        await run(["openssl", "smime", "-verify", "-inform", "DER", "-in", sig, "-content", content, "-binary", "-CAfile", cert, "-purpose", "any", "-out", "/dev/null"]);
        return { ok: true, rootHash: json.rootHash };
    } catch {
        return { ok: false, rootHash: json.rootHash };
    }
}

// Replaces one file on an installed disk image's ESP from the host, as an OS upgrade would swap the
// active UKI (kairos-agent upgrade copies a new one over EFI/kairos/active.efi): mtools writes into
// the FAT partition in place, at the offset sfdisk reads from the disk's GPT.
import { run } from "../../provider/toolkit/run";

const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/** The byte offset of the (first) EFI system partition in a raw disk image. */
export async function espOffset(disk: string): Promise<number> {
    const table = JSON.parse((await run(["sfdisk", "--json", disk])).stdout).partitiontable;
    const esp = (table.partitions ?? []).find((p: { type: string }) => p.type.toUpperCase() === ESP_TYPE);
    if (!esp) throw new Error(`${disk} has no EFI system partition`);
    return esp.start * (table.sectorsize ?? 512);
}

/** Writes `file` over `espPath` (e.g. "EFI/kairos/active.efi") on the disk's ESP. */
export async function replaceOnEsp(disk: string, espPath: string, file: string): Promise<void> {
    const image = `${disk}@@${await espOffset(disk)}`;
    await run(["mcopy", "-o", "-i", image, file, `::${espPath}`], { env: { MTOOLS_SKIP_CHECK: "1" } });
}

/** The ESP's files below `dir`, as mdir lists them (names only). */
export async function listOnEsp(disk: string, dir: string): Promise<string[]> {
    const image = `${disk}@@${await espOffset(disk)}`;
    const out = (await run(["mdir", "-b", "-i", image, `::${dir}`], { env: { MTOOLS_SKIP_CHECK: "1" } })).stdout;
    return out.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => l.replace(/^::\/?/, ""));
}

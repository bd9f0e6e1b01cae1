// What the UKI provider tests start from: the busybox test OS as a rootfs, a key set, and the
// KairosUkiImage inputs that sign with its db key and PCR key.
import * as path from "path";
import { signingKeysHandler } from "../../provider/signing-keys";
import { tempDir } from "./temp";
import { createVia } from "./handlers";
import { buildTestOsRootfs } from "./test-os";

export async function ukiTestBed(prefix: string): Promise<{ work: string; rootfs: string; keys: any; base: Record<string, unknown> }> {
    const work = tempDir(prefix);
    const rootfs = path.join(work, "rootfs");
    await buildTestOsRootfs(rootfs);
    const keys = await createVia(signingKeysHandler, { name: "uki-test", outputDir: path.join(work, "keys") });
    return { work, rootfs, keys, base: { source: { dir: rootfs }, signing: { key: keys.files.db.key, certificate: keys.files.db.pem }, pcrKey: keys.tpmPcrKeyFile } };
}

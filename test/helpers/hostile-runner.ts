// Runner B of the hostile-store tests: a fresh project folder with the keys and nothing built, and the
// inputs each resource gets there (the same as runner A's, with its own folders).
import * as fs from "fs";
import * as path from "path";
import { tempDir } from "./temp";

/** A fresh project folder: the keys (a CI secret) and a project file, nothing built. */
export function freshProjectFolder(shared: string, prefix: string): string {
    const r = tempDir(prefix);
    fs.cpSync(path.join(shared, "keys"), path.join(r, "keys"), { recursive: true });
    fs.writeFileSync(path.join(r, "Pulumi.yaml"), "name: hostile\nruntime: nodejs\n");
    // The output folders exist (empty), as after a first `up`: the output lock creates them anyway.
    for (const d of ["extensions", "uki", "media", "promoted"]) fs.mkdirSync(path.join(r, d));
    return r;
}

/** Each resource's inputs for a runner folder `r`; `shared` is read when called (set in the tests' before). */
export function runnerInputs(ctx: { spec: (extra?: Record<string, unknown>) => unknown; shared: () => string; hashes: Record<string, string> }) {
    const { spec, hashes } = ctx;
    const keyOf = (r: string, f: string) => path.join(r, "keys", f);
    return {
        extInputs: (r: string, extra: Record<string, unknown> = {}) => ({
            name: "tool", outputDir: path.join(r, "extensions"), source: { dir: path.join(ctx.shared(), "src", "tool") },
            signing: { key: keyOf(r, "db.key"), certificate: keyOf(r, "db.pem") }, artifactStore: spec(extra),
        }),
        ukiInputs: (r: string) => ({
            outputDir: path.join(r, "uki"), source: { dir: path.join(ctx.shared(), "rootfs") },
            signing: { key: keyOf(r, "db.key"), certificate: keyOf(r, "db.pem") }, pcrKey: keyOf(r, "tpm2-pcr-private.pem"), artifactStore: spec(),
        }),
        mediaInputs: (r: string, bootFiles: unknown, ext: string) => ({
            name: "kairos", outputDir: path.join(r, "media"), uki: bootFiles, extensions: [ext], secureBootEnroll: "force",
            enrollKeys: { PK: keyOf(r, "PK.auth"), KEK: keyOf(r, "KEK.auth"), db: keyOf(r, "db.auth") }, artifactStore: spec(),
        }),
        promotedInputs: (r: string) => ({
            source: path.join(ctx.shared(), "release", "notes.txt"), expectedSha256: hashes.notes, outputDir: path.join(r, "promoted"), kind: "file", artifactStore: spec(),
        }),
    };
}

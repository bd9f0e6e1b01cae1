// A full disk: builds into a small tmpfs (mounted here; the tests run as root) fail with an error that
// says the disk is full and names the resource and step; the previous artifacts stay as they were and
// nothing partial is left beside them.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { handlerFor } from "../../provider/handlers";
import { SYSTEM_EXTENSION_TOKEN } from "../../provider/system-extension";
import { SIGNING_KEYS_TOKEN } from "../../provider/signing-keys";
import { sha256File } from "../../provider/toolkit/files";
import { digestKeySet } from "../../provider/toolkit/keys/secure-boot-keyset";
import { run } from "../../provider/toolkit/run";
import { makeCertificate } from "../helpers/pki";
import { tempDir } from "../helpers/temp";

const NO_SPACE = /disk (holding \S+ )?is full.*the previous artifacts are untouched/s;

/** A tmpfs of `size` at a fresh folder, unmounted after the suite. */
async function smallDisk(size: string, mounts: string[]): Promise<string> {
    const dir = tempDir("full-disk");
    await run(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
    mounts.push(dir);
    return dir;
}

function fill(dir: string): void {
    // Leave (nearly) nothing: write until the disk refuses.
    const filler = path.join(dir, "filler");
    const fd = fs.openSync(filler, "w");
    try {
        for (;;) fs.writeSync(fd, Buffer.alloc(64 << 10, 1));
    } catch (e) {
        assert.strictEqual((e as NodeJS.ErrnoException).code, "ENOSPC");
    } finally {
        fs.closeSync(fd);
    }
}

describe("a full disk", function () {
    this.timeout(180000);
    const mounts: string[] = [];
    let work: string;
    let signer: { key: string; certificate: string };

    before(async () => {
        work = tempDir("full-disk-src");
        signer = await makeCertificate(work, "full-db");
        for (const [name, bytes] of [["small", 4 << 10], ["big", 6 << 20]] as const) {
            fs.mkdirSync(path.join(work, name, "usr", "lib"), { recursive: true });
            fs.writeFileSync(path.join(work, name, "usr", "lib", "blob"), crypto.randomBytes(bytes)); // random: compression cannot save it
        }
    });
    after(async () => {
        for (const dir of mounts.splice(0)) await run(["umount", dir]);
    });

    it("SystemExtension: an update that no longer fits fails naming the step; the previous image stays, nothing partial is left", async () => {
        const disk = await smallDisk("4m", mounts);
        const h = handlerFor(SYSTEM_EXTENSION_TOKEN);
        const news = (payload: string) => ({ name: "ext", outputDir: path.join(disk, "out"), source: { dir: path.join(work, payload) }, signing: signer, compression: "none" });
        const first = await h.check({}, news("small"));
        const { outs: olds } = await h.create(first.inputs);
        const before = fs.readdirSync(path.join(disk, "out"));

        const next = await h.check(olds, news("big"));
        assert.deepStrictEqual(next.failures ?? [], []);
        await assert.rejects(h.update(olds.path, olds, next.inputs), (e: Error) => {
            assert.match(e.message, /^SystemExtension ext: step "(read source|build and verify image)" failed/);
            assert.match(e.message, NO_SPACE);
            return true;
        });
        assert.strictEqual(await sha256File(olds.path), olds.sha256, "the previous image is intact");
        assert.deepStrictEqual(fs.readdirSync(path.join(disk, "out")), before);
        assert.deepStrictEqual(fs.readdirSync(disk).sort(), ["out"], "no staging or scratch folder is left");
    });

    for (const [what, size, full, step] of [
        ["a disk with room for the lock, not for the key set", "40k", false, /"(generate keys|sign signature lists)"/],
        ["a disk with no room at all", "1m", true, /"take the output lock"/],
    ] as const) {
        it(`SigningKeys on ${what}: fails naming the step, leaves no key file, half-written or whole`, async () => {
            const disk = await smallDisk(size, mounts);
            if (full) fill(disk);
            const h = handlerFor(SIGNING_KEYS_TOKEN);
            const checked = await h.check({}, { name: "full", outputDir: path.join(disk, "keys") });
            assert.deepStrictEqual(checked.failures ?? [], []);
            await assert.rejects(h.create(checked.inputs), (e: Error) => {
                assert.match(e.message, /^SigningKeys full: step "[^"]+" failed/);
                assert.match(e.message, step);
                assert.match(e.message, NO_SPACE);
                return true;
            });
            fs.rmSync(path.join(disk, "filler"), { force: true });
            assert.deepStrictEqual(fs.readdirSync(disk), [], "no key folder and no staging folder with private keys");
            assert.deepStrictEqual(await digestKeySet(path.join(disk, "keys")), {});
        });
    }
});

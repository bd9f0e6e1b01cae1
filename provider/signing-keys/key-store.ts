// SigningKeys with an artifact store: publishing the public files and restoring lost ones.
import * as fs from "fs";
import * as path from "path";
import { Handler } from "../artifact-contract";
import { BuildLog } from "../build-log";
import { stageThenMove } from "../output/staging";
import { digestKeySet, isPrivateKeyFile } from "../toolkit/keys/secure-boot-keyset";
import { ArtifactStoreSpec } from "../store/manifest";
import { ArtifactLayout, publish } from "../store/stored-artifacts";
import type { ArtifactStore } from "../store/artifact-store";
import type { StoreOutput } from "../artifact-contract";
import { SIGNING_KEYS_TOKEN } from "../signing-keys";
import { CheckedInputs, KEY_SET_STAMP, Outputs, importedKeyFiles, signingKeysLayout } from "./key-set";
import { rotationInterrupted } from "./rotation";

/**
 * SigningKeys with an artifact store, through the same hook as every resource (withArtifactStore).
 * A store never makes keys: a create always makes (or imports) them and publishes the public files.
 * A runner whose key folder lacks recorded files takes the public ones from the store and the private
 * ones from the import sources every runner has; a generated key set's private keys must be restored
 * by the user (from a secret store), and the update says so before anything is written.
 */
export const signingKeysStoredLayout: ArtifactLayout = { ...signingKeysLayout, updateWithStore: updateKeySet };

/** The update with a store: restore what this machine lacks, then re-record and publish, or update and publish. */
async function updateKeySet(store: ArtifactStore, h: Handler, id: string, olds: Outputs, news: CheckedInputs & { artifactStore?: ArtifactStoreSpec }) {
    const restored = await restoreKeySet(store, olds);
    if (olds.inputHash === news.inputHash && olds.deleteOnDestroy === news.deleteOnDestroy && !rotationInterrupted(olds)) {
        const outs = { ...olds, ...news, drift: [], fileDigests: await digestKeySet(olds.keyDir) };
        if (restored && (olds as Outputs & { store?: StoreOutput }).store?.location === store.location) return { outs: { ...outs, lastBuild: restored.report() } };
        return { outs: await publish(store, SIGNING_KEYS_TOKEN, news, outs, signingKeysLayout, { log: restored ?? new BuildLog(`SigningKeys ${news.name}`, "published", [`not yet in ${store.location}`]) }) };
    }
    const updated = await h.update(id, { ...olds, drift: [] }, news);
    return { outs: await publish(store, SIGNING_KEYS_TOKEN, news, updated.outs, signingKeysLayout) };
}

/** Puts back recorded files this machine lacks; the log of doing so, if it did. Nothing is written unless all can be. */
async function restoreKeySet(store: ArtifactStore, olds: Outputs): Promise<BuildLog | undefined> {
    const dir = olds.keyDir;
    const now = fs.existsSync(dir) ? await digestKeySet(dir) : {};
    const lost = Object.keys(olds.fileDigests ?? {}).filter((f) => now[f] !== olds.fileDigests[f]);
    if (lost.length === 0) return undefined;
    const sources = olds.import ? importedKeyFiles(olds.import) : {};
    const unavailable = lost.filter((f) => isPrivateKeyFile(f) && !(sources[f] && fs.existsSync(sources[f])));
    if (unavailable.length > 0) {
        throw new Error(
            `SigningKeys ${olds.name}: ${dir} lacks ${unavailable.join(", ")}, and private keys are never put in the artifact store. ` +
                `Restore them into ${dir} from where you keep them (a secret store, a backup), or import the keys from files every runner has (import.dir). Nothing was changed.`,
        );
    }
    const log = new BuildLog(`SigningKeys ${olds.name}`, "fetched", [`${lost.join(", ")} not on this machine: public files from ${store.location}${lost.some(isPrivateKeyFile) ? ", private keys from the import sources" : ""}`]);
    await log.step("fetch certificates and signature lists", () => stageThenMove(dir, async (staging) => {
        for (const f of lost) {
            const to = path.join(staging, f);
            if (isPrivateKeyFile(f)) fs.copyFileSync(sources[f], to);
            else await store.getBlob(olds.fileDigests[f], await recordedBlobSize(store, olds.fileDigests[f]), to);
            fs.chmodSync(to, isPrivateKeyFile(f) ? 0o600 : 0o644);
        }
        const got = await digestKeySet(staging);
        const wrong = lost.filter((f) => got[f] !== olds.fileDigests[f]);
        if (wrong.length > 0) throw new Error(`${wrong.join(", ")} from the import sources are not the recorded keys (the import files changed since the keys were imported); nothing was changed`);
        if (!fs.existsSync(path.join(dir, KEY_SET_STAMP))) {
            fs.writeFileSync(path.join(staging, KEY_SET_STAMP), `${JSON.stringify({ keyMaterialHash: olds.keyMaterialHash, rotation: olds.rotation })}\n`);
        }
    }));
    return log;
}

/**
 * The size of a public file's object. The state records digests, not sizes; the object's length is
 * only a cap for the download, whose bytes must still hash to the recorded digest.
 */
async function recordedBlobSize(store: ArtifactStore, sha256: string): Promise<number> {
    const size = await store.blobSizeAtMost(sha256, 16 << 20, "a certificate, .esl or .auth file");
    if (size === undefined) throw new Error(`${store.blobUri(sha256)} is not in ${store.location}; nothing was changed`);
    return size;
}

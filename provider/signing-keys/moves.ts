// A SigningKeys key folder moved to a new outputDir (artifact-move.ts).
import * as fs from "fs";
import * as path from "path";
import { digestKeySet, isPrivateKeyFile } from "../toolkit/keys/secure-boot-keyset";
import { isPkcs11Uri } from "../toolkit/keys/pkcs11";
import { MoveSpec, RecordedFile } from "../artifact-move";
import { KEY_MATERIAL_FILES, Outputs, keyFilesIn, signingKeysLayout } from "./key-set";

/**
 * Keys moved with their folder (artifact-move.ts): the new outputDir must hold the recorded key material,
 * private keys known by their public halves ("pub:<sha256>") and the certificates by their sha256,
 * whatever the stamp there says; a signature list or .auth file that differs is signed again in place.
 * Anything else there is someone else's keys, refused.
 */
export const signingKeysMoves: MoveSpec = {
    label: signingKeysLayout.label,
    placeFields: [],
    root: signingKeysLayout.root,
    sameArtifact: (olds, news) => (typeof news.keyMaterialHash === "string" ? olds.keyMaterialHash === news.keyMaterialHash : undefined),
    files: (olds, _news, at) => !olds.keyDir || !olds.files ? [] : Object.entries(olds.fileDigests ?? {}).map(([name, digest]) => ({ from: path.join(olds.keyDir, name), to: at(path.join(olds.keyDir, name)), sha256: digest as string })),
    async digestsAt(files) {
        const now = files.length > 0 ? await digestKeySet(path.dirname(files[0].to)) : {};
        return files.map((f) => now[path.basename(f.to)]);
    },
    repairable: (f) => !KEY_MATERIAL_FILES.includes(path.basename(f.to)),
    // A folder copied or unpacked elsewhere may have lost its modes; the keys SigningKeys keeps are 0600.
    takeOver(files) {
        const opened = files.filter((f) => isPrivateKeyFile(path.basename(f.to)) && fs.existsSync(f.to) && (fs.statSync(f.to).mode & 0o077) !== 0);
        for (const f of opened) fs.chmodSync(f.to, 0o600);
        return opened.length > 0 ? [`${opened.map((f) => path.basename(f.to)).join(", ")} readable by others at ${path.dirname(opened[0].to)}: made 0600`] : [];
    },
    moved: (olds, news, at) => {
        const place = (p: string) => (isPkcs11Uri(p) ? p : at(p));
        return {
            keyDir: news.outputDir,
            files: Object.fromEntries(Object.entries(olds.files as Outputs["files"]).map(([role, f]) => [role, Object.fromEntries(Object.entries(f).map(([k, p]) => [k, place(p)]))])),
            tpmPcrKeyFile: place(olds.tpmPcrKeyFile),
        };
    },
    refusal(olds, news, differing: RecordedFile[]) {
        if (olds.keyMaterialHash !== news.keyMaterialHash) return undefined; // a rotation into a new folder: new keys, made there
        const present = keyFilesIn(news.outputDir);
        const why = differing.map((f) => `${path.basename(f.to)} ${fs.existsSync(f.to) ? "differs" : "is missing"}`).join(", ");
        return new Error(
            `SigningKeys ${news.name}: outputDir ${news.outputDir} ${present.length > 0 ? `holds ${present.join(", ")}, which are not the keys this stack recorded in ${olds.keyDir}` : `does not hold the keys this stack recorded in ${olds.keyDir}`} (${why}). ` +
                `SigningKeys never overwrites or regenerates keys: to take the keys along, move the whole key folder to ${news.outputDir}; ` +
                `to use the keys that are there, import them (import: { dir: "${news.outputDir}" }) into another, empty outputDir; otherwise choose an empty outputDir and raise \`rotation\`. Nothing was changed.`,
        );
    },
};

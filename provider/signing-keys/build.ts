// Making (or importing) a complete key set in staging, and the outputs that describe it.
import * as fs from "fs";
import * as path from "path";
import { BuildLog } from "../build-log";
import { stageThenMove } from "../output/staging";
import {
    KEY_ROLES, KeySource, TPM_PCR_KEY_FILE, createKeyMaterial, deriveSignatureFiles, digestKeySet, keyFileNames,
} from "../toolkit/keys/secure-boot-keyset";
import { CheckedInputs, KEY_SET_STAMP, Outputs, keySource, withKeyRefs } from "./key-set";

/** Makes (or imports) a complete key set in staging; `beforeMove` runs just before it is moved in. */
export async function buildKeySet(inputs: CheckedInputs, log: BuildLog, beforeMove?: () => void): Promise<Outputs> {
    const source = keySource(inputs);
    const derived = await stageThenMove(inputs.outputDir, async (staging) => {
        await log.step(source.kind === "import" ? "import keys" : "generate keys", () => createKeyMaterial(staging, source));
        fs.writeFileSync(path.join(staging, KEY_SET_STAMP), `${JSON.stringify({ keyMaterialHash: inputs.keyMaterialHash, rotation: inputs.rotation })}\n`);
        const summary = await log.step("sign signature lists", () => deriveSignatureFiles(staging, staging, withKeyRefs(inputs)));
        beforeMove?.();
        return summary;
    });
    return outputsFor(inputs, keySourceOutput(source), derived, log);
}

export function keySourceOutput(source: KeySource): Outputs["keySource"] {
    return source.kind === "import" ? "imported" : source.kind === "token" ? "generated in token" : "generated";
}

export async function outputsFor(inputs: CheckedInputs, keySource: Outputs["keySource"], d: Awaited<ReturnType<typeof deriveSignatureFiles>>, log: BuildLog): Promise<Outputs> {
    const dir = inputs.outputDir;
    const files = Object.fromEntries(
        KEY_ROLES.map((r) => [r, Object.fromEntries(Object.entries(keyFileNames(r)).map(([k, f]) => [k, path.join(dir, f)]))]),
    ) as Outputs["files"];
    const certificates = Object.fromEntries(
        KEY_ROLES.map((r) => {
            const c = d.certificates[r];
            return [r, { pem: c.pem, sha256Fingerprint: c.sha256Fingerprint, subject: c.subject, notBefore: c.notBefore, notAfter: c.notAfter }];
        }),
    ) as Outputs["certificates"];
    // Keys in a token are named by their URIs where a key file's path would be: consumers sign with either.
    const refs = withKeyRefs(inputs).keyRefs;
    for (const r of KEY_ROLES) if (refs[r]) files[r].key = refs[r]!;
    return {
        ...inputs,
        keyDir: dir,
        keySource,
        files,
        tpmPcrKeyFile: refs.tpm ?? path.join(dir, TPM_PCR_KEY_FILE),
        tpmPcrPublicKeyPem: d.tpmPcrPublicKeyPem,
        certificates,
        signatureLists: d.signatureLists,
        ownerGuid: d.ownerGuid,
        authTimestamp: d.authTimestamp,
        fileDigests: await digestKeySet(dir),
        adoptedExtraLists: {},
        drift: [],
        lastBuild: log.report(),
    };
}

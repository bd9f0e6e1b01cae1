// SigningKeys' check: the key-material and input hashes, and the rules schema.json cannot express.
import * as fs from "fs";
import { samePath } from "../check-kit";
import { InputProblem } from "../validation/schema-validator";
import { canonicalJson, sha256File, sha256Hex } from "../toolkit/files";
import { KEY_ROLES, checkImport, digestKeySet, isPrivateKeyFile, keyFileNames } from "../toolkit/keys/secure-boot-keyset";
import { PIN_ENV, isPkcs11Uri, parsePkcs11Uri } from "../toolkit/keys/pkcs11";
import { publicKeyPem } from "../toolkit/keys/openssl";
import { BUILDER_VERSION, CheckedInputs, KEY_IDENTITY_FIELDS, changedIdentity, extraListDigests, importDigests, importPairs, importUnchanged, importedKeyFiles, keyFilesIn, madeByAnInterruptedCreate, stampedWith } from "./key-set";
import { rotationProblems } from "./rotation";

/** Key-material and input hashes; a key-material change without a rotation is refused here, in preview. */
export async function deriveHashes(inputs: CheckedInputs, olds: Partial<CheckedInputs>): Promise<InputProblem[]> {
    // Same identity (paths by the place they name), same rotation: the same keys, whatever hash formula
    // the version that made them used, and without re-reading import sources that may be gone by now.
    const sameKeys = olds.keyMaterialHash && changedIdentity(olds, inputs).length === 0 && olds.rotation === inputs.rotation;
    const moved = await maybeMovedHere(olds, inputs);
    inputs.keyMaterialHash = sameKeys || moved
        ? olds.keyMaterialHash!
        : sha256Hex(canonicalJson({
              builder: BUILDER_VERSION,
              rotation: inputs.rotation,
              identity: Object.fromEntries(KEY_IDENTITY_FIELDS.map((f) => [f, inputs[f] ?? null])),
              importedFiles: await importDigests(inputs),
          }));
    inputs.hashParts = {
        keys: inputs.keyMaterialHash,
        signatureLists: sha256Hex(canonicalJson(await extraListDigests(inputs))),
        authentication: sha256Hex(canonicalJson({ ownerGuid: inputs.ownerGuid ?? null, authTimestamp: inputs.authTimestamp ?? null })),
        builder: BUILDER_VERSION,
    };
    inputs.inputHash = sha256Hex(canonicalJson(inputs.hashParts));
    // Known only with the key-material hash: a folder holding the keys of this very create, made by a
    // run killed before the engine recorded it, is resumed rather than refused.
    if (!moved && !samePath(olds.outputDir, inputs.outputDir) && keyFilesIn(inputs.outputDir).length > 0 && !madeByAnInterruptedCreate(inputs)) {
        return [{ property: "outputDir", reason: `${inputs.outputDir} already holds ${keyFilesIn(inputs.outputDir).join(", ")}; SigningKeys never overwrites keys (adopt them with import)` }];
    }
    if (olds.keyMaterialHash && olds.keyMaterialHash !== inputs.keyMaterialHash) return rotationProblems(olds, inputs);
    return [];
}

/**
 * Only outputDir changed, and the new folder holds key files that may be the recorded set moved there:
 * they keep the recorded key-material hash, and the diff, which sees the state's digests, takes them
 * over or refuses them (signingKeysMoves). A stamp naming another key set is refused here already.
 */
async function maybeMovedHere(olds: Partial<CheckedInputs>, inputs: CheckedInputs): Promise<boolean> {
    if (!olds.keyMaterialHash || olds.rotation !== inputs.rotation) return false;
    const changed = changedIdentity(olds, inputs).filter((f) => f !== "outputDir");
    if (changedIdentity(olds, inputs).length === changed.length || keyFilesIn(inputs.outputDir).length === 0) return false;
    // Import sources that moved along (absolute paths in a moved checkout) must name the keys found in the folder.
    if (changed.length > 0 && (changed.join() !== "import" || !olds.import || !(await importNamesKeysIn(inputs)))) return false;
    const stamp = stampedWith(inputs.outputDir);
    return stamp === undefined || stamp.keyMaterialHash === olds.keyMaterialHash;
}

/** The import sources hold the key material outputDir holds (private keys compared by their public halves). */
async function importNamesKeysIn(inputs: CheckedInputs): Promise<boolean> {
    const sources = { ...importedKeyFiles(inputs.import!), ...Object.fromEntries(KEY_ROLES.map((r) => [keyFileNames(r).pem, importPairs(inputs.import!)[r].certificate])) };
    if (Object.values(sources).some((f) => isPkcs11Uri(f) || !fs.existsSync(f))) return false;
    const inFolder = await digestKeySet(inputs.outputDir);
    for (const [name, source] of Object.entries(sources)) {
        const digest = isPrivateKeyFile(name) ? `pub:${sha256Hex(publicKeyPem(source))}` : await sha256File(source);
        if (inFolder[name] !== digest) return false;
    }
    return true;
}

/** Rules schema.json cannot express, reported together with the schema problems. */
export function crossFieldProblems(inputs: CheckedInputs, olds: Partial<CheckedInputs>): InputProblem[] {
    const problems: InputProblem[] = [];
    if (inputs.token) {
        const u = parsePkcs11Uri(inputs.token);
        if (inputs.import) problems.push({ property: "token", reason: "cannot be combined with import: token makes new keys in the token; import takes existing ones (their URIs go in import)" });
        else if (!u.token) problems.push({ property: "token", reason: `${inputs.token} names no token; give e.g. "pkcs11:token=kairos-prod"` });
        else if ("pin-value" in u.attributes || "pin-source" in u.attributes) problems.push({ property: "token", reason: `carries a PIN, which would be kept in the state; give the PIN in ${PIN_ENV}` });
        else if (!olds.keyMaterialHash && !process.env[PIN_ENV]) problems.push({ property: "token", reason: `generating keys in token "${u.token}" needs its user PIN: set ${PIN_ENV}` });
    }
    // Imported keys were copied into outputDir when the resource was made; the sources may be gone since.
    const imp = importUnchanged(olds, inputs) ? undefined : inputs.import;
    if (imp) {
        const incomplete = KEY_ROLES.filter((r) => !imp[r] && !imp.dir);
        if (imp.dir && !fs.existsSync(imp.dir)) {
            problems.push({ property: "import.dir", reason: `${imp.dir} does not exist` });
        } else if (incomplete.length > 0) {
            problems.push({ property: "import", reason: `names no files for ${incomplete.join(", ")}; give import.dir or a key/certificate pair for each` });
        } else {
            problems.push(
                ...checkImport({ kind: "import", pairs: importPairs(imp), tpmPcrKey: imp.tpmPcrKey }).map((reason) => ({ property: "import", reason })),
            );
        }
        if (imp.dir && samePath(imp.dir, inputs.outputDir)) {
            problems.push({ property: "import.dir", reason: "must differ from outputDir: imported keys are copied into outputDir, and outputDir's derived files are rewritten" });
        }
    }
    for (const [role, files] of Object.entries(inputs.extraSignatureLists ?? {})) {
        (files ?? []).forEach((f, i) => {
            if (!fs.existsSync(f)) problems.push({ property: `extraSignatureLists.${role}[${i}]`, reason: `${f} does not exist` });
        });
    }
    return problems;
}

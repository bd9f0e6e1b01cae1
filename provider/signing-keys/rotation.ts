// Rotation and recovery of a SigningKeys key set: what a rotation must say, retiring the current set,
// and rolling back a rotation that was interrupted.
import * as fs from "fs";
import * as path from "path";
import { logLine } from "../build-log";
import { InputProblem } from "../validation/schema-validator";
import { faultPoint } from "../fault-points";
import { allKeySetFiles, digestKeySet } from "../toolkit/keys/secure-boot-keyset";
import { CheckedInputs, Outputs, changedIdentity, keyFilesIn } from "./key-set";

export function rotationProblems(old: Partial<CheckedInputs>, next: CheckedInputs): InputProblem[] {
    const oldRotation = old.rotation ?? 0;
    if (next.rotation > oldRotation) return [];
    if (next.rotation < oldRotation) return [{ property: "rotation", reason: `cannot go down (from ${oldRotation} to ${next.rotation}); rotated-out keys stay retired` }];
    const changed = changedIdentity(old, next);
    const what = changed.length > 0
        ? changed.map((f) => `${f} (${JSON.stringify(old[f] ?? null)} -> ${JSON.stringify(next[f] ?? null)})`).join(", ")
        : "the imported key files' contents";
    return [{
        property: changed[0] ?? "import",
        reason:
            `changing ${what} would replace the Secure Boot keys, which SigningKeys never does silently. ` +
            `To rotate in place, also raise \`rotation\` to ${oldRotation + 1} (the current files move to retired/rotation-${oldRotation}/); ` +
            `or create a new SigningKeys resource with another outputDir. ` +
            (changed.length === 1 && changed[0] === "outputDir" ? `To keep these keys in the new folder, move the key folder there (${old.outputDir} -> ${next.outputDir}): keys found there as recorded are taken over. ` : "") +
            `Nothing was changed.`,
    }];
}

/** Moves the current key set to retired/rotation-N/, never over files already retired there. */
export function retireKeySet(dir: string, rotation: number): void {
    const retired = path.join(dir, "retired", `rotation-${rotation}`);
    const present = allKeySetFiles().filter((name) => fs.existsSync(path.join(dir, name)));
    const clash = present.filter((name) => fs.existsSync(path.join(retired, name)));
    if (clash.length > 0) {
        throw new Error(`cannot retire the keys of rotation ${rotation}: ${retired} already holds ${clash.join(", ")}; move that folder away first (nothing was changed)`);
    }
    fs.mkdirSync(retired, { recursive: true, mode: 0o700 });
    for (const name of present) {
        fs.renameSync(path.join(dir, name), path.join(retired, name));
        faultPoint(`retired ${name}`);
    }
}

/**
 * An in-place rotation retires the recorded set into retired/rotation-<n> file by file, then moves the
 * new set in file by file. Killed in between, the folder mixes the two. The state still records rotation
 * n, and the retired folder holding exactly its files is the proof: they are moved back and the
 * unrecorded new files removed, so the folder holds the recorded set complete again. The rotation runs
 * afresh on the next up.
 */
export async function rollBackInterruptedRotation(props: Outputs): Promise<void> {
    const retired = retiredFolder(props);
    const parked = parkedFiles(props);
    if (parked.length === 0) return;
    const parkedDigests = await digestKeySet(retired);
    if (parked.some(([name, digest]) => parkedDigests[name] !== digest)) return; // not the recorded set: leave it to the user
    for (const [name] of parked) fs.renameSync(path.join(retired, name), path.join(props.keyDir, name));
    for (const name of keyFilesIn(props.keyDir)) if (!props.fileDigests[name]) fs.rmSync(path.join(props.keyDir, name));
    for (const dir of [retired, path.dirname(retired)]) if (fs.existsSync(dir) && fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
    logLine(`SigningKeys ${props.name}: rolled back a rotation that was interrupted: ${props.keyDir} holds the recorded key set (rotation ${props.rotation}) again`);
}

function retiredFolder(props: Outputs): string {
    return path.join(props.keyDir, "retired", `rotation-${props.rotation}`);
}

/** Recorded files found in the folder the current rotation would be retired into. */
function parkedFiles(props: Outputs): [string, string][] {
    return Object.entries(props.fileDigests ?? {}).filter(([name]) => fs.existsSync(path.join(retiredFolder(props), name)));
}

export function rotationInterrupted(props: Outputs): boolean {
    return parkedFiles(props).length > 0;
}

/** SigningKeys never writes over key files it did not make. */
export function refuseFolderWithKeys(dir: string): void {
    const existing = keyFilesIn(dir);
    if (existing.length > 0) {
        throw new Error(
            `the key folder ${dir} already holds ${existing.join(", ")}; SigningKeys never overwrites keys. ` +
                `To adopt them, set import: { dir: "<that folder>" } with another, empty outputDir; otherwise choose an empty outputDir.`,
        );
    }
}

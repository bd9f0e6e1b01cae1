// KairosUkiImage's checks beyond schema.json.
import * as fs from "fs";
import * as path from "path";
import { privateKeyProblems, samePath, signingPairProblems, sourceProblems } from "../check-kit";
import { InputProblem } from "../validation/schema-validator";
import { isPkcs11Uri } from "../toolkit/keys/pkcs11";
import { isInitrdWindowLog, MAX_KERNEL_WINDOW_LOG } from "../toolkit/boot/initrd";
import { CheckedInputs, OWNER_MARKER } from "./uki-image";

export function crossFieldProblems(i: CheckedInputs, olds: Partial<CheckedInputs>): InputProblem[] {
    const problems: InputProblem[] = sourceProblems(i.source);
    if (i.source.dockerfile) {
        problems.push({ property: "source.dockerfile", reason: "is a SystemExtension source; build the OS image first (its OCI layout or registry reference is the source here)" });
    }
    if (!samePath(olds.outputDir, i.outputDir) && fs.existsSync(i.outputDir) && fs.readdirSync(i.outputDir).length > 0 && !fs.existsSync(path.join(i.outputDir, OWNER_MARKER))) {
        problems.push({ property: "outputDir", reason: `${i.outputDir} is not empty and was not made by KairosUkiImage; it rebuilds its folder whole, so give it an empty folder of its own` });
    }
    if (i.extendCmdline && (i.extraCmdlines?.length ?? 0) > 0) {
        problems.push({ property: "extendCmdline", reason: "cannot be combined with extraCmdlines (as in auroraboot): extendCmdline changes the one norole.efi, extraCmdlines add more UKIs" });
    }
    if (!isInitrdWindowLog(i.initrdWindowLog)) problems.push({ property: "initrdWindowLog", reason: `${i.initrdWindowLog} is not a zstd window: 0 (none) or 10-${MAX_KERNEL_WINDOW_LOG}` });
    problems.push(...signingPairProblems("signing", i.signing));
    const missing = [i.pcrKey, i.splash].filter((f): f is string => !!f && !isPkcs11Uri(f) && !fs.existsSync(f));
    if (missing.length > 0) problems.push({ property: i.splash && missing.includes(i.splash) ? "splash" : "pcrKey", reason: `${missing.join(", ")} not found` });
    else problems.push(...privateKeyProblems("pcrKey", i.pcrKey));
    // A line break would end the loader entry's line and start another one of the user's making.
    for (const [property, value] of [["extendCmdline", i.extendCmdline], ["bootTitle", i.bootTitle], ...(i.extraCmdlines ?? []).map((c, n) => [`extraCmdlines[${n}]`, c])]) {
        if (typeof value === "string" && /[\0\n\r]/.test(value)) problems.push({ property: property!, reason: "contains a NUL or a line break; a command line and a title are one line" });
    }
    return problems;
}

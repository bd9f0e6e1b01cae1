// Every fuzz target, in the order reports list them.
import { FuzzTarget } from "../engine/target";
import { authenticodeTarget } from "./authenticode";
import { efiAuthTarget } from "./efi-auth";
import { erofsTarget } from "./erofs";
import { eslTarget } from "./esl";
import { dockerSaveTarget, ociArchiveTarget } from "./image";
import { layerExtractTarget } from "./layer-extract";
import { paxTarget } from "./pax";
import { peTarget } from "./pe";
import { tarTarget } from "./tar";

export const TARGETS: readonly FuzzTarget[] = [
    tarTarget,
    paxTarget,
    ociArchiveTarget,
    dockerSaveTarget,
    layerExtractTarget,
    eslTarget,
    peTarget,
    authenticodeTarget,
    efiAuthTarget,
    erofsTarget,
];

export function targetByName(name: string): FuzzTarget {
    const target = TARGETS.find((t) => t.name === name);
    if (!target) throw new Error(`no fuzz target ${JSON.stringify(name)}; there are: ${TARGETS.map((t) => t.name).join(", ")}`);
    return target;
}

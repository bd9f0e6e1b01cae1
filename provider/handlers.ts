// The provider side of the package, by resource token: what a stack's serialised provider loads
// (`pulumi-kairos/handlers`) in the Pulumi project's installed pulumi-kairos. State therefore outlives
// the checkout, the machine and the package version that wrote it, and this module decides what an
// installed version does with state another version wrote.
//
// State versions (the `stateVersion` output of every resource):
//   1  pulumi-kairos 0.1.x: the serialised provider names a module file by absolute path, and every
//      input path was made absolute. No `stateVersion` output.
//   2  this contract: the provider names the package and the token; paths are kept as written, and a
//      relative one resolves against the Pulumi project folder.
// An older version is served as it stands (refresh and destroy work), and the next `up` updates each
// such resource in place: its build runs again, which gives byte-identical artifacts (keys are never
// regenerated: SigningKeys only re-checks and re-records them), and the state is rewritten at this
// version. A newer version than this package knows is refused: install that pulumi-kairos or newer.
import type { ArtifactRecord, Handler } from "./artifact-contract";
import { withOutputLock } from "./output/output-lock";
import * as fs from "fs";
import * as path from "path";
import { explainFullDisk, logLine } from "./build-log";
import { SIGNING_KEYS_TOKEN, signingKeysHandler } from "./signing-keys";
import { signingKeysMoves } from "./signing-keys/moves";
import { signingKeysStoredLayout } from "./signing-keys/key-store";
import { SYSTEM_EXTENSION_TOKEN, systemExtensionHandler, systemExtensionLayout, systemExtensionMoves } from "./system-extension";
import { KAIROS_UKI_IMAGE_TOKEN, kairosUkiImageHandler } from "./kairos-uki-image";
import { kairosUkiImageLayout } from "./kairos-uki-image/stored";
import { kairosUkiImageMoves } from "./kairos-uki-image/moves";
import { BOOT_MEDIA_TOKEN, bootMediaHandler } from "./boot-media";
import { bootMediaLayout } from "./boot-media/stored";
import { bootMediaMoves } from "./boot-media/moves";
import { PROMOTED_ARTIFACT_TOKEN, promotedArtifactHandler, promotedArtifactLayout, promotedArtifactMoves } from "./promoted-artifact";
import { SYSEXT_RELEASE_TOKEN, sysextReleaseHandler } from "./sysext-release";
import { EXTENSION_CATALOG_TOKEN, extensionCatalogHandler } from "./extension-catalog";
import { OS_RELEASE_TOKEN, osReleaseHandler } from "./os-release";
import { PROMOTED_RELEASE_TOKEN, promotedReleaseHandler } from "./promoted-release";
import { withArtifactStore } from "./store/stored-artifacts";
import { withMoves } from "./artifact-move";

export const STATE_VERSION = 2;
/** What state without a `stateVersion` output is: written by pulumi-kairos 0.1.x. */
const UNVERSIONED_STATE = 1;

// Each resource with the artifact store of its `artifactStore` input (none: the handler as it is), and
// taking its artifact over when it finds it already at a new outputDir (artifact-move.ts).
const HANDLERS: Record<string, Handler> = {
    [SIGNING_KEYS_TOKEN]: withMoves(withArtifactStore(SIGNING_KEYS_TOKEN, signingKeysHandler, signingKeysStoredLayout), signingKeysMoves),
    [SYSTEM_EXTENSION_TOKEN]: withMoves(withArtifactStore(SYSTEM_EXTENSION_TOKEN, systemExtensionHandler, systemExtensionLayout), systemExtensionMoves),
    [KAIROS_UKI_IMAGE_TOKEN]: withMoves(withArtifactStore(KAIROS_UKI_IMAGE_TOKEN, kairosUkiImageHandler, kairosUkiImageLayout), kairosUkiImageMoves),
    [BOOT_MEDIA_TOKEN]: withMoves(withArtifactStore(BOOT_MEDIA_TOKEN, bootMediaHandler, bootMediaLayout), bootMediaMoves),
    [PROMOTED_ARTIFACT_TOKEN]: withMoves(withArtifactStore(PROMOTED_ARTIFACT_TOKEN, promotedArtifactHandler, promotedArtifactLayout), promotedArtifactMoves),
    // Releases live in a registry, which is their store: no artifact store, and nothing local to move.
    [SYSEXT_RELEASE_TOKEN]: sysextReleaseHandler,
    [EXTENSION_CATALOG_TOKEN]: extensionCatalogHandler,
    [OS_RELEASE_TOKEN]: osReleaseHandler,
    [PROMOTED_RELEASE_TOKEN]: promotedReleaseHandler,
};

export const RESOURCE_TOKENS = Object.keys(HANDLERS);

/** The handler for `token`, wrapped with the state-version rules above. */
export function handlerFor(token: string): Handler {
    const handler = HANDLERS[token];
    if (!handler) throw new Error(`pulumi-kairos has no resource type ${token}; it knows ${RESOURCE_TOKENS.join(", ")}`);
    return versionedHandler(token, handler);
}

export function stateVersionOf(props: Record<string, any>): number {
    return typeof props?.stateVersion === "number" ? props.stateVersion : UNVERSIONED_STATE;
}

/** `h` under the state-version rules: refuse newer state, update older state, stamp what it writes. */
export function versionedHandler(token: string, h: Handler): Handler {
    const refuseNewer = (props: Record<string, any>) => {
        const v = stateVersionOf(props);
        if (v > STATE_VERSION) {
            throw new Error(
                `${token}: this state was written by a newer pulumi-kairos (state version ${v}); the installed one knows up to ${STATE_VERSION}. ` +
                    `Install the pulumi-kairos version the stack was last updated with, or a newer one.`,
            );
        }
    };
    const stamp = <T extends { outs?: any }>(result: T): T => ({ ...result, outs: { ...result.outs, stateVersion: STATE_VERSION satisfies ArtifactRecord["stateVersion"] } });
    // One writer per artifact across processes (two stacks on one output folder): see output/output-lock.ts.
    const locked = <T>(props: Record<string, any>[], fn: () => Promise<T>): Promise<T> => {
        // The old place of an update is guarded only when the update may write there: not for a move,
        // which leaves it as it is (it may be read-only, or another checkout's), nor when its folder is
        // gone (taking a lock there would make its folders again).
        const [olds, news] = props;
        const keepsOld = props.length === 2 && h.leavesOldPlace?.(olds, news) === true;
        const targets = props.flatMap((p, i) => (i === props.length - 1 ? h.artifactPaths?.(p) ?? [] : keepsOld ? [] : (h.artifactPaths?.(p) ?? []).filter((t) => fs.existsSync(path.dirname(path.resolve(t))))));
        const owner = `${token.split(":").pop()} ${props[props.length - 1]?.name ?? ""}`.trim();
        return withOutputLock(targets, owner, fn, (m) => logLine(`${owner}: ${m}`)).catch((e) => {
            throw explainFullDisk(e, targets.map((t) => path.dirname(path.resolve(t))));
        });
    };
    return {
        check: h.check,
        async diff(id, olds, news) {
            refuseNewer(olds);
            const result = await h.diff(id, olds, news);
            // Only an update rewrites the serialised provider kept with the outputs, so old state must update.
            return stateVersionOf(olds) < STATE_VERSION ? { ...result, changes: true } : result;
        },
        create: (inputs) => locked([inputs], async () => stamp(await h.create(inputs))),
        // A refresh keeps the version it found: the outputs still carry the provider that wrote them.
        // An import (`pulumi import`: only the id, no props yet) adopts what is there, in this version's form.
        async read(id, props) {
            if (Object.keys(props ?? {}).length === 0) {
                if (!h.adopt) throw new Error(`${token} cannot be imported: only kairos:index:SigningKeys adopts what already exists (a key folder)`);
                const adopted = await h.adopt(id);
                return { ...adopted, props: { ...adopted.props, stateVersion: STATE_VERSION } };
            }
            refuseNewer(props);
            return h.read(id, props);
        },
        async update(id, olds, news) {
            refuseNewer(olds);
            return locked([olds, news], async () => stamp(await h.update(id, olds, news)));
        },
        async delete(id, props) {
            refuseNewer(props);
            return locked([props], () => h.delete(id, props));
        },
    };
}

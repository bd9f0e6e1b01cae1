// The extension-release file systemd matches an extension against: generated when the source has
// none, validated when it brings its own (name and architecture must agree with the image).
import * as fs from "fs";
import * as path from "path";
import { DdiArchitecture, ExtensionKind, declaredArchitecture, extensionReleaseDir, extensionReleasePath } from "./ddi";
import { resolveInTree } from "../tree-chase";

export interface ReleaseFields {
    /** ID= of the OS the extension is for; `_any` matches every OS. */
    id?: string;
    versionId?: string;
    /** SYSEXT_LEVEL= (sysext) or CONFEXT_LEVEL= (confext). */
    level?: string;
    /** EXTENSION_RELOAD_MANAGER=1: systemd reloads units after merging (auroraboot --service-reload). */
    reloadManager?: boolean;
    /** SYSEXT_SCOPE= / CONFEXT_SCOPE=: "system", "initrd", "portable" (systemd's default: system portable). */
    scope?: ("system" | "initrd" | "portable")[];
}

export class ExtensionReleaseError extends Error {
    readonly code = "EXTENSION_RELEASE";
}

export function renderExtensionRelease(kind: ExtensionKind, arch: DdiArchitecture, f: ReleaseFields): string {
    const lines = [`ID=${f.id ?? "_any"}`];
    if (f.versionId) lines.push(`VERSION_ID=${f.versionId}`);
    if (f.level) lines.push(`${kind === "confext" ? "CONFEXT_LEVEL" : "SYSEXT_LEVEL"}=${f.level}`);
    lines.push(`ARCHITECTURE=${arch}`);
    if (f.scope && f.scope.length > 0) lines.push(`${kind === "confext" ? "CONFEXT_SCOPE" : "SYSEXT_SCOPE"}=${f.scope.join(" ")}`);
    if (f.reloadManager) lines.push("EXTENSION_RELOAD_MANAGER=1");
    return lines.join("\n") + "\n";
}

/**
 * extension-release.* files in `tree` that name another extension than `name` (systemd would refuse the
 * image). Links on the way resolve inside the tree, as on the booted system: an image's absolute link
 * at usr/lib/extension-release.d names the image's folder, never the host's.
 */
export function foreignReleaseFiles(tree: string, name: string, kind: ExtensionKind): string[] {
    const releaseDir = extensionReleaseDir(kind);
    const dir = resolveInTree(tree, releaseDir);
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return [];
    const own = path.basename(extensionReleasePath(kind, name));
    return fs.readdirSync(dir).filter((f) => f.startsWith("extension-release.") && f !== own).map((f) => `${releaseDir}/${f}`);
}

/**
 * Makes sure `tree` carries the release file for `name`: writes one from `fields` when the source
 * brought none, otherwise checks the one it brought. Returns the file's text. Links in the folders on
 * the way resolve inside the tree (resolveInTree), so nothing outside it is listed, read or written.
 */
export function ensureExtensionRelease(tree: string, name: string, kind: ExtensionKind, arch: DdiArchitecture, fields: ReleaseFields): string {
    const relative = extensionReleasePath(kind, name);
    const dir = resolveInTree(tree, extensionReleaseDir(kind));
    const file = path.join(dir, path.basename(relative));
    const others = foreignReleaseFiles(tree, name, kind);
    const present = fs.lstatSync(file, { throwIfNoEntry: false });
    if (others.length === 0 && !present) {
        const dirNow = fs.statSync(dir, { throwIfNoEntry: false });
        if (dirNow && !dirNow.isDirectory()) throw new ExtensionReleaseError(`${extensionReleaseDir(kind)} in the source is not a directory`);
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 }); // the missing components only: every existing one is a real folder inside the tree
        const text = renderExtensionRelease(kind, arch, fields);
        fs.writeFileSync(file, text, { mode: 0o644, flag: "wx" }); // "wx": never through a link planted meanwhile
        return text;
    }
    const problems: string[] = [];
    if (others.length > 0) problems.push(releaseNameMismatch(others, name, relative));
    if (present) {
        if (present.isSymbolicLink() || !present.isFile()) problems.push(`${relative} must be a regular file`);
        else {
            const text = fs.readFileSync(file, "utf8");
            const declared = declaredArchitecture(text);
            if (declared !== undefined && declared !== "_any" && declared !== arch) {
                problems.push(`${relative} says ARCHITECTURE=${declared}, but the extension is built for ${arch}`);
            }
            if (!/^ID=/m.test(text)) problems.push(`${relative} has no ID= line (use ID=_any to match every OS)`);
            if (problems.length === 0) return text;
        }
    }
    throw new ExtensionReleaseError(problems.join("; "));
}

export function releaseNameMismatch(others: string[], name: string, relative: string): string {
    return `the source has ${others.join(", ")}, but this extension is named '${name}' (systemd needs ${relative})`;
}

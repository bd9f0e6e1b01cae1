// Lexical path rules for names that come from images: split a name into components that cannot leave
// the tree, and resolve a link target as the image would see it. Nothing here touches the disk; the
// on-disk walk (tree-chase.ts) applies the same component rule.

/** Why a name was refused, worded to follow "entry NAME: ". */
export class UnsafePathError extends Error {
    readonly code = "UNSAFE_PATH";
    constructor(readonly reason: string) {
        super(reason);
    }
}

/**
 * Components of a relative archive name. "." components, repeated and trailing slashes are
 * dropped; an empty result is the tree root. Absolute names and ".." components are refused rather
 * than cleaned, because a well-formed layer never contains them.
 */
export function splitRelative(name: string): string[] {
    if (name.includes("\0")) throw new UnsafePathError("the name contains a NUL byte");
    if (name.startsWith("/")) throw new UnsafePathError("the name is absolute");
    const parts = name.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) throw new UnsafePathError("the name has a '..' component");
    return parts;
}

/**
 * What ".." does at the tree root. Two jobs follow links in a tree, and they want different answers:
 * - "refuse": names and link targets of an archive, judged before anything is written (layer
 *   extraction, DESIGN rule 8, and member lookup in an OCI archive). A well-formed image has no link
 *   that climbs above its root; clamping would quietly give such a link a meaning its author did not
 *   write, so it is refused as hostile or broken.
 * - "stay": reading an extracted tree as the booted system will (resolveInTree: the extension-release
 *   lookup, an image's own files). There the tree is "/", whose parent is itself (chroot, systemd's
 *   chase() with a root): the provider must read the very file the system will read, so a link is
 *   resolved, never refused, and can still never leave the tree.
 */
export type AboveRoot = "refuse" | "stay";

/**
 * Applies one component of a path or link target to `parts` (components from the tree root), in place:
 * "" and "." change nothing, ".." drops the last component. False when ".." is met at the root and
 * `aboveRoot` is "refuse" (`parts` is then unchanged).
 */
export function stepComponent(parts: string[], part: string, aboveRoot: AboveRoot): boolean {
    if (part === "" || part === ".") return true;
    if (part !== "..") {
        parts.push(part);
        return true;
    }
    if (parts.length === 0) return aboveRoot === "stay";
    parts.pop();
    return true;
}

/**
 * Where a symlink at `linkParts` pointing at `target` lands, as components from the tree root, or
 * undefined when `aboveRoot` is "refuse" and it climbs above the root. Absolute targets start at the
 * tree root, because that is the image's "/". This is lexical: other links on the way are not followed
 * (resolveInTree, in tree-chase.ts, follows them on disk with the same rules).
 */
export function resolveLinkTarget(linkParts: string[], target: string, aboveRoot: AboveRoot = "refuse"): string[] | undefined {
    if (target.includes("\0")) return undefined;
    const resolved = linkTargetBase(linkParts, target);
    for (const part of target.split("/")) {
        if (!stepComponent(resolved, part, aboveRoot)) return undefined;
    }
    return resolved;
}

/** Where a link's target starts: the tree root for an absolute target, else the folder holding the link. */
export function linkTargetBase(linkParts: string[], target: string): string[] {
    return target.startsWith("/") ? [] : linkParts.slice(0, -1);
}

export function joinParts(parts: string[]): string {
    return parts.join("/");
}

// Lexical path rules for names that come from archives: split a name into components that cannot
// leave the tree, and resolve a link target as the image would see it. Nothing here touches the disk.

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
 * Where a symlink at `linkParts` pointing at `target` lands, as components from the tree root, or
 * undefined when it climbs above the root. Absolute targets start at the tree root, because that is
 * the image's "/". This is lexical: other links on the way are not followed, and nothing in this
 * package ever follows a link inside an extracted tree.
 */
export function resolveLinkTarget(linkParts: string[], target: string): string[] | undefined {
    if (target.includes("\0")) return undefined;
    const resolved = target.startsWith("/") ? [] : linkParts.slice(0, -1);
    for (const part of target.split("/")) {
        if (part === "" || part === ".") continue;
        if (part === "..") {
            if (resolved.length === 0) return undefined;
            resolved.pop();
        } else {
            resolved.push(part);
        }
    }
    return resolved;
}

export function joinParts(parts: string[]): string {
    return parts.join("/");
}

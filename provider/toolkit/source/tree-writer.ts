// Writes the entries of image layers, in order, into one target folder: whiteouts, opaque folders and
// hard links resolved as a container runtime does, every path held inside the target.
import * as fs from "fs";
import * as path from "path";
import { TarEntry } from "./tar-reader";
import { UnsafePathError, joinParts, resolveLinkTarget, splitRelative } from "../tree-path";

export interface LayerFilter {
    /** Relative path prefixes entries must fall under, e.g. ["usr"], ["usr", "opt"] or ["etc"]. */
    allow: string[];
    /** "error": fail, listing every entry outside the prefixes; "drop": skip those entries and report them. */
    onViolation: "error" | "drop";
}

export interface ExtractSummary {
    /** What the tree holds at the end (the root itself is not counted; hardlinked names count as files). */
    files: number;
    dirs: number;
    symlinks: number;
    /** Entries materialised as hard links to an earlier file. */
    hardlinks: number;
    /** Entries skipped by a "drop" filter. */
    dropped: string[];
    /** Whiteout entries applied ("all" mode), whether or not there was anything beneath to delete. */
    whiteouts: string[];
    /** Whiteout entries passed over in "last" mode. */
    ignoredWhiteouts: string[];
    /** Digests (or file paths) of the layers extracted, in order. */
    layers: string[];
}

export class UnsafeEntryError extends Error {
    readonly code = "UNSAFE_ENTRY";
    constructor(readonly layer: string, readonly entry: string, readonly reason: string) {
        super(`${layer}: entry ${JSON.stringify(entry)} refused: ${reason}`);
    }
}

export class FilterViolationError extends Error {
    readonly code = "FILTER_VIOLATION";
    constructor(readonly allow: string[], readonly paths: string[]) {
        super(`${paths.length} entr${paths.length === 1 ? "y is" : "ies are"} outside the allowed paths (${allow.join(", ")}):\n${paths.map((p) => `  ${p}`).join("\n")}`);
    }
}

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
const SMALL_FILE = 1 << 20; // written with synchronous calls; see writeSmallFile
const FILE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
type Node = DirNode | LeafNode;

interface DirNode {
    kind: "dir";
    mode: number;
    /** The layer that created or last declared this node. */
    layer: number;
    /** The last layer that wrote this node or anything beneath it (opaque whiteouts keep those). */
    touched: number;
    children: Map<string, Node>;
}

interface LeafNode {
    kind: "file" | "symlink";
    layer: number;
}

/** Applies tar entries layer by layer to a target it owns, keeping the index of what is there. */
export class TreeWriter {
    readonly summary: ExtractSummary = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, dropped: [], whiteouts: [], ignoredWhiteouts: [], layers: [] };
    private readonly root: DirNode = newDir(0o755, -1);
    private readonly filter?: PrefixFilter;
    private readonly offenders: string[] = [];
    private readonly droppedSet = new Set<string>();
    private layer = -1;
    private label = "";

    constructor(private readonly target: string, private readonly applyWhiteouts: boolean, filter?: LayerFilter) {
        if (filter) this.filter = new PrefixFilter(filter);
    }

    async applyLayer(entries: AsyncIterable<TarEntry>, label: string): Promise<void> {
        this.layer++;
        this.label = label;
        for await (const entry of entries) {
            try {
                await this.applyEntry(entry);
            } catch (e) {
                // Say which entry failed, keeping the error's class and code.
                if (e instanceof Error && !(e instanceof UnsafeEntryError)) e.message = `${label}: entry ${JSON.stringify(entry.name)}: ${e.message}`;
                throw e;
            }
        }
    }

    /** Sets directory modes (deferred so read-only directories can still be filled) and counts the tree. */
    async finish(): Promise<ExtractSummary> {
        if (this.offenders.length > 0) throw new FilterViolationError(this.filter!.allow, this.offenders);
        await this.finishDir(this.root, this.target, true);
        return this.summary;
    }

    private async applyEntry(entry: TarEntry): Promise<void> {
        const parts = this.entryParts(entry.name);
        if (parts.length === 0) return this.rootEntry(entry);
        // A hostile entry fails the extraction even where the filter would have dropped it.
        this.checkType(entry);
        if (entry.type === "symlink") this.checkSymlink(entry, parts);
        const base = parts[parts.length - 1];
        if (base.startsWith(WHITEOUT)) return this.whiteout(entry, parts);
        if (!this.admit(parts, entry.type === "dir")) return;
        // Looked up before anything at the entry's own name is removed.
        const linkSource = entry.type === "hardlink" ? this.hardlinkSource(entry, parts) : undefined;
        const dir = await this.parentDir(entry, parts);
        const existing = await this.clear(dir, parts, entry.type === "dir");
        dir.children.set(base, await this.create(entry, parts, existing, linkSource));
    }

    /** The archive's own "./" entry: its mode belongs to whoever owns the target, so it is skipped. */
    private rootEntry(entry: TarEntry): void {
        if (entry.type !== "dir") throw this.unsafe(entry, "it names the tree root but is not a directory");
    }

    /** Writes the entry at a name `clear` has made free (or at an existing directory it keeps). */
    private async create(entry: TarEntry, parts: string[], existing: DirNode | undefined, linkSource: string[] | undefined): Promise<Node> {
        const file = this.diskPath(parts);
        if (entry.type === "dir") {
            if (!existing) await fs.promises.mkdir(file, 0o700);
            return Object.assign(existing ?? newDir(entry.mode, this.layer), { mode: entry.mode, layer: this.layer, touched: this.layer });
        }
        if (entry.type === "symlink") {
            await fs.promises.symlink(entry.linkname, file);
            return { kind: "symlink", layer: this.layer };
        }
        if (linkSource) {
            await fs.promises.link(this.diskPath(linkSource), file);
            this.summary.hardlinks++;
        } else {
            await writeRegularFile(file, entry);
        }
        return { kind: "file", layer: this.layer };
    }

    private entryParts(name: string): string[] {
        try {
            return splitRelative(name);
        } catch (e) {
            if (e instanceof UnsafePathError) throw new UnsafeEntryError(this.label, name, e.reason);
            throw e;
        }
    }

    private checkType(entry: TarEntry): void {
        if (entry.type === "char" || entry.type === "block" || entry.type === "fifo") {
            const what = entry.type === "fifo" ? "a fifo" : `a ${entry.type} device`;
            throw this.unsafe(entry, `it is ${what}; device nodes and fifos are never extracted`);
        }
        if (entry.type === "unsupported") throw this.unsafe(entry, `tar entry type '${entry.typeflag}' is not supported`);
    }

    private checkSymlink(entry: TarEntry, parts: string[]): void {
        if (entry.linkname === "") throw this.unsafe(entry, "it is a symlink with an empty target");
        if (!resolveLinkTarget(parts, entry.linkname, "refuse")) { // DESIGN rule 8: a link out of the layer is refused, not clamped
            throw this.unsafe(entry, `it is a symlink to ${JSON.stringify(entry.linkname)}, which points outside the tree`);
        }
    }

    private hardlinkSource(entry: TarEntry, parts: string[]): string[] {
        let target: string[];
        try {
            target = splitRelative(entry.linkname);
        } catch (e) {
            if (e instanceof UnsafePathError) throw this.unsafe(entry, `its hardlink target ${JSON.stringify(entry.linkname)} is refused: ${e.reason}`);
            throw e;
        }
        const shown = JSON.stringify(entry.linkname);
        if (joinParts(target) === joinParts(parts)) throw this.unsafe(entry, "it is a hardlink to itself");
        const node = this.lookup(target);
        if (node?.kind === "file") return target;
        if (node) throw this.unsafe(entry, `its hardlink target ${shown} is not a regular file`);
        if (this.droppedSet.has(joinParts(target))) throw this.unsafe(entry, `its hardlink target ${shown} was dropped by the filter`);
        throw this.unsafe(entry, `its hardlink target ${shown} was not extracted before it`);
    }

    /** True when the filter lets the path through; otherwise records it. */
    private admit(parts: string[], isDir: boolean): boolean {
        if (!this.filter || this.filter.allows(parts, isDir)) return true;
        const shown = joinParts(parts);
        if (this.filter.onViolation === "drop") {
            this.summary.dropped.push(shown);
            this.droppedSet.add(shown);
        } else {
            this.offenders.push(shown);
        }
        return false;
    }

    /** The directory node that will hold `parts`; missing directories are created, links are refused. */
    private async parentDir(entry: TarEntry, parts: string[]): Promise<DirNode> {
        let dir = this.root;
        dir.touched = this.layer;
        for (let i = 0; i < parts.length - 1; i++) {
            let child = dir.children.get(parts[i]);
            const shown = joinParts(parts.slice(0, i + 1));
            if (!child) {
                // Layers normally list parent directories; when one does not, create it as runtimes do.
                await fs.promises.mkdir(this.diskPath(parts.slice(0, i + 1)), 0o700);
                child = newDir(0o755, this.layer);
                dir.children.set(parts[i], child);
            } else if (child.kind === "symlink") {
                throw this.unsafe(entry, `its parent ${shown} is a symlink, and writing through a link could leave the tree`);
            } else if (child.kind !== "dir") {
                throw this.unsafe(entry, `its parent ${shown} is not a directory`);
            }
            child.touched = this.layer;
            dir = child;
        }
        return dir;
    }

    /** Makes room for a new entry; returns the existing directory when a directory replaces a directory. */
    private async clear(dir: DirNode, parts: string[], isDir: boolean): Promise<DirNode | undefined> {
        const name = parts[parts.length - 1];
        const existing = dir.children.get(name);
        if (!existing) return undefined;
        if (existing.kind === "dir" && isDir) return existing;
        // Never write into an existing file: it may be a hard link shared with another name.
        await fs.promises.rm(this.diskPath(parts), { recursive: existing.kind === "dir", force: true });
        dir.children.delete(name);
        return undefined;
    }

    private async whiteout(entry: TarEntry, parts: string[]): Promise<void> {
        const base = parts[parts.length - 1];
        const dirParts = parts.slice(0, -1);
        const opaque = base === OPAQUE;
        // Other ".wh..wh." names are aufs bookkeeping (.wh..wh.plnk); runtimes ignore them too.
        if (!opaque && base.startsWith(WHITEOUT + WHITEOUT)) return;
        const name = base.slice(WHITEOUT.length);
        if (!opaque && (name === "" || name === "." || name === "..")) {
            throw this.unsafe(entry, `it is a whiteout for ${JSON.stringify(name)}, which is not a file name`);
        }
        const victim = opaque ? dirParts : [...dirParts, name];
        if (!this.admit(victim, opaque)) return;
        if (!this.applyWhiteouts) {
            this.summary.ignoredWhiteouts.push(joinParts(parts));
            return;
        }
        const dir = this.existingDir(entry, dirParts);
        if (!dir) return;
        if (opaque) await this.hideLowerLayers(dir, dirParts);
        else await this.removeLower(dir, dirParts, name);
        this.summary.whiteouts.push(joinParts(parts));
    }

    /** The directory at `parts` if the tree has one; a symlink on the way is refused, not followed. */
    private existingDir(entry: TarEntry, parts: string[]): DirNode | undefined {
        let dir = this.root;
        for (const [i, name] of parts.entries()) {
            const child = dir.children.get(name);
            if (child?.kind === "symlink") {
                throw this.unsafe(entry, `${joinParts(parts.slice(0, i + 1))} is a symlink, and deleting through a link could leave the tree`);
            }
            if (child?.kind !== "dir") return undefined;
            dir = child;
        }
        return dir;
    }

    // OCI: a whiteout hides paths from lower layers only; the same layer's files stay.
    private async removeLower(dir: DirNode, dirParts: string[], name: string): Promise<void> {
        const node = dir.children.get(name);
        if (!node || node.layer === this.layer) return;
        await fs.promises.rm(this.diskPath([...dirParts, name]), { recursive: node.kind === "dir", force: true });
        dir.children.delete(name);
    }

    /** Opaque directory: everything beneath it from lower layers goes; what this layer wrote stays. */
    private async hideLowerLayers(dir: DirNode, dirParts: string[]): Promise<void> {
        for (const [name, node] of [...dir.children]) {
            const childParts = [...dirParts, name];
            if (node.kind === "dir" && node.touched === this.layer) await this.hideLowerLayers(node, childParts);
            else if (node.layer !== this.layer) await this.removeLower(dir, dirParts, name);
        }
    }

    private lookup(parts: string[]): Node | undefined {
        let node: Node | undefined = this.root;
        for (const name of parts) node = node?.kind === "dir" ? node.children.get(name) : undefined;
        return node;
    }

    private async finishDir(dir: DirNode, file: string, isRoot: boolean): Promise<void> {
        for (const [name, node] of dir.children) {
            const child = path.join(file, name);
            if (node.kind === "dir") await this.finishDir(node, child, false);
            else if (node.kind === "file") this.summary.files++;
            else this.summary.symlinks++;
        }
        if (isRoot) return;
        // Children first: a parent made read-only or unsearchable must not block its children.
        await fs.promises.chmod(file, dir.mode);
        this.summary.dirs++;
    }

    private diskPath(parts: string[]): string {
        return path.join(this.target, ...parts);
    }

    private unsafe(entry: TarEntry, reason: string): UnsafeEntryError {
        return new UnsafeEntryError(this.label, entry.name, reason);
    }
}

function newDir(mode: number, layer: number): DirNode {
    return { kind: "dir", mode, layer, touched: layer, children: new Map() };
}

/**
 * Creates the file fresh (O_EXCL | O_NOFOLLOW: never through an existing name or link) and fills it.
 * The mode is set explicitly after the data, so the umask cannot strip bits and setuid survives.
 */
async function writeRegularFile(file: string, entry: TarEntry): Promise<void> {
    if (entry.size <= SMALL_FILE) writeSmallFile(file, await readBody(entry), entry.mode);
    else await streamLargeFile(file, entry);
}

// Images are mostly small files; synchronous calls for them halve extraction time, because a
// thread-pool round trip per open/write/chmod/close costs more than the work itself.
function writeSmallFile(file: string, data: Buffer, mode: number): void {
    const fd = fs.openSync(file, FILE_FLAGS, 0o600);
    try {
        let written = 0;
        while (written < data.length) written += fs.writeSync(fd, data, written);
        fs.fchmodSync(fd, mode);
    } finally {
        fs.closeSync(fd);
    }
}

async function streamLargeFile(file: string, entry: TarEntry): Promise<void> {
    const handle = await fs.promises.open(file, FILE_FLAGS, 0o600);
    try {
        for await (const chunk of entry.body()) {
            let written = 0;
            while (written < chunk.length) written += (await handle.write(chunk, written)).bytesWritten;
        }
        await handle.chmod(entry.mode);
    } finally {
        await handle.close();
    }
}

async function readBody(entry: TarEntry): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of entry.body()) chunks.push(chunk);
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

/** Allow-list of relative prefixes. Directories above a prefix pass too, so "usr/lib" keeps "usr/". */
class PrefixFilter {
    readonly allow: string[];
    readonly onViolation: "error" | "drop";
    private readonly prefixes: string[][];

    constructor(filter: LayerFilter) {
        this.allow = filter.allow;
        this.onViolation = filter.onViolation;
        this.prefixes = filter.allow.map((p) => {
            const parts = splitRelative(p);
            if (parts.length === 0) throw new Error(`filter prefix ${JSON.stringify(p)} names the whole tree; leave the filter out instead`);
            return parts;
        });
    }

    allows(parts: string[], isDir: boolean): boolean {
        return this.prefixes.some((prefix) =>
            isPrefix(prefix, parts) || (isDir && isPrefix(parts, prefix)),
        );
    }
}

function isPrefix(prefix: string[], parts: string[]): boolean {
    return prefix.length <= parts.length && prefix.every((p, i) => p === parts[i]);
}

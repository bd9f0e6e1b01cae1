// What each input of each resource in schema.json does to the artifact, in one table: it reaches the
// input hash (the store's manifest key, and what `diff` compares), it replaces the resource (a new file
// name or place), or it is said to change neither, with the reason. The hash derivations read their
// plain-value parts from here, and test/provider/input-roles.test.ts walks schema.json against it and
// perturbs each field through the real check()/diff(): a new input nobody classified fails that test,
// and so does a `hash` field that does not move the hash.
// Tokens are spelled out: the resource modules import this table, so it cannot import them.

/**
 * How one input reaches the input hash: its value as it is into the named hash part (`digest` absent),
 * or through something computed from it (`digest` says what: a content digest, a fingerprint).
 */
export interface HashRole {
    part: string;
    digest?: string;
}

export type InputRole =
    /** In the input hash; `replace` too when a change also names another file (build the new, delete the old). */
    | { hash: HashRole; replace?: true }
    /** A replace only: where the artifact goes, never what it is (so not in the hash: the store relocates). */
    | { replace: true; notHashed: string }
    /** Neither: the reason says why a change leaves the artifact and its place as they are. */
    | { none: string };

const ARTIFACT_STORE: InputRole = { none: "where a copy is kept, not what is built: moving buckets rebuilds nothing (the next up publishes there)" };
const OUTPUT_DIR: InputRole = { replace: true, notHashed: "where the artifact goes, which differs per runner and checkout; the store relocates a fetched artifact to the runner's own outputDir" };

const REGISTRY_ACCESS: InputRole = { none: "how the registry is reached (plain HTTP, a CA file), not what is published or where" };
const VERIFY_WITH: InputRole = { none: "what the release is checked against before it is published, not what is published: the bytes are the same" };
const DELETE_RELEASE: InputRole = { none: "what destroy does to the published manifest, not what is published: nothing is pushed again" };

export const INPUT_ROLES: Record<string, Record<string, InputRole>> = {
    "kairos:index:SigningKeys": {
        // Key identity: these name the key set itself (hash part "keys", the keyMaterialHash); check()
        // refuses a change to them unless `rotation` is raised, so they never replace silently.
        name: { hash: { part: "keys" } },
        outputDir: { hash: { part: "keys", digest: "the folder as first written (a respelling of the same place keeps the recorded hash): the keys the folder holds are the key set's identity; pointing outputDir at a folder holding them is a move (artifact-move.ts), anywhere else a rotation, which check() refuses without `rotation`" } },
        keySize: { hash: { part: "keys" } },
        validityDays: { hash: { part: "keys" } },
        token: { hash: { part: "keys" } },
        import: { hash: { part: "keys", digest: "the places named and each imported file's sha256 (a token key's public half)" } },
        rotation: { hash: { part: "keys" } },
        extraSignatureLists: { hash: { part: "signatureLists", digest: "each list file's sha256" } },
        authTimestamp: { hash: { part: "authentication" } },
        ownerGuid: { hash: { part: "authentication" } },
        deleteOnDestroy: { none: "what destroy does, not what is made: diff reports the change (an update records it) and no file is rewritten" },
        artifactStore: ARTIFACT_STORE,
    },
    "kairos:index:SystemExtension": {
        name: { hash: { part: "options" }, replace: true },
        outputDir: OUTPUT_DIR,
        source: { hash: { part: "source", digest: "sourceDigest: the tree or image content digest, and the source form in part options; where a local source lives and insecureRegistry (how the registry is reached) are not content" } },
        kind: { hash: { part: "options" }, replace: true },
        arch: { hash: { part: "options" } },
        layers: { hash: { part: "options" } },
        withOpt: { hash: { part: "options" } },
        dropDisallowedPaths: { hash: { part: "options" } },
        release: { hash: { part: "options" } },
        compression: { hash: { part: "options" } },
        signing: { hash: { part: "signing", digest: "the certificate's sha256 fingerprint (check() proves the key belongs to it)" } },
        sourceDateEpoch: { hash: { part: "options" } },
        artifactStore: ARTIFACT_STORE,
    },
    "kairos:index:KairosUkiImage": {
        outputDir: OUTPUT_DIR,
        source: { hash: { part: "source", digest: "sourceDigest: the OS tree or image content digest" } },
        signing: { hash: { part: "signing", digest: "the certificate's sha256 fingerprint (check() proves the key belongs to it)" } },
        pcrKey: { hash: { part: "pcrKey", digest: "sha256 of the key's public half (never a digest of private key bytes)" } },
        bootTitle: { hash: { part: "cmdlines" } },
        extendCmdline: { hash: { part: "cmdlines" } },
        extraCmdlines: { hash: { part: "cmdlines" } },
        singleEntries: { hash: { part: "cmdlines" } },
        includeVersionInConfig: { hash: { part: "cmdlines" } },
        includeCmdlineInConfig: { hash: { part: "cmdlines" } },
        loaderEntryKey: { hash: { part: "cmdlines" } },
        splash: { hash: { part: "splash", digest: "the image file's sha256" } },
        maxUkiSizeMB: { hash: { part: "build" } },
        initrdCompressionLevel: { hash: { part: "build" } },
        initrdWindowLog: { hash: { part: "build" } },
        artifactStore: ARTIFACT_STORE,
    },
    "kairos:index:BootMedia": {
        // name and type name the artifact (NAME.iso, or the folder outputDir/NAME): two media that differ
        // only there are two artifacts, and must not share one manifest.
        name: { hash: { part: "media" }, replace: true },
        outputDir: OUTPUT_DIR,
        type: { hash: { part: "media" }, replace: true },
        uki: { hash: { part: "uki", digest: "each file's name and sha256" } },
        enrollKeys: { hash: { part: "keys", digest: "each .auth file's name and sha256" } },
        extensions: { hash: { part: "extensions", digest: "each image's name and sha256" } },
        espExtensions: { hash: { part: "options" } },
        cloudConfig: { hash: { part: "overlay", digest: "the file's sha256" } },
        overlayFiles: { hash: { part: "overlay", digest: "each media path and its source file's sha256" } },
        timeout: { hash: { part: "options" } },
        secureBootEnroll: { hash: { part: "options" } },
        consoleMode: { hash: { part: "options" } },
        sourceDateEpoch: { hash: { part: "options" } },
        artifactStore: ARTIFACT_STORE,
    },
    "kairos:index:PromotedArtifact": {
        source: { hash: { part: "file", digest: "the file name (basename) only: the bytes are named by expectedSha256, and where the tested file lives is not what is promoted" }, replace: true },
        expectedSha256: { hash: { part: "artifact" } },
        outputDir: OUTPUT_DIR,
        kind: { hash: { part: "file" } },
        resign: { hash: { part: "signing", digest: "the certificate's sha256 fingerprint (check() proves the key belongs to it)" } },
        fromStore: { none: "where the tested bytes are taken from, not which: expectedSha256 names them, and the download is hashed against it" },
        artifactStore: ARTIFACT_STORE,
    },
    "kairos:index:SysextRelease": {
        image: { hash: { part: "image", digest: "the image's sha256 (its file name is part fileName: the title nodes write it under)" } },
        name: { hash: { part: "catalog" } },
        version: { hash: { part: "catalog" } },
        arch: { hash: { part: "catalog" } },
        kind: { hash: { part: "artifactType" } },
        verifyWith: VERIFY_WITH,
        repository: { hash: { part: "place" } },
        tag: { hash: { part: "place" } },
        registry: REGISTRY_ACCESS,
        deleteOnDestroy: DELETE_RELEASE,
    },
    "kairos:index:ExtensionCatalog": {
        entries: { hash: { part: "catalog", digest: "the sha256 of the releases.json the entries render to" } },
        repo: { hash: { part: "catalog", digest: "the sha256 of the releases.json, whose repo field it is" } },
        latest: { hash: { part: "catalog", digest: "the sha256 of the releases.json, whose latest fields it sets" } },
        outputDir: { replace: true, notHashed: "where the catalog file is written, which differs per runner and checkout; the catalog is the same" },
        repository: { hash: { part: "place" } },
        tag: { hash: { part: "place" } },
        registry: REGISTRY_ACCESS,
        deleteOnDestroy: DELETE_RELEASE,
    },
    "kairos:index:OsRelease": {
        uki: { hash: { part: "files", digest: "each file's sha256 under its path in the image" } },
        enrollKeys: { hash: { part: "files", digest: "each .auth file's sha256 under loader/keys/auto" } },
        verifyWith: VERIFY_WITH,
        outputDir: { replace: true, notHashed: "where the tarball is written, which differs per runner and checkout; the image is the same" },
        name: { replace: true, notHashed: "the tarball's file name only: the image inside, and its digest, are the same" },
        arch: { hash: { part: "arch" } },
        repository: { hash: { part: "place" } },
        tag: { hash: { part: "place" } },
        registry: REGISTRY_ACCESS,
        deleteOnDestroy: DELETE_RELEASE,
    },
    "kairos:index:PromotedRelease": {
        source: { hash: { part: "release", digest: "the tested manifest digest; the repository it is copied from is where, not what" } },
        repository: { hash: { part: "place" } },
        tag: { hash: { part: "place" } },
        entry: { hash: { part: "entry" } },
        sourceRegistry: REGISTRY_ACCESS,
        registry: REGISTRY_ACCESS,
        deleteOnDestroy: DELETE_RELEASE,
    },
};

/** The role of `field` of `token`; throws for an input the table does not know (a new one, unclassified). */
export function inputRole(token: string, field: string): InputRole {
    const role = INPUT_ROLES[token]?.[field];
    if (!role) throw new Error(`${token}.${field} has no role in provider/validation/input-roles.ts: classify it (hash, replace or none with the reason)`);
    return role;
}

/** Inputs that enter hash part `part` by their plain value (no digest), in the table's order. */
export function plainHashFields(token: string, part: string): string[] {
    return Object.entries(INPUT_ROLES[token] ?? {})
        .filter(([, r]) => "hash" in r && r.hash.part === part && !r.hash.digest)
        .map(([f]) => f);
}

/** `{ field: value ?? null }` for the plain-value fields of hash part `part`: what the derivations hash. */
export function plainHashValues(token: string, part: string, inputs: Record<string, any>): Record<string, unknown> {
    return Object.fromEntries(plainHashFields(token, part).map((f) => [f, inputs[f] ?? null]));
}

/** Inputs whose change is a replace, in the table's order: what the handlers' diff passes to replacedFields. */
export function replaceFields<T = Record<string, unknown>>(token: string): (keyof T & string)[] {
    return Object.entries(INPUT_ROLES[token] ?? {}).filter(([, r]) => "replace" in r && r.replace).map(([f]) => f as keyof T & string);
}

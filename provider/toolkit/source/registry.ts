// Registry images without a Docker engine: skopeo resolves a reference to its manifest digest (so a
// moved tag is a change in preview) and copies exactly that digest into an OCI layout.
import { run } from "../run";
import { sha256Hex } from "../files";

export interface RegistryOptions {
    /** Plain HTTP / unverified TLS, for a local registry. */
    insecure?: boolean;
    /** Docker platform architecture to select from a multi-arch index (amd64, arm64). */
    arch?: string;
}

/** `name[:tag]` or `name@sha256:…` -> the repository part, without tag or digest. */
export function repositoryOf(ref: string): string {
    const noDigest = ref.split("@")[0];
    const lastSlash = noDigest.lastIndexOf("/");
    const colon = noDigest.lastIndexOf(":");
    return colon > lastSlash ? noDigest.slice(0, colon) : noDigest;
}

function tlsFlag(flag: string, o: RegistryOptions): string[] {
    return o.insecure ? [`${flag}=false`] : [];
}

/** The sha256 digest of the manifest (or index) the reference points at right now. */
export async function resolveManifestDigest(ref: string, o: RegistryOptions = {}): Promise<string> {
    const { stdout } = await run(["skopeo", "inspect", "--raw", "--retry-times", "2", ...tlsFlag("--tls-verify", o), `docker://${ref}`]);
    return `sha256:${sha256Hex(Buffer.from(stdout, "utf8"))}`;
}

/** Copies `repository@digest` into an OCI layout directory, tagged `image`. */
export async function pullToOciLayout(ref: string, digest: string, layoutDir: string, o: RegistryOptions = {}): Promise<void> {
    const pinned = `${repositoryOf(ref)}@${digest}`;
    await run([
        "skopeo", "copy", "--retry-times", "2",
        ...(o.arch ? ["--override-arch", o.arch, "--override-os", "linux"] : []),
        ...tlsFlag("--src-tls-verify", o),
        `docker://${pinned}`, `oci:${layoutDir}:image`,
    ]);
}

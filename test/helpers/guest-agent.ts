// Test bed for the guest's kairos-agent stand-in on the host: a sandbox of the roots it writes
// (extensions, /run/extensions, the ESP, efivarfs, /run/verity.d), artifacts published to the test
// registry as a release pipeline would (oras for raw sysext artifacts; AuroraBoot's docker schema2
// image pushed over the distribution API, and as a docker-save tarball), and PE files signed by sbsign.
import * as fs from "fs";
import * as path from "path";
import { run, RunResult } from "../../provider/toolkit/run";
import { buildTar, makeLayer, sha256 } from "./oci-fixtures";

const REPO = path.resolve(__dirname, "..", "..");
export const GUEST = path.join(REPO, "scripts/lib/systemd-test-os/guest");
export const SYSEXT_TYPE = "application/vnd.kairos.sysext.raw";

/** oras v1.3.6, built by the set-up (its path in .oras-bin). */
export function orasBin(): string {
    for (const f of [path.join(REPO, ".oras-bin"), "/work/main/.oras-bin"]) {
        if (fs.existsSync(f)) return fs.readFileSync(f, "utf8").trim();
    }
    return "oras";
}

export class AgentSandbox {
    readonly ext: string;
    readonly runExt: string;
    readonly efi: string;
    readonly efivars: string;
    readonly verity: string;
    readonly mirrors: string;
    readonly systemctlLog: string;

    constructor(readonly dir: string, registryHost: string) {
        fs.rmSync(dir, { recursive: true, force: true });
        this.ext = path.join(dir, "var/lib/kairos/extensions");
        this.runExt = path.join(dir, "run/extensions");
        this.efi = path.join(dir, "efi");
        this.efivars = path.join(dir, "efivars");
        this.verity = path.join(dir, "run/verity.d");
        for (const d of [this.ext, this.runExt, this.efi, this.efivars, this.verity]) fs.mkdirSync(d, { recursive: true });
        this.mirrors = path.join(dir, "registry-mirrors");
        // the guest names the host's 127.0.0.1:PORT through a forward; here the same host, plain HTTP
        fs.writeFileSync(this.mirrors, `${registryHost}=http://${registryHost}\n`);
        this.systemctlLog = path.join(dir, "systemctl.log");
        fs.writeFileSync(path.join(dir, "systemctl"), `#!/bin/sh\necho "$*" >> ${this.systemctlLog}\n`, { mode: 0o755 });
    }

    /** Runs the stand-in with /bin/sh (dash on Debian: POSIX only); never throws, returns the exit code. */
    async agent(...args: string[]): Promise<RunResult & { out: string }> {
        const r = await run(["sh", path.join(GUEST, "usr/bin/kairos-agent"), ...args], {
            okCodes: Array.from({ length: 256 }, (_, i) => i),
            timeoutMs: 60000,
            env: {
                KAIROS_AGENT_LIB: path.join(GUEST, "usr/lib/kairos-test"), KAIROS_EXTENSIONS_DIR: this.ext, KAIROS_RUN_EXTENSIONS: this.runExt,
                KAIROS_EFI_DIR: this.efi, KAIROS_EFIVARS: this.efivars, KAIROS_VERITY_DIR: this.verity, KAIROS_REGISTRY_MIRRORS: this.mirrors,
                KAIROS_PROFILE: "active", KAIROS_SYSTEMCTL: path.join(this.dir, "systemctl"), TMPDIR: this.dir,
            },
        });
        return { ...r, out: r.stdout + r.stderr };
    }

    /** `ls`-like view: relative path -> link target or "file". */
    tree(root: string): Record<string, string> {
        const out: Record<string, string> = {};
        const walk = (d: string) => {
            for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
                const p = path.join(d, e.name);
                if (e.isSymbolicLink()) out[path.relative(root, p)] = `-> ${fs.readlinkSync(p)}`;
                else if (e.isDirectory()) walk(p);
                else out[path.relative(root, p)] = "file";
            }
        };
        walk(root);
        return out;
    }
}

/** Pushes `file` as a Kairos raw sysext artifact; returns the manifest digest. */
export async function pushSysext(host: string, repoTag: string, file: string, o: { artifactType?: string; mediaType?: string } = {}): Promise<string> {
    const r = await run([orasBin(), "push", "--plain-http", "--artifact-type", o.artifactType ?? SYSEXT_TYPE, `${host}/${repoTag}`,
        `${path.basename(file)}:${o.mediaType ?? SYSEXT_TYPE}`], { cwd: path.dirname(file), timeoutMs: 60000 });
    const m = (r.stdout + r.stderr).match(/Digest: (sha256:[0-9a-f]{64})/);
    if (!m) throw new Error(`no digest in oras output:\n${r.stdout}${r.stderr}`);
    return m[1];
}

async function putBlob(host: string, repo: string, data: Buffer): Promise<string> {
    const digest = sha256(data);
    const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    if (start.status !== 202) throw new Error(`blob upload start: ${start.status}`);
    const loc = new URL(start.headers.get("location")!, `http://${host}`);
    loc.searchParams.set("digest", digest);
    const put = await fetch(loc, { method: "PUT", body: data, headers: { "content-type": "application/octet-stream" } });
    if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
    return digest;
}

export interface OsImage {
    config: Buffer;
    layer: { blob: Buffer; digest: string; diffId: string };
    manifest: Buffer;
    digest: string;
}

/**
 * AuroraBoot's `--output-type container` image: one gzip layer of regular files (relative paths, no
 * directory entries), a config with only architecture, os and rootfs, a docker schema2 manifest.
 */
export async function auroraBootImage(files: Record<string, Buffer | string>): Promise<OsImage> {
    const layer = await makeLayer(Object.keys(files).sort().map((name) => ({ name, content: files[name], mode: 0o644 })), "gzip");
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.diffId] } }));
    const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.docker.distribution.manifest.v2+json",
        config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.length, digest: sha256(config) },
        layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: layer.blob.length, digest: layer.digest }],
    }));
    return { config, layer, manifest, digest: sha256(manifest) };
}

/** Pushes the image to <host>/<repo>:<tag>; returns `repo@digest`. */
export async function pushImage(host: string, repo: string, tag: string, image: OsImage): Promise<string> {
    await putBlob(host, repo, image.config);
    await putBlob(host, repo, image.layer.blob);
    const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
        method: "PUT", body: image.manifest, headers: { "content-type": "application/vnd.docker.distribution.manifest.v2+json" },
    });
    if (res.status !== 201) throw new Error(`manifest put: ${res.status} ${await res.text()}`);
    return `${host}/${repo}@${image.digest}`;
}

/** The same image as go-containerregistry's tarball.Write (AuroraBoot) saves it. */
export function dockerSave(file: string, image: OsImage, repoTag: string): void {
    const hex = (d: string) => d.replace(/^sha256:/, "");
    fs.writeFileSync(file, buildTar([
        { name: sha256(image.config), content: image.config },
        { name: `${hex(image.layer.digest)}.tar.gz`, content: image.layer.blob },
        { name: "manifest.json", content: JSON.stringify([{ Config: sha256(image.config), RepoTags: [repoTag], Layers: [`${hex(image.layer.digest)}.tar.gz`] }]) },
    ]));
}

/** A PE binary (systemd-boot's by default), signed by `key`/`cert` with sbsign (a stand-in for a signed UKI). */
export async function signedPe(out: string, key: string, cert: string, input = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"): Promise<Buffer> {
    await run(["sbsign", "--key", key, "--cert", cert, "--output", out, input]);
    return fs.readFileSync(out);
}

/** The UTF-16LE id in an efivarfs-shaped variable file (4 attribute bytes first). */
export function efiVarString(file: string): { attrs: number; value: string } {
    const b = fs.readFileSync(file);
    return { attrs: b.readUInt32LE(0), value: b.subarray(4).toString("utf16le").replace(/\0+$/, "") };
}

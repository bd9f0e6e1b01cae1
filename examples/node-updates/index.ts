// Updates at their own pace: the extensions and the OS are released separately, to an OCI registry, in
// the forms installed Kairos nodes take (kairos-agent `sysext install` from a releases.json catalog, and
// `upgrade --source oci:`). Adding a k3s version builds that extension, publishes it and updates the
// catalog; the UKI, the OS release and the install media stay as they are. Changing the OS rebuilds the
// UKI and publishes a new OS release; the extensions stay as they are.
//
// Pulumi.yaml here runs it with stack config (see README.md); the node-updates boot test runs the same
// program against a registry on 127.0.0.1 and a virtual node that takes the releases.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { BootMedia, ExtensionCatalog, KairosUkiImage, OsRelease, SigningKeys, SysextRelease, SystemExtension } from "../../index";

export interface NodeUpdatesSettings {
    /** Where the artifacts go (relative to the project folder, or absolute). */
    outDir: string;
    /** `host[:port]` of the registry the nodes pull from. */
    registry: string;
    /** A registry on loopback or a lab network without TLS. @default false */
    plainHttp?: boolean;
    /** Every released k3s version with its extension tree (the Dockerfile's output), oldest first. */
    k3s: { version: string; tree: string }[];
    /** The version the install media carry. @default the first */
    installVersion?: string;
    /** The OS tree (rootfs) the UKI is built from, and its extra command line. */
    os: { dir: string; cmdline?: string; version: string };
    /** The cloud-config the media install with. */
    cloudConfig: string;
    /** How the media's systemd-boot enrols the keys. @default "if-safe" (systemd-boot 253 or newer) */
    secureBootEnroll?: "if-safe" | "force";
}

export function nodeUpdatesProgram(s: NodeUpdatesSettings) {
    return async () => {
        const registry = { plainHttp: s.plainHttp === true };
        // Nothing is published that the nodes' db certificate does not verify.
        const out = (p: string) => path.join(s.outDir, p);
        const keys = new SigningKeys("keys", { name: "node-updates", outputDir: out("keys") }, { protect: false });
        const db = keys.files.apply((f) => f.db.pem);

        // One extension per k3s version, named with its version (k3s-1.31.2.sysext.raw), so a node can hold
        // the old and the new one while it switches, as Kairos' docs recommend.
        const releases = s.k3s.map(({ version, tree }) => {
            const extension = new SystemExtension(`k3s-${version}`, {
                name: `k3s-${version}`, outputDir: out("extensions"), source: { dir: tree }, signingKeys: keys,
                release: { reloadManager: true },
            });
            const release = new SysextRelease(`k3s-${version}`, { image: extension.path, name: "k3s", version, repository: `${s.registry}/kairos/k3s`, registry, verifyWith: db });
            return { version, extension, release };
        });
        const catalog = new ExtensionCatalog("extensions", {
            entries: releases.map((r) => r.release.catalogEntry),
            outputDir: out("catalog"),
            repository: `${s.registry}/kairos/catalog`,
            registry,
        });

        const os = new KairosUkiImage("os", { outputDir: out("uki"), source: { dir: s.os.dir }, signingKeys: keys, extendCmdline: s.os.cmdline, initrdCompressionLevel: 3 });
        const osRelease = new OsRelease("os", {
            uki: os.bootFiles, outputDir: out("os-release"), repository: `${s.registry}/kairos/os`, tag: s.os.version, registry, verifyWith: db,
            enrollKeys: keys.files.apply((f) => ({ PK: f.PK.auth, KEK: f.KEK.auth, db: f.db.auth })),
        });

        const installed = releases.find((r) => r.version === (s.installVersion ?? s.k3s[0].version));
        if (!installed) throw new Error(`installVersion ${s.installVersion} is not among the k3s versions ${s.k3s.map((r) => r.version).join(", ")}`);
        const media = new BootMedia("media", { name: "node-updates", outputDir: out("media"), ukiImage: os, signingKeys: keys, extensions: [installed.extension.path], cloudConfig: s.cloudConfig, timeout: 0, secureBootEnroll: s.secureBootEnroll });

        return {
            releases: pulumi.all(releases.map((r) => r.release.catalogEntry)),
            catalog: { url: catalog.url, reference: catalog.reference, latest: catalog.latest, path: catalog.path },
            os: {
                reference: osRelease.reference, digest: osRelease.digest, tarball: osRelease.path,
                ukiSha256: os.ukis.apply((u) => u[0].sha256), pcr11EnterInitrd: os.pcr11.apply((p) => p?.norole?.["enter-initrd"]),
            },
            iso: media.path,
            // Where the keys are (paths, not key material): for signing what the program does not build.
            keys: { db, dbKey: keys.files.apply((f) => f.db.key), pcrKey: keys.tpmPcrKeyFile },
        };
    };
}

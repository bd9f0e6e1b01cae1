// OsRelease: the OS as AuroraBoot's `build-uki --output-type container` image, the form
// `kairos-agent upgrade --source oci:…|ocifile:…` takes: one gzip layer with the ESP files of a
// norole entry (the agent verifies EFI/kairos/norole.efi against db, then rotates active -> passive).
// Written as a docker-save tarball and, with a repository, pushed with exactly the same manifest, so
// the digest is the same everywhere and a function of the files alone.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Handler } from "./artifact-contract";
import { checkInputs } from "./check-kit";
import { packageProvider, withoutPromiseStackTraces } from "./dynamic-transport";
import { BuildLog } from "./build-log";
import { InputProblem } from "./validation/schema-validator";
import { canonicalJson, sha256File, sha256Hex } from "./toolkit/files";
import { renderLoaderConf } from "./toolkit/boot/boot-entries";
import { checkEfiSignature } from "./toolkit/boot/uki";
import { stageThenMove } from "./output/staging";
import { writeOsContainer } from "./toolkit/release/os-container";
import type { TarEntry } from "./toolkit/release/tar-writer";
import { pushLayout } from "./toolkit/release/oras";
import { PublishedRecord, ReleaseRun, accessOf, pinned, placePart, registryProblems, tagged } from "./release/published";
import { releaseLifecycle } from "./release/lifecycle";
import * as contract from "./generated/contract";
import { registeredOutputs } from "./generated/contract";

export const OS_RELEASE_TOKEN = "kairos:index:OsRelease";
const BUILDER_VERSION = "os-release/1";

export interface OsReleaseArgs extends contract.OsReleaseArgs {}

interface Inputs extends contract.OsReleaseInputs {
    name: string;
    arch: "amd64" | "arm64";
    tag: string;
    hashParts: Record<string, string>;
    inputHash: string;
}

interface Outputs extends Inputs, ReleaseRun, Omit<PublishedRecord, "drift"> {
    path: string;
    sha256: string;
    digest: string;
    reference?: string;
    files: string[];
}

const label = (i: { name: string }) => `OsRelease ${i.name}`;
const tarballOf = (i: { outputDir: string; name: string }) => path.join(i.outputDir, `${i.name}.tar`);

/** The image's files as AuroraBoot lays them out (the ESP tree of a norole entry); loader.conf is rendered into `work`. */
function containerFiles(i: Inputs, loaderConf: string): TarEntry[] {
    return [
        { path: "EFI/BOOT/BOOTX64.EFI", source: i.uki.systemdBoot },
        ...i.uki.efiFiles.map((f) => ({ path: `EFI/kairos/${path.basename(f)}`, source: f })),
        { path: "loader/loader.conf", source: loaderConf },
        ...i.uki.loaderEntries.map((f) => ({ path: `loader/entries/${path.basename(f)}`, source: f })),
        ...(i.enrollKeys ? (["PK", "KEK", "db"] as const).map((k) => ({ path: `loader/keys/auto/${k}.auth`, source: i.enrollKeys![k] })) : []),
    ].map((f) => ({ ...f, source: path.resolve(f.source) }));
}

function crossField(i: Inputs): InputProblem[] {
    const problems: InputProblem[] = [];
    const files = [i.uki.systemdBoot, ...i.uki.efiFiles, ...i.uki.loaderEntries, ...Object.values(i.enrollKeys ?? {})];
    for (const f of files) if (!fs.existsSync(f)) problems.push({ property: "uki", reason: `${f} does not exist` });
    // kairos-agent upgrade looks for exactly this file and rotates norole* into active*.
    if (!i.uki.efiFiles.some((f) => path.basename(f) === "norole.efi")) {
        problems.push({ property: "uki.efiFiles", reason: `no norole.efi among ${i.uki.efiFiles.map((f) => path.basename(f)).join(", ") || "none"}: kairos-agent upgrade verifies and installs EFI/kairos/norole.efi (build the KairosUkiImage without a role-specific single entry)` });
    }
    if (i.verifyWith && !fs.existsSync(i.verifyWith)) problems.push({ property: "verifyWith", reason: `${i.verifyWith} does not exist` });
    return [...problems, ...registryProblems("registry", i.registry, fs.existsSync)];
}

export const osReleaseHandler: Handler = {
    artifactPaths: (p) => [tarballOf(p as Inputs)],
    check: (olds, news) =>
        checkInputs<Inputs>(OS_RELEASE_TOKEN, olds, news, {
            crossField,
            async derive(i) {
                const loaderConf = renderLoaderConf();
                const files: Record<string, string> = {};
                for (const f of containerFiles(i, "")) files[f.path] = f.path === "loader/loader.conf" ? sha256Hex(loaderConf) : await sha256File(f.source);
                i.hashParts = { files: sha256Hex(canonicalJson(files)), arch: i.arch, place: placePart(i.repository, i.tag), builder: BUILDER_VERSION };
                i.inputHash = sha256Hex(canonicalJson(i.hashParts));
                return [];
            },
        }),

    ...releaseLifecycle<Inputs, Outputs>({
        label, make: build, id: (o) => o.path, recorded: ["registry", "deleteOnDestroy", "verifyWith"], fileFields: ["outputDir", "name"], localFile: (o) => o,
    }),
};

async function build(i: Inputs, log: BuildLog): Promise<Outputs> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-os-release-"));
    try {
        if (i.verifyWith) {
            // What kairos-agent upgrade checks on the node (norole.efi against db), and what the firmware checks: refuse before publishing.
            for (const f of [...i.uki.efiFiles.filter((e) => path.basename(e) === "norole.efi"), i.uki.systemdBoot]) {
                const verdict = await log.step(`verify ${path.basename(f)}`, () => checkEfiSignature(f, i.verifyWith!));
                if (!verdict.ok) throw new Error(`${f} is not signed by ${i.verifyWith} (${verdict.reason}); nodes trusting that certificate would refuse this OS release, so it was not published:\n${verdict.detail}`);
            }
        }
        const loaderConf = path.join(work, "loader.conf");
        fs.writeFileSync(loaderConf, renderLoaderConf());
        const files = containerFiles(i, loaderConf);
        const layoutDir = path.join(work, "layout");
        // The tarball is moved into outputDir only after the push: a failed push leaves the previous one.
        const result = await stageThenMove(
            i.outputDir,
            async (staging) => {
                const image = await log.step("write container image", () => writeOsContainer({ files, arch: i.arch, tarball: path.join(staging, `${i.name}.tar`), layoutDir }));
                if (!i.repository) return { image };
                const target = tagged(i.repository, i.tag);
                const digest = await log.step(`push ${target}`, () => pushLayout(layoutDir, image.tag, target, accessOf(i.registry)));
                if (digest !== image.manifestDigest) throw new Error(`${target} names ${digest} after the push, not the image written (${image.manifestDigest}); the registry rewrote it`);
                return { image, reference: pinned(i.repository, digest), taggedReference: target };
            },
            0o755,
        );
        if (result.reference) log.say(`published ${result.reference}`);
        return {
            ...i, path: tarballOf(i), sha256: result.image.tarballSha256, digest: result.image.manifestDigest, files: files.map((f) => f.path),
            reference: result.reference, taggedReference: result.taggedReference, drift: [], lastBuild: log.report(),
        } as Outputs;
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/** The OS as a container image kairos-agent upgrades from (AuroraBoot's `--output-type container`). */
export class OsRelease extends pulumi.dynamic.Resource {
    constructor(name: string, args: OsReleaseArgs, opts?: pulumi.CustomResourceOptions) {
        const outputs = registeredOutputs("OsRelease");
        const restoreStackTraces = withoutPromiseStackTraces();
        try {
            super(packageProvider(OS_RELEASE_TOKEN), name, { ...outputs, ...args }, opts, "kairos", "OsRelease");
        } finally {
            restoreStackTraces();
        }
    }
}

export interface OsRelease extends contract.OsReleaseOutputFields {}

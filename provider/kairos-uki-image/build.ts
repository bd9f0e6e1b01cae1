// Building KairosUkiImage: the image's rootfs, initrd, UKIs, boot entries and systemd-boot, signed and
// checked for size.
import * as fs from "fs";
import * as path from "path";
import { BuildLog } from "../build-log";
import { isInside, sha256File } from "../toolkit/files";
import { HOST_EFI_DIR } from "../toolkit/tools";
import { replaceDirectory, withScratch } from "../output/staging";
import { materializeSource, sourceDigest, specialFilesError } from "../toolkit/source/extension-source";
import { inspectKairosRootfs, prepareUkiRootfs, saveUkiInputs, ukiRootfsOverlay } from "../toolkit/boot/kairos-rootfs";
import { CpioOptions, INITRD_EXCLUDES, buildInitrd } from "../toolkit/boot/initrd";
import { InitrdCache } from "../output/initrd-cache";
import { BootEntry, LoaderEntryKey, loaderEntryFileName, planBootEntries } from "../toolkit/boot/boot-entries";
import { buildUki, readLoaderInfo, signEfi, verifyEfi } from "../toolkit/boot/uki";
import { largestContributors } from "../toolkit/size-report";
import { CheckedInputs, MB, OWNER_MARKER, OWNER_TEXT, OWN_ENTRY, Outputs, RUNTIME_DIRS, SDBOOT_IN_IMAGE, STUB_IN_IMAGE, UKI_KEY_MIN_SYSTEMD_BOOT, UkiOutput, renderedEntry } from "./uki-image";

export async function build(inputs: CheckedInputs, log: BuildLog): Promise<Outputs> {
    return withScratch(inputs.outputDir, "uki", async (work) => {
        // A local folder is archived where it is, with the UKI's changes as an overlay: a copy of it (hard
        // links) would cost as much as the rest of a rebuild, removing it again as much, and every link made
        // and removed changes the files' ctime, so no file digest the tree digest remembers would hold.
        const inPlace = await log.step("read OS image", async () => {
            const found = inputs.source.dir ? inPlaceRootfs(inputs.source.dir, inputs.outputDir, work) : undefined;
            if (!found) await materializeSource(inputs.source, inputs.sourceDigest, path.join(work, "rootfs"), { layers: "all", arch: "amd64", workDir: work, skipTop: RUNTIME_DIRS });
            return found;
        });
        const rootfs = inPlace?.rootfs ?? path.join(work, "rootfs");
        const info = inspectKairosRootfs(rootfs);
        const stub = pickEfiBinary(rootfs, STUB_IN_IMAGE, "linuxx64.efi.stub");
        const sdboot = pickEfiBinary(rootfs, SDBOOT_IN_IMAGE, "systemd-bootx64.efi");
        // Copied out first: the rootfs loses /boot and the stub must not be read from the initrd tree.
        const kernel = path.join(work, "vmlinuz");
        const osRelease = path.join(work, "os-release");
        fs.copyFileSync(stub.path, path.join(work, "stub.efi"));
        fs.copyFileSync(sdboot.path, path.join(work, "systemd-boot.efi"));
        if (inPlace) saveUkiInputs(rootfs, { saveKernelTo: kernel, saveOsReleaseTo: osRelease });
        else prepareUkiRootfs(rootfs, { saveKernelTo: kernel, saveOsReleaseTo: osRelease });
        const initrd = path.join(work, "initrd.zst");
        const initrdInfo = await log.step("build initrd", () => buildInitrd(rootfs, initrd, { level: inputs.initrdCompressionLevel, windowLog: inputs.initrdWindowLog, ...inPlace?.cpio }, new InitrdCache()));
        if (initrdInfo.reused) log.say(`initrd reused: this OS tree was compressed at level ${inputs.initrdCompressionLevel} before (sha256 ${initrdInfo.sha256.slice(0, 12)}…, verified)`);
        checkSize(inputs, rootfs, [{ name: ".linux (kernel)", bytes: fs.statSync(kernel).size }, { name: ".initrd", bytes: initrdInfo.size }, { name: "stub", bytes: fs.statSync(stub.path).size }]);

        const entries = planBootEntries({ extendCmdline: inputs.extendCmdline, extraCmdlines: inputs.extraCmdlines, singleEntries: inputs.singleEntries, bootTitle: inputs.bootTitle });
        const sdbootInfo = readLoaderInfo(path.join(work, "systemd-boot.efi"));
        const entryKey: LoaderEntryKey = inputs.loaderEntryKey !== "auto" ? inputs.loaderEntryKey : (sdbootInfo?.major ?? 0) >= UKI_KEY_MIN_SYSTEMD_BOOT ? "uki" : "efi";

        refuseForeignFiles(inputs.outputDir);
        return await replaceDirectory(inputs.outputDir, async (staging) => {
            fs.writeFileSync(path.join(staging, OWNER_MARKER), OWNER_TEXT);
            const ukis: UkiOutput[] = [];
            const pcr11: Outputs["pcr11"] = {};
            fs.mkdirSync(path.join(staging, "entries"));
            for (const entry of entries) {
                const out = path.join(staging, `${entry.fileName}.efi`);
                const built = await log.step(`assemble and sign ${entry.fileName}.efi`, () =>
                    buildUki({
                        stub: path.join(work, "stub.efi"), kernel, initrd, initrdSha256: initrdInfo.sha256, osRelease, cmdline: entry.cmdline, uname: info.uname, splash: inputs.splash,
                        pcrPrivateKey: inputs.pcrKey, sbKey: inputs.signing.key, sbCert: inputs.signing.certificate, out, workDir: path.join(work, `uki-${entry.fileName}`),
                    }),
                );
                checkBuiltSize(inputs, entry, built.size, built.sections);
                const entryFile = path.join(staging, "entries", loaderEntryFileName(entry));
                fs.writeFileSync(entryFile, renderedEntry(inputs, entry, entryKey, info.kairosRelease));
                pcr11[entry.fileName] = built.pcr11;
                ukis.push({
                    fileName: entry.fileName, path: path.join(inputs.outputDir, `${entry.fileName}.efi`), sha256: built.sha256, size: built.size,
                    cmdline: entry.cmdline, title: entry.title, entryPath: path.join(inputs.outputDir, "entries", path.basename(entryFile)),
                });
            }
            const bootx64 = path.join(staging, "BOOTX64.EFI");
            await log.step("sign systemd-boot", async () => {
                await signEfi(path.join(work, "systemd-boot.efi"), bootx64, inputs.signing.key, inputs.signing.certificate);
                if (!(await verifyEfi(bootx64, inputs.signing.certificate))) throw new Error(`sbverify refused the signed systemd-boot ${bootx64}`);
            });
            const systemdBootPath = path.join(inputs.outputDir, "BOOTX64.EFI");
            return {
                ...inputs,
                ukis,
                systemdBoot: { path: systemdBootPath, sha256: await sha256File(bootx64), version: sdbootInfo?.version ?? "unknown", origin: sdboot.origin },
                bootFiles: { efiFiles: ukis.map((u) => u.path), loaderEntries: ukis.map((u) => u.entryPath), systemdBoot: systemdBootPath },
                stubOrigin: stub.origin,
                pcr11,
                kairosRelease: info.kairosRelease,
                entryKey,
                drift: [],
                lastBuild: log.report(),
            };
        });
    });
}

/**
 * The cpio options that archive a local folder in place as prepareUkiRootfs would change a copy of it,
 * or undefined when a copy is needed: the changes pass through a symlink, or the output folder (and so the
 * scratch folder beside it) lies inside the folder, where the archive would take it in.
 */
function inPlaceRootfs(dir: string, outputDir: string, work: string): { rootfs: string; cpio: CpioOptions } | undefined {
    const rootfs = path.resolve(dir);
    if ([outputDir, work].some((d) => isInside(rootfs, path.resolve(d)))) return undefined;
    const overlay = ukiRootfsOverlay(rootfs);
    if (!overlay) return undefined;
    return { rootfs, cpio: { overlay, digestCache: true, refuseSpecial: (names) => specialFilesError(rootfs, names) } };
}

/** A rebuild replaces the whole folder: refuse if it holds anything KairosUkiImage did not make. */
export function refuseForeignFiles(dir: string): void {
    if (!fs.existsSync(dir)) return;
    const names = fs.readdirSync(dir);
    if (names.length === 0) return;
    const foreign = fs.existsSync(path.join(dir, OWNER_MARKER)) ? names.filter((n) => !OWN_ENTRY.test(n)) : names;
    if (foreign.length > 0) {
        throw new Error(`outputDir ${dir} holds files KairosUkiImage did not make (${foreign.slice(0, 5).join(", ")}${foreign.length > 5 ? ", …" : ""}); it rebuilds that folder whole, so give it an empty folder of its own`);
    }
}

/** The image's own systemd EFI binary when it has one (AuroraBoot --sdboot-in-source), else the host's. */
function pickEfiBinary(rootfs: string, inImage: string, hostName: string): { path: string; origin: "image" | "host" } {
    const own = path.join(rootfs, inImage);
    if (fs.existsSync(own) && fs.lstatSync(own).isFile()) return { path: own, origin: "image" };
    const host = path.join(HOST_EFI_DIR, hostName);
    if (!fs.existsSync(host)) throw new Error(`the image has no /${inImage} and the host has no ${host}; install the Debian package systemd-boot-efi`);
    return { path: host, origin: "host" };
}

/** Fails before assembling when the kernel + initrd alone are over the limit (AuroraBoot never checked). */
function checkSize(inputs: CheckedInputs, rootfs: string, parts: { name: string; bytes: number }[]): void {
    const total = parts.reduce((a, p) => a + p.bytes, 0);
    if (total <= inputs.maxUkiSizeMB * MB) return;
    // What the initrd leaves out (a local folder archived in place still has its /boot) is no candidate.
    throw new Error(sizeMessage(inputs, total, parts, largestContributors(rootfs, 8, INITRD_EXCLUDES)));
}

function checkBuiltSize(inputs: CheckedInputs, entry: BootEntry, size: number, sections: { name: string; size: number }[]): void {
    if (size <= inputs.maxUkiSizeMB * MB) return;
    throw new Error(sizeMessage(inputs, size, sections.map((s) => ({ name: s.name, bytes: s.size })), [], `${entry.fileName}.efi`));
}

function sizeMessage(inputs: CheckedInputs, total: number, parts: { name: string; bytes: number }[], inTree: { path: string; bytes: number }[], what = "the UKI"): string {
    const mb = (b: number) => `${(b / MB).toFixed(1)} MB`;
    const lines = [...parts].sort((a, b) => b.bytes - a.bytes).map((p) => `  ${p.name}: ${mb(p.bytes)}`);
    const tree = inTree.map((t) => `  /${t.path}: ${mb(t.bytes)} uncompressed`);
    return (
        `${what} would be ${mb(total)}, over maxUkiSizeMB (${inputs.maxUkiSizeMB} MB); firmware has been seen refusing EFI files from 800 MB up.\n` +
        `Largest parts:\n${lines.join("\n")}` +
        (tree.length ? `\nLargest folders in the OS image (candidates for a system extension):\n${tree.join("\n")}` : "")
    );
}

// Benchmark anchor: systemd's own UKI builder, `ukify build` 257 (run in the bench rootfs, chroot.ts),
// against our buildUki, from the same inputs: the bench OS's kernel, its os-release and kernel release,
// one command line, the same systemd-stub 257, and the same zstd initrd, compressed once beforehand
// (neither side's time includes compressing it). Both sides sign with the same db key and embed a PCR 11
// policy signed with the same PCR key for the same phases.
//
// ukify options, and why:
//   --stub           the rootfs's linuxx64.efi.stub, the file buildUki is given;
//   --uname          the release we read from the bzImage, so ukify does not parse the kernel for it;
//   --signtool=sbsign --secureboot-private-key --secureboot-certificate   the db pair;
//   --no-sign-kernel ukify would otherwise sbsign the kernel inside the UKI too (it is not signed by our
//                    db key), which buildUki does not do;
//   --pcr-private-key --pcr-public-key --pcr-banks=sha256 --phases  the .pcrsig buildUki makes (ukify runs
//                    systemd-measure sign for it); --pcr-public-key also gives the same .pcrpkey bytes.
// ukify adds no other section here (it merges the stub's .sbat with the kernel's, which has none).
//
// Then the agreement checks, which fail the bench when they do not hold: `ukify inspect` (pefile, an
// independent PE reader) lists our UKI's sections with the sizes and sha256 of the inputs buildUki was
// given, and `systemd-measure calculate` 257 from those inputs gives the PCR 11 values buildUki predicted
// for every phase; our .pcrsig is what `systemd-measure sign` writes for them, byte for byte.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../provider/toolkit/run";
import { sha256File, sha256Hex } from "../provider/toolkit/files";
import { buildInitrd } from "../provider/toolkit/boot/initrd";
import { InitrdCache } from "../provider/output/initrd-cache";
import { inspectKairosRootfs, prepareUkiRootfs } from "../provider/toolkit/boot/kairos-rootfs";
import { buildUki, readPeSections } from "../provider/toolkit/boot/uki";
import { readSectionData } from "../provider/toolkit/boot/pe";
import { DEFAULT_PHASES, loadRsaPrivateKey, pcrPublicKeyPem } from "../provider/toolkit/boot/pcr11";
import { runInRootfs } from "./chroot";
import { kairosTree } from "./kairos-tree";
import { median, timed } from "./timing";

const STUB = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const MEASURE = "/usr/lib/systemd/systemd-measure";
const CMDLINE = "console=ttyS0 rd.immucore.uki";

export interface UkifyBench {
    oursSeconds: number;
    ukifySeconds: number;
    /** ours / ukify. */
    ratio: number;
    ukiBytes: number;
    ukifyBytes: number;
    initrdBytes: number;
    ukifyVersion: string;
    /** Each check that held ("agree"); a disagreement throws instead. */
    checks: { inspect: string; measure: string; pcrsig: string };
}

export class UkifyDisagreement extends Error {}

/** Times ours and ukify `runs` times each (median), then checks our UKI with ukify inspect and systemd-measure. Needs root. */
export async function ukifyBench(benchRootfs: string, runs = 1): Promise<UkifyBench> {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "kairos-bench-ukify-"));
    try {
        const inDir = path.join(work, "in");
        const outDir = path.join(work, "out");
        fs.mkdirSync(inDir);
        fs.mkdirSync(outDir);
        const f = (name: string) => path.join(inDir, name);

        // The inputs, as KairosUkiImage makes them from this OS (the initrd from the user's cache when it was made before).
        const tree = kairosTree(benchRootfs, path.join(work, "os"));
        const uname = inspectKairosRootfs(tree).uname;
        if (!uname) throw new Error("the bench OS's kernel has no readable release");
        prepareUkiRootfs(tree, { saveKernelTo: f("vmlinuz"), saveOsReleaseTo: f("os-release") });
        const initrd = await buildInitrd(tree, f("initrd.zst"), {}, new InitrdCache());
        fs.rmSync(path.join(work, "os"), { recursive: true, force: true });
        fs.writeFileSync(f("cmdline"), CMDLINE);
        fs.copyFileSync(path.join(benchRootfs, STUB), f("stub.efi"));
        const keys = path.join(work, "keys");
        fs.mkdirSync(keys, { mode: 0o700 });
        const db = { key: path.join(keys, "db.key"), cert: path.join(keys, "db.crt") };
        const pcrKey = path.join(keys, "pcr.pem");
        const ssl = { env: { OPENSSL_CONF: "/dev/null" } };
        await run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30", "-subj", "/CN=bench db/", "-keyout", db.key, "-out", db.cert], ssl);
        await run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pcrKey], ssl);
        fs.writeFileSync(f("pcrpkey.pem"), pcrPublicKeyPem(loadRsaPrivateKey(pcrKey)));

        const ours = path.join(outDir, "ours.efi");
        const oursTimes: number[] = [];
        let built: Awaited<ReturnType<typeof buildUki>> | undefined;
        for (let i = 0; i < runs; i++) {
            oursTimes.push(await timed(async () => {
                built = await buildUki({
                    stub: f("stub.efi"), kernel: f("vmlinuz"), initrd: f("initrd.zst"), osRelease: f("os-release"), cmdline: CMDLINE, uname,
                    pcrPrivateKey: pcrKey, sbKey: db.key, sbCert: db.cert, out: ours, workDir: path.join(work, "uki-work"),
                });
            }));
        }

        const chroot = (argv: string[], binds = [{ name: "in", dir: inDir }, { name: "out", dir: outDir, writable: true }]) =>
            runInRootfs({
                rootfs: benchRootfs, needs: ["usr/bin/ukify", MEASURE.slice(1), STUB], binds,
                copies: { name: "keys", files: { "db.key": db.key, "db.crt": db.cert, "pcr.pem": pcrKey } }, argv,
            });
        const ukifyVersion = (await chroot(["ukify", "--version"])).stdout.trim();
        // One --phases per --pcr-private-key: its phase paths, space-separated.
        const phases = [`--phases=${DEFAULT_PHASES.join(" ")}`];
        const ukifyTimes: number[] = [];
        for (let i = 0; i < runs; i++) {
            ukifyTimes.push(await timed(() => chroot([
                "ukify", "build",
                "--linux=/tmp/in/vmlinuz", "--initrd=/tmp/in/initrd.zst", "--os-release=@/tmp/in/os-release", "--cmdline=@/tmp/in/cmdline",
                `--uname=${uname}`, `--stub=/${STUB}`,
                "--signtool=sbsign", "--secureboot-private-key=/tmp/keys/db.key", "--secureboot-certificate=/tmp/keys/db.crt", "--no-sign-kernel",
                "--pcr-private-key=/tmp/keys/pcr.pem", "--pcr-public-key=/tmp/in/pcrpkey.pem", "--pcr-banks=sha256", ...phases,
                "--output=/tmp/out/ukify.efi",
            ])));
        }
        if (!built) throw new Error("no UKI was built");

        // The checks: run on our UKI, from the inputs.
        const stubSbat = readSectionData(f("stub.efi"), readPeSections(f("stub.efi")), ".sbat");
        if (stubSbat) fs.writeFileSync(f("sbat"), stubSbat);
        fs.writeFileSync(f("uname"), uname);
        const pcrsig = fs.readFileSync(path.join(work, "uki-work", "pcrsig.json"));
        const expected: Record<string, { size: number; sha256: string }> = {
            ".osrel": { size: fs.statSync(f("os-release")).size, sha256: await sha256File(f("os-release")) },
            ".cmdline": { size: Buffer.byteLength(CMDLINE), sha256: sha256Hex(CMDLINE) },
            ".uname": { size: Buffer.byteLength(uname), sha256: sha256Hex(uname) },
            ".pcrsig": { size: pcrsig.length, sha256: sha256Hex(pcrsig) },
            ".pcrpkey": { size: fs.statSync(f("pcrpkey.pem")).size, sha256: await sha256File(f("pcrpkey.pem")) },
            ".initrd": { size: initrd.size, sha256: initrd.sha256 },
            ".linux": { size: fs.statSync(f("vmlinuz")).size, sha256: await sha256File(f("vmlinuz")) },
        };
        const inspected = JSON.parse((await chroot(["ukify", "inspect", "/tmp/out/ours.efi", "--json=short"])).stdout) as Record<string, { size: number; sha256: string }>;
        const problems = { inspect: [] as string[], measure: [] as string[], pcrsig: [] as string[] };
        for (const [name, want] of Object.entries(expected)) {
            const got = inspected[name];
            if (!got) problems.inspect.push(`ukify inspect finds no ${name} in our UKI`);
            else if (got.size !== want.size || got.sha256 !== want.sha256) problems.inspect.push(`ukify inspect: our ${name} is ${got.size} bytes, sha256 ${got.sha256}; its input is ${want.size} bytes, sha256 ${want.sha256}`);
        }
        const extra = Object.keys(inspected).filter((n) => n.startsWith(".") && !(n in expected) && !readPeSections(f("stub.efi")).sections.some((s) => s.name === n));
        if (extra.length) problems.inspect.push(`ukify inspect finds sections we did not add: ${extra.join(", ")}`);

        const measureArgs = [
            "--linux=/tmp/in/vmlinuz", "--osrel=/tmp/in/os-release", "--cmdline=/tmp/in/cmdline", "--initrd=/tmp/in/initrd.zst",
            "--uname=/tmp/in/uname", ...(stubSbat ? ["--sbat=/tmp/in/sbat"] : []), "--pcrpkey=/tmp/in/pcrpkey.pem",
            "--bank=sha256", ...DEFAULT_PHASES.map((p) => `--phase=${p}`), "--json=short",
        ];
        const calculated = JSON.parse((await chroot([MEASURE, "calculate", ...measureArgs])).stdout) as Record<string, { phase?: string; pcr: number; hash: string }[]>;
        for (const phase of DEFAULT_PHASES) {
            const theirs = calculated.sha256?.find((e) => (e.phase ?? "") === phase)?.hash;
            if (theirs !== built.pcr11[phase]) problems.measure.push(`systemd-measure calculate: PCR 11 after ${phase} is ${theirs}, we predicted ${built.pcr11[phase]}`);
        }
        const signed = (await chroot([MEASURE, "sign", ...measureArgs, "--private-key=/tmp/keys/pcr.pem", "--public-key=/tmp/in/pcrpkey.pem"])).stdout;
        if (signed !== pcrsig.toString()) problems.pcrsig.push(`systemd-measure sign writes another .pcrsig than ours:\n  theirs ${signed.trim()}\n  ours   ${pcrsig.toString().trim()}`);

        const all = [...problems.inspect, ...problems.measure, ...problems.pcrsig];
        if (all.length) throw new UkifyDisagreement(`our UKI disagrees with systemd's tools:\n  ${all.join("\n  ")}`);
        const oursSeconds = median(oursTimes);
        const ukifySeconds = median(ukifyTimes);
        return {
            oursSeconds, ukifySeconds, ratio: oursSeconds / ukifySeconds,
            ukiBytes: built.size, ukifyBytes: fs.statSync(path.join(outDir, "ukify.efi")).size, initrdBytes: initrd.size, ukifyVersion,
            checks: { inspect: "agree", measure: "agree", pcrsig: "agree" },
        };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

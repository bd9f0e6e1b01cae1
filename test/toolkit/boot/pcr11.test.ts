// PCR 11 predictions and .pcrsig, cross-checked against systemd-measure 252: `calculate` (no TPM needed)
// for every phase and bank, and `sign` run against a software TPM used only as a calculator.
import * as assert from "assert";
import { createHash, createPublicKey, verify as rsaVerify } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { run } from "../../../provider/toolkit/run";
import {
    DEFAULT_PHASES,
    GO_UKIFY_MEASURED_SECTIONS,
    PcrBank,
    SectionContent,
    loadRsaPrivateKey,
    pcrPolicyDigest,
    pcrPublicKeyPem,
    predictPcr11,
    Pcr11Error,
    signPcr11,
    verifyPcr11Signature,
} from "../../../provider/toolkit/boot/pcr11";
import { tempDir } from "../../helpers/oci-fixtures";
import { Swtpm, startSwtpm } from "../../helpers/swtpm";

const MEASURE = "/usr/lib/systemd/systemd-measure";
const ALL_BANKS: PcrBank[] = ["sha1", "sha256", "sha384", "sha512"];

/** systemd-measure's option for each section it knows. */
const OPTION: Record<string, string> = {
    ".linux": "--linux", ".osrel": "--osrel", ".cmdline": "--cmdline", ".initrd": "--initrd",
    ".splash": "--splash", ".dtb": "--dtb", ".pcrpkey": "--pcrpkey",
};

function measureArgs(sections: SectionContent[], banks: PcrBank[]): string[] {
    return [...sections.map((s) => `${OPTION[s.name]}=${s.file}`), ...banks.map((b) => `--bank=${b}`)];
}

/** `systemd-measure calculate --json=short` as bank -> phase -> hex ("" for the stub-only value). */
async function systemdCalculate(sections: SectionContent[], banks: PcrBank[], phases?: string[]): Promise<Record<string, Record<string, string>>> {
    const argv = [MEASURE, "calculate", "--json=short", ...measureArgs(sections, banks), ...(phases ?? []).map((p) => `--phase=${p}`)];
    const doc = JSON.parse((await run(argv)).stdout) as Record<string, { phase?: string; pcr: number; hash: string }[]>;
    const out: Record<string, Record<string, string>> = {};
    for (const [bank, list] of Object.entries(doc)) {
        out[bank] = {};
        for (const e of list) {
            assert.strictEqual(e.pcr, 11);
            out[bank][e.phase ?? ""] = e.hash;
        }
    }
    return out;
}

describe("pcr11", () => {
    let tmp: string;
    let keyFile: string;
    let pubFile: string;
    let full: SectionContent[];
    const f = (name: string, content: string | Buffer) => {
        const p = path.join(tmp, name);
        fs.writeFileSync(p, content);
        return p;
    };

    before(async () => {
        tmp = tempDir("kairos-pcr11-");
        keyFile = path.join(tmp, "pcr.key");
        await run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", keyFile], { env: { OPENSSL_CONF: "/dev/null" } });
        pubFile = f("pcr.pub", pcrPublicKeyPem(loadRsaPrivateKey(keyFile)));
        const noise = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + seed * 7 + (i >> 5)) & 0xff));
        full = [
            { name: ".linux", file: f("vmlinuz", noise(200_000, 1)) },
            { name: ".osrel", file: f("osrel", 'ID=kairos\nPRETTY_NAME="Kairos test"\n') },
            { name: ".cmdline", file: f("cmdline", "console=ttyS0 rd.immucore.uki install-mode") },
            { name: ".initrd", file: f("initrd", noise(1_500_000, 2)) },
            { name: ".splash", file: f("splash.bmp", noise(5000, 3)) },
            { name: ".pcrpkey", file: pubFile },
        ];
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it("predicts what systemd-measure calculate prints, for every bank and phase", async () => {
        const phases = ["", ...DEFAULT_PHASES];
        for (const sections of [full.slice(0, 1), full]) {
            const ours = await predictPcr11(sections, { banks: ALL_BANKS, phases });
            const theirs = await systemdCalculate(sections, ALL_BANKS, [":", ...DEFAULT_PHASES]);
            assert.deepStrictEqual(ours, theirs);
            assert.strictEqual(Object.keys(ours.sha256).length, 5);
        }
    });

    it("takes a section's given sha256 for the sha256 bank (what systemd-measure computes from the file), and reads the file for other banks", async () => {
        const initrd = full.find((s) => s.name === ".initrd")!;
        const given = createHash("sha256").update(fs.readFileSync(initrd.file!)).digest("hex");
        const withDigest = full.map((s) => (s === initrd ? { ...s, sha256: given } : s));
        assert.deepStrictEqual(await predictPcr11(withDigest), await systemdCalculate(full, ["sha256"]));
        // A wrong digest shows in sha256 only: proof that it was taken, not recomputed; sha384 reads the file.
        const wrong = full.map((s) => (s === initrd ? { ...s, sha256: "00".repeat(32) } : s));
        const both = await predictPcr11(wrong, { banks: ["sha256", "sha384"] });
        assert.deepStrictEqual(both.sha384, (await predictPcr11(full, { banks: ["sha384"] })).sha384);
        assert.notDeepStrictEqual((await predictPcr11(wrong)).sha256, (await predictPcr11(full)).sha256);
        await assert.rejects(predictPcr11(full.map((s) => (s === initrd ? { ...s, sha256: "xyz" } : s))), /is not a sha256/);
    });

    it("skips empty sections and ignores sections the stub does not measure, as the stub does", async () => {
        const withEmpty = [...full.slice(0, 3), { name: ".initrd", file: f("empty", "") }];
        assert.deepStrictEqual(await predictPcr11(withEmpty), await systemdCalculate(withEmpty, ["sha256"]));
        const withUname = [...full, { name: ".uname", data: Buffer.from("6.1.0-56-amd64") }];
        assert.deepStrictEqual(await predictPcr11(withUname), await predictPcr11(full), "systemd 252 does not measure .uname");
        const ukify = await predictPcr11(withUname, { measuredSections: GO_UKIFY_MEASURED_SECTIONS });
        assert.notDeepStrictEqual(ukify, await predictPcr11(full), "go-ukify's list measures .uname");
    });

    it("computes the TPM2 PolicyPCR digest and PKCS#1 v1.5 signatures that verify", async () => {
        const signed = await signPcr11(full, keyFile, { banks: ["sha256", "sha1"] });
        assert.deepStrictEqual(Object.keys(signed.document), ["sha1", "sha256"], "banks in systemd's order");
        const der = createPublicKey(fs.readFileSync(pubFile)).export({ type: "pkcs1", format: "der" });
        for (const [bank, entries] of Object.entries(signed.document)) {
            assert.strictEqual(entries.length, 4);
            entries.forEach((e, i) => {
                const pcr = Buffer.from(signed.values[bank][DEFAULT_PHASES[i]], "hex");
                assert.deepStrictEqual(e.pcrs, [11]);
                assert.strictEqual(e.pkfp, createHash("sha256").update(der).digest("hex"));
                assert.strictEqual(e.pol, pcrPolicyDigest(bank as PcrBank, pcr).toString("hex"));
                assert.ok(rsaVerify(bank, Buffer.from(e.pol, "hex"), createPublicKey(fs.readFileSync(pubFile)), Buffer.from(e.sig, "base64")));
            });
        }
        assert.ok(signed.json.endsWith("}]}\n"));
        const other = path.join(tmp, "other.key");
        await run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", other], { env: { OPENSSL_CONF: "/dev/null" } });
        await assert.rejects(signPcr11(full, other), /does not hold the public half/);
    });

    it("verifyPcr11Signature takes what signPcr11 signs and refuses another key, another section or a changed policy", async () => {
        const pub = createPublicKey(fs.readFileSync(pubFile));
        const signed = await signPcr11(full, keyFile, { banks: ["sha256", "sha1"] });
        const { banks, perBank, base } = await verifyPcr11Signature(signed.document, full, pub);
        assert.deepStrictEqual(banks, ["sha1", "sha256"]);
        assert.deepStrictEqual(Object.fromEntries([...perBank.get("sha256")!].map(([p, v]) => [p, v.toString("hex")])), signed.values.sha256);
        assert.strictEqual(base.get("sha256")!.toString("hex"), signed.stubOnly.sha256);
        const otherCmdline = full.map((x) => (x.name === ".cmdline" ? { name: ".cmdline", file: f("cmdline2", "console=ttyS0 init=/bin/sh") } : x));
        await assert.rejects(verifyPcr11Signature(signed.document, otherCmdline, pub), (e: Error) => e instanceof Pcr11Error && /policy for phase "enter-initrd" \(sha1\) is not the PCR 11 its sections give/.test(e.message));
        const otherKey = path.join(tmp, "other-verify.key");
        await run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", otherKey], { env: { OPENSSL_CONF: "/dev/null" } });
        await assert.rejects(verifyPcr11Signature(signed.document, full, createPublicKey(loadRsaPrivateKey(otherKey))), /its \.pcrsig is signed by key [0-9a-f]{64}, not pcrKey/);
        const forged = JSON.parse(signed.json);
        forged.sha256[0].sig = forged.sha256[1].sig;
        await assert.rejects(verifyPcr11Signature(forged, full, pub), /signature for phase "enter-initrd" \(sha256\) does not verify with pcrKey/);
        await assert.rejects(verifyPcr11Signature({}, full, pub), /names banks none/);
    });

    describe("against systemd-measure sign on a software TPM", () => {
        let tpm: Swtpm | undefined;
        before(async function () {
            this.timeout(30000);
            tpm = await startSwtpm(path.join(tmp, "swtpm"));
        });
        after(() => tpm?.stop());

        it("writes the same .pcrsig JSON, byte for byte, for each bank", async () => {
            for (const banks of [["sha256"], ["sha1", "sha256", "sha384", "sha512"]] as PcrBank[][]) {
                const theirs = await run([MEASURE, "sign", `--tpm2-device=${tpm!.device}`, ...measureArgs(full, banks), `--private-key=${keyFile}`, `--public-key=${pubFile}`]);
                const ours = await signPcr11(full, keyFile, { banks });
                assert.strictEqual(ours.json, theirs.stdout, `banks ${banks.join(",")}`);
            }
        });

        it("matches for a minimal UKI (kernel only) and a single phase", async () => {
            const sections = full.slice(0, 1);
            const theirs = await run([MEASURE, "sign", `--tpm2-device=${tpm!.device}`, ...measureArgs(sections, ["sha256"]), "--phase=enter-initrd", `--private-key=${keyFile}`, `--public-key=${pubFile}`]);
            const ours = await signPcr11(sections, keyFile, { phases: ["enter-initrd"] });
            assert.strictEqual(ours.json, theirs.stdout);
        });
    });
});

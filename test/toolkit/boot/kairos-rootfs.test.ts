// The Kairos rootfs contracts build-uki relies on, and the UKI-specific rootfs changes.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { KairosRootfsError, bzImageVersion, inspectKairosRootfs, prepareUkiRootfs, resolveInRoot } from "../../../provider/toolkit/boot/kairos-rootfs";
import { tempDir } from "../../helpers/oci-fixtures";
import { fakeBzImage } from "../../helpers/uki-fixtures";

interface RootfsSpec {
    kairosRelease?: string | null;
    osRelease?: string;
    kernel?: "absolute-link" | "relative-link" | "file" | "dangling" | null;
    immucore?: boolean;
}

function makeRootfs(root: string, spec: RootfsSpec = {}): string {
    const p = (...x: string[]) => path.join(root, ...x);
    fs.mkdirSync(p("etc"), { recursive: true });
    fs.mkdirSync(p("usr/lib"), { recursive: true });
    fs.mkdirSync(p("usr/bin"), { recursive: true });
    fs.mkdirSync(p("boot"), { recursive: true });
    if (spec.kairosRelease !== null) fs.writeFileSync(p("etc/kairos-release"), spec.kairosRelease ?? 'KAIROS_FLAVOR="debian"\nKAIROS_RELEASE="v3.4.2"\nKAIROS_VERSION="v3.4.2"\n');
    fs.writeFileSync(p("usr/lib/os-release"), spec.osRelease ?? 'NAME="Debian"\nID=debian\n');
    fs.symlinkSync("/usr/lib/os-release", p("etc/os-release")); // absolute: must resolve inside the rootfs
    if (spec.immucore !== false) fs.writeFileSync(p("usr/bin/immucore"), "#!/bin/sh\n", { mode: 0o755 });
    const kernel = spec.kernel === undefined ? "absolute-link" : spec.kernel;
    if (kernel !== null) fs.writeFileSync(p("boot/vmlinuz-6.1.0-56-amd64"), fakeBzImage("6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC"));
    if (kernel === "absolute-link") fs.symlinkSync("/boot/vmlinuz-6.1.0-56-amd64", p("boot/vmlinuz"));
    if (kernel === "relative-link") fs.symlinkSync("../elsewhere/vmlinuz-6.1.0-56-amd64", p("boot/vmlinuz")); // only the basename counts
    if (kernel === "file") fs.copyFileSync(p("boot/vmlinuz-6.1.0-56-amd64"), p("boot/vmlinuz"));
    if (kernel === "dangling") {
        fs.rmSync(p("boot/vmlinuz-6.1.0-56-amd64"));
        fs.symlinkSync("vmlinuz-6.1.0-56-amd64", p("boot/vmlinuz"));
    }
    return root;
}

function problemsOf(fn: () => unknown): string[] {
    try {
        fn();
    } catch (e) {
        assert.ok(e instanceof KairosRootfsError, String(e));
        return e.problems;
    }
    assert.fail("expected a KairosRootfsError");
}

describe("kairos rootfs", () => {
    let tmp: string;
    let n = 0;
    const fresh = (spec?: RootfsSpec) => makeRootfs(path.join(tmp, `r${++n}`), spec);
    before(() => {
        tmp = tempDir("kairos-rootfs-");
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it("reads the release, the kernel behind /boot/vmlinuz and its version", () => {
        const root = fresh();
        const info = inspectKairosRootfs(root);
        assert.deepStrictEqual(info, {
            kairosRelease: "v3.4.2",
            releaseFile: "/etc/kairos-release",
            kernelPath: path.join(root, "boot/vmlinuz-6.1.0-56-amd64"),
            uname: "6.1.0-56-amd64",
            osReleasePath: path.join(root, "usr/lib/os-release"),
        });
    });

    it("looks up only the basename of the vmlinuz link in /boot, and takes a plain file", () => {
        assert.strictEqual(inspectKairosRootfs(fresh({ kernel: "relative-link" })).kernelPath, path.join(tmp, `r${n}`, "boot/vmlinuz-6.1.0-56-amd64"));
        assert.strictEqual(inspectKairosRootfs(fresh({ kernel: "file" })).kernelPath, path.join(tmp, `r${n}`, "boot/vmlinuz"));
    });

    it("falls back to os-release only when kairos-release does not exist", () => {
        const info = inspectKairosRootfs(fresh({ kairosRelease: null, osRelease: 'NAME="Kairos"\nKAIROS_RELEASE="v3.5.0-rc1"\n' }));
        assert.deepStrictEqual([info.kairosRelease, info.releaseFile], ["v3.5.0-rc1", "/etc/os-release"]);
        const problems = problemsOf(() => inspectKairosRootfs(fresh({ kairosRelease: 'KAIROS_FLAVOR="x"\n', osRelease: 'KAIROS_RELEASE="v1"\n' })));
        assert.deepStrictEqual(problems, ['/etc/kairos-release has no KAIROS_RELEASE="…" line']);
    });

    it("lists every broken contract in one error", () => {
        const root = fresh({ kairosRelease: "KAIROS_RELEASE=v3.4.2\n", kernel: null, immucore: false });
        fs.rmSync(path.join(root, "usr/lib/os-release"));
        const problems = problemsOf(() => inspectKairosRootfs(root));
        assert.strictEqual(problems.length, 4, problems.join("\n"));
        assert.match(problems[0], /KAIROS_RELEASE in \/etc\/kairos-release is not double-quoted \(KAIROS_RELEASE=v3\.4\.2\)/);
        assert.match(problems[1], /missing \/boot\/vmlinuz/);
        assert.match(problems[2], /missing \/usr\/bin\/immucore/);
        assert.match(problems[3], /missing \/etc\/os-release/);
        assert.throws(() => inspectKairosRootfs(root), /is not a usable Kairos rootfs for a UKI:\n {2}- KAIROS_RELEASE/);
    });

    it("reports an empty release, a dangling kernel link and a missing release file", () => {
        assert.deepStrictEqual(problemsOf(() => inspectKairosRootfs(fresh({ kairosRelease: 'KAIROS_RELEASE=""\n' }))), ["KAIROS_RELEASE in /etc/kairos-release is empty"]);
        assert.match(problemsOf(() => inspectKairosRootfs(fresh({ kernel: "dangling" })))[0], /points to vmlinuz-6\.1\.0-56-amd64, but \/boot\/vmlinuz-6\.1\.0-56-amd64 is not a file/);
        const root = fresh({ kairosRelease: null });
        fs.rmSync(path.join(root, "usr/lib/os-release"));
        assert.match(problemsOf(() => inspectKairosRootfs(root))[0], /neither \/etc\/kairos-release nor \/etc\/os-release exists/);
    });

    it("reads no version from a kernel that is not an x86 bzImage", () => {
        const f = path.join(tmp, "Image");
        fs.writeFileSync(f, Buffer.alloc(0x1000, 1));
        assert.strictEqual(bzImageVersion(f), undefined);
        fs.writeFileSync(f, fakeBzImage("6.6.1"));
        assert.strictEqual(bzImageVersion(f), "6.6.1");
    });

    it("resolves links inside the rootfs, never above it", () => {
        const root = fresh();
        fs.symlinkSync("../../../../../etc/passwd", path.join(root, "etc/escape"));
        assert.strictEqual(resolveInRoot(root, "etc/escape"), path.join(root, "etc/passwd"));
        assert.strictEqual(resolveInRoot(root, "etc/os-release"), path.join(root, "usr/lib/os-release"));
    });

    it("prepares the rootfs as AuroraBoot does, with 0755 directories", () => {
        const root = fresh();
        fs.writeFileSync(path.join(root, "init"), "old init");
        const kernelCopy = path.join(tmp, "vmlinuz.copy");
        const old = process.umask(0o077);
        try {
            prepareUkiRootfs(root, { saveKernelTo: kernelCopy });
        } finally {
            process.umask(old);
        }
        assert.strictEqual(fs.readlinkSync(path.join(root, "init")), "/usr/bin/immucore");
        for (const d of ["oem", "efi", "usr/local", "usr/local/cloud-config"]) {
            assert.strictEqual(fs.statSync(path.join(root, d)).mode & 0o7777, 0o755, d);
        }
        assert.ok(!fs.existsSync(path.join(root, "boot")));
        assert.strictEqual(bzImageVersion(kernelCopy), "6.1.0-56-amd64");
        // a second run is harmless
        prepareUkiRootfs(root);
        assert.strictEqual(fs.readlinkSync(path.join(root, "init")), "/usr/bin/immucore");
    });
});

// The test OS (scripts/lib/test-os.ts, shared with the demo), packed as an OCI image layout for tests
// that exercise the real image source path.
import * as fs from "fs";
import * as path from "path";
import { BuiltImage, TarSpec, buildImage, makeLayer, writeOciLayout } from "./oci-fixtures";

export * from "../../scripts/lib/test-os";

export interface PackedTestOs {
    layoutDir: string;
    /** The image name in the layout's index. */
    name: string;
    image: BuiltImage;
}

/** The parts of the tree that go into the second layer (the "Kairos" bits); the rest is the base layer. */
const TOP_LAYER = ["etc", "usr/bin/immucore"];

/**
 * Packs the rootfs as an OCI image layout with two gzip layers (base: kernel, busybox, systemd-boot;
 * top: /etc and immucore). Modes, symlinks and empty directories survive; owners are 0, times 0.
 */
export async function packTestOsImage(rootfs: string, layoutDir: string, name = "kairos-test-os:latest"): Promise<PackedTestOs> {
    const base: TarSpec[] = [];
    const top: TarSpec[] = [];
    const inTop = (rel: string) => TOP_LAYER.some((t) => rel === t || rel.startsWith(`${t}/`));
    const walk = (rel: string) => {
        for (const n of fs.readdirSync(path.join(rootfs, rel)).sort()) {
            const childRel = rel ? `${rel}/${n}` : n;
            const full = path.join(rootfs, childRel);
            const st = fs.lstatSync(full);
            const mode = st.mode & 0o7777;
            let entry: TarSpec;
            if (st.isDirectory()) entry = { name: `${childRel}/`, type: "dir", mode };
            else if (st.isSymbolicLink()) entry = { name: childRel, type: "symlink", linkname: fs.readlinkSync(full) };
            else if (st.isFile()) entry = { name: childRel, content: fs.readFileSync(full), mode };
            else throw new Error(`${full}: only files, directories and symlinks can be packed`);
            if (inTop(childRel)) {
                // the top layer repeats the parent directories so it stands on its own
                for (let p = path.posix.dirname(childRel); p !== "."; p = path.posix.dirname(p)) {
                    if (!top.some((e) => e.name === `${p}/`)) top.push({ name: `${p}/`, type: "dir", mode: fs.statSync(path.join(rootfs, p)).mode & 0o7777 });
                }
                top.push(entry);
            } else {
                base.push(entry);
            }
            if (st.isDirectory()) walk(childRel);
        }
    };
    walk("");
    top.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const image = buildImage({ layers: [await makeLayer(base, "gzip"), await makeLayer(top, "gzip")] });
    writeOciLayout(layoutDir, [{ image, name }]);
    return { layoutDir, name, image };
}

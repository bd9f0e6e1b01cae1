// The demo's extension payloads, written by the demo itself so it needs nothing but this repo:
// - k3s, built from examples/k3s-sysext/Dockerfile (the blog's shape) by BuildKit: its build context
//   holds only the k3s binary, which cannot be downloaded here, so it is a stand-in built from
//   examples/k3s-sysext/standin (it tells systemd it is ready and listens on k3s' port, as
//   `k3s server` does);
// - demo-motd, a confext with a configuration file under /etc;
// - the cloud-config: it installs the live medium onto the node's disk (kairos-agent's install.auto),
//   and its boot stage starts k3s from the extension on the installed node, as the blog's does.
import * as fs from "fs";
import * as path from "path";
import { autoInstallConfig, buildK3sStandin } from "../../scripts/lib/systemd-test-os";

export const K3S_DOCKERFILE = path.resolve(__dirname, "..", "k3s-sysext", "Dockerfile");

function write(root: string, rel: string, content: string | Buffer, mode: number): string {
    const file = path.join(root, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    // Only touch the file when its content differs, so a rerun leaves the tree digest unchanged.
    if (!fs.existsSync(file) || !fs.readFileSync(file).equals(Buffer.from(content))) fs.writeFileSync(file, content, { mode });
    fs.chmodSync(file, mode);
    return file;
}

export const DEMO_CLOUD_CONFIG = `#cloud-config
${autoInstallConfig()}stages:
  boot:
    - name: "Start k3s from its system extension"
      commands:
        - systemctl enable k3s
        - systemctl start k3s
`;

/** The k3s extension's Dockerfile build: the example's Dockerfile, and a context holding the stand-in binary. */
export async function k3sDockerfileBuild(contextDir: string): Promise<{ context: string; dockerfile: string }> {
    await buildK3sStandin(path.join(contextDir, "k3s"));
    return { context: contextDir, dockerfile: K3S_DOCKERFILE };
}

export async function writeDemoPayloads(dir: string): Promise<{ k3s: { context: string; dockerfile: string }; config: string; cloudConfig: string }> {
    const k3s = await k3sDockerfileBuild(path.join(dir, "k3s-context"));
    const config = path.join(dir, "demo-motd");
    write(config, "etc/motd.d/pulumi-kairos", "This node was configured by a signed confext.\n", 0o644);
    const cloudConfig = write(dir, "cloud-config.yaml", DEMO_CLOUD_CONFIG, 0o644);
    return { k3s, config, cloudConfig };
}

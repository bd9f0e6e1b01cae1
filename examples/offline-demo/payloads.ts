// Small payloads for the demo's extensions, written by the demo itself so it needs nothing but this
// repo: a sysext with a tool under /usr and a confext with a configuration file under /etc.
import * as fs from "fs";
import * as path from "path";

function write(root: string, rel: string, content: string, mode: number): void {
    const file = path.join(root, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    // Only touch the file when its content differs, so a rerun leaves the tree digest unchanged.
    if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== content) fs.writeFileSync(file, content, { mode });
    fs.chmodSync(file, mode);
}

export function writeDemoPayloads(dir: string): { tool: string; config: string } {
    const tool = path.join(dir, "kairos-hello");
    write(tool, "usr/bin/kairos-hello", "#!/bin/sh\necho 'hello from a signed system extension'\n", 0o755);
    write(tool, "usr/share/kairos-hello/README", "Installed by the pulumi-kairos offline demo.\n", 0o644);
    const config = path.join(dir, "demo-motd");
    write(config, "etc/motd.d/pulumi-kairos", "This node was configured by a signed confext.\n", 0o644);
    return { tool, config };
}

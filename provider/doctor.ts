// `pulumi-kairos doctor`: is this machine able to run the resources' build steps? Lists every tool
// they run with the version found or the packages that provide it, and the host files KairosUkiImage
// may fall back on. Read-only; exits non-zero when something a resource always needs is missing.
import * as fs from "fs";
import * as path from "path";
import { run } from "./toolkit/run";
import { HOST_EFI_DIR, Tool, resourceTools, versionIn } from "./toolkit/tools";

export interface ToolCheck {
    name: string;
    tool: Tool;
    /** Where it was found on PATH, or null. */
    path: string | null;
    version: string | null;
}

export interface DoctorReport {
    tools: ToolCheck[];
    hostEfiFiles: { path: string; present: boolean }[];
    /** Tools missing that some resource always needs (not only in a `when` case). */
    missingRequired: string[];
}

const ANY_EXIT_CODE = Array.from({ length: 256 }, (_, i) => i);

/** The first executable `name` on `searchPath` (PATH syntax), or null. */
export function findOnPath(name: string, searchPath = process.env.PATH ?? ""): string | null {
    for (const dir of searchPath.split(path.delimiter).filter(Boolean)) {
        const candidate = path.join(dir, name);
        try {
            fs.accessSync(candidate, fs.constants.X_OK);
            if (fs.statSync(candidate).isFile()) return candidate;
        } catch {
            // not here
        }
    }
    return null;
}

async function versionOf(file: string, tool: Tool): Promise<string | null> {
    try {
        const r = await run([file, ...tool.versionArgs], { okCodes: ANY_EXIT_CODE, timeoutMs: 10000 });
        return versionIn(`${r.stdout}\n${r.stderr}`) ?? null;
    } catch {
        return null;
    }
}

export async function examine(searchPath = process.env.PATH ?? ""): Promise<DoctorReport> {
    const tools = await Promise.all(
        resourceTools().map(async ([name, tool]) => {
            const found = findOnPath(name, searchPath);
            return { name, tool, path: found, version: found ? await versionOf(found, tool) : null };
        }),
    );
    return {
        tools,
        hostEfiFiles: ["linuxx64.efi.stub", "systemd-bootx64.efi"].map((f) => ({ path: path.join(HOST_EFI_DIR, f), present: fs.existsSync(path.join(HOST_EFI_DIR, f)) })),
        missingRequired: tools.filter((t) => !t.path && !t.tool.when).map((t) => t.name),
    };
}

export function formatReport(r: DoctorReport): string {
    const width = Math.max(...r.tools.map((t) => t.name.length));
    const lines = ["pulumi-kairos doctor: the tools the resources run", ""];
    for (const t of r.tools) {
        const who = t.tool.usedBy.join(", ") + (t.tool.when ? `; only for ${t.tool.when}` : "");
        const state = t.path ? `ok   ${t.version ?? "(no version reported)"}  ${t.path}` : `MISSING  ${t.tool.install ?? `apt-get install ${t.tool.debian}  |  dnf install ${t.tool.fedora}`}`;
        lines.push(`  ${t.name.padEnd(width)}  ${state}`, `  ${"".padEnd(width)}  used by ${who}`);
    }
    lines.push("", "  host systemd-boot-efi (KairosUkiImage uses it only when the OS image ships no stub or systemd-boot):");
    for (const f of r.hostEfiFiles) lines.push(`    ${f.present ? "ok     " : "absent "} ${f.path}${f.present ? "" : "  (apt-get install systemd-boot-efi | dnf install systemd-boot-unsigned)"}`);
    lines.push("");
    const optionalMissing = r.tools.filter((t) => !t.path && t.tool.when).map((t) => t.name);
    if (r.missingRequired.length > 0) lines.push(`missing: ${r.missingRequired.join(", ")}; the resources that use them cannot build until they are installed`);
    else lines.push(`every tool the resources always need is here${optionalMissing.length ? ` (missing, needed only in the cases shown: ${optionalMissing.join(", ")})` : ""}`);
    return lines.join("\n");
}

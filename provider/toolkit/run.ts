// The one process runner for every external tool: argv arrays, no shell, and errors that carry the
// command line, the exit status and the tail of stderr.
import { spawn } from "child_process";
import { installHint } from "./tools";
import { toolEnv } from "./pin";

export interface RunOptions {
    cwd?: string;
    /** Added to the provider's environment, which reaches the tool without the withheld variables (pin.ts: the token PIN); name one here to pass it. */
    env?: Record<string, string | undefined>;
    input?: string | Buffer;
    timeoutMs?: number;
    /** Exit codes that count as success (default: 0 only). */
    okCodes?: number[];
}

export interface RunResult {
    stdout: string;
    stderr: string;
    code: number;
}

const STDERR_TAIL_LINES = 20;

export class ToolNotFoundError extends Error {
    readonly code = "TOOL_NOT_FOUND";
    constructor(readonly tool: string) {
        const hint = installHint(tool);
        super(`could not find \`${tool}\` on PATH${hint ? `; ${hint}` : ""}. \`npx pulumi-kairos doctor\` checks every tool the resources need.`);
    }
}

export class ToolFailedError extends Error {
    readonly code = "TOOL_FAILED";
    constructor(
        readonly argv: string[],
        readonly exitCode: number | null,
        readonly signal: string | null,
        readonly stderr: string,
    ) {
        const status = signal ? `was killed by ${signal}` : `exited with status ${exitCode}`;
        const tail = stderr.trim().split("\n").slice(-STDERR_TAIL_LINES).join("\n");
        super(`\`${argv[0]}\` ${status}\n  command: ${quoteArgv(argv)}${tail ? `\n  stderr:\n${indent(tail)}` : ""}`);
    }
}

/** Runs `argv[0]` with `argv.slice(1)`; resolves with its output or rejects with a ToolError. */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(argv[0], argv.slice(1), {
            cwd: opts.cwd,
            env: toolEnv(opts.env),
            stdio: ["pipe", "pipe", "pipe"],
        });
        // Our own timer, not spawn's `timeout`: Node leaves that one running when the spawn itself fails
        // (a missing tool), which kept a finished process alive for the whole timeout.
        const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs) : undefined;
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on("data", (b: Buffer) => out.push(b));
        child.stderr.on("data", (b: Buffer) => err.push(b));
        child.on("error", (e: NodeJS.ErrnoException) => {
            clearTimeout(timer);
            reject(e.code === "ENOENT" ? new ToolNotFoundError(argv[0]) : e);
        });
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            const result = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code: code ?? -1 };
            if (signal || !(opts.okCodes ?? [0]).includes(code ?? -1)) {
                reject(new ToolFailedError(argv, code, signal, result.stderr || result.stdout));
            } else {
                resolve(result);
            }
        });
        child.stdin.on("error", () => undefined); // a tool that exits early must not crash us with EPIPE
        child.stdin.end(opts.input ?? "");
    });
}

export function quoteArgv(argv: string[]): string {
    return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

function indent(s: string): string {
    return s.split("\n").map((l) => `    ${l}`).join("\n");
}

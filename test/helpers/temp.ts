// Temp folders for tests, removed when the run ends (KEEP_TEST_DIRS=1 keeps them for a post-mortem).
// .mocharc.json loads this file, so its mochaHooks run as root hooks in every mocha process.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const madeDirs: string[] = [];

export function tempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kairos-${prefix}-`));
    madeDirs.push(dir);
    return dir;
}

/** A writer of files into the folder `dir()` names when it is called (a suite's temp folder, made in `before`). */
export function fileWriter(dir: () => string): (name: string, content: string | Buffer) => string {
    return (name, content) => {
        const file = path.join(dir(), name);
        fs.writeFileSync(file, content);
        return file;
    };
}

export const mochaHooks = {
    afterAll(): void {
        if (process.env.KEEP_TEST_DIRS) return;
        for (const dir of madeDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    },
};

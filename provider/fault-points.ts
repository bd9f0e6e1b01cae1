// Named points in a build where the crash-safety tests kill the provider process (SIGKILL, as the OOM
// killer or a cancelled CI job would). Unset, a point costs one environment lookup. The points a run
// passes can be recorded, so the tests kill at every point a real build reaches rather than at a
// hand-kept list.
import * as fs from "fs";

/** Kill this process (SIGKILL, no clean-up) on reaching the point with exactly this id. */
export const KILL_AT_ENV = "KAIROS_TEST_KILL_AT";
/** Append the id of every point reached to this file. */
export const RECORD_POINTS_ENV = "KAIROS_TEST_RECORD_POINTS";

/**
 * Hold this process at a point ("<id>=<file>") until the file exists (at most two minutes): lets a
 * test meet a build half-way, e.g. start a second build while the first holds its lock.
 */
export const PAUSE_AT_ENV = "KAIROS_TEST_PAUSE_AT";

export function faultPoint(id: string): void {
    const record = process.env[RECORD_POINTS_ENV];
    if (record) fs.appendFileSync(record, `${id}\n`);
    if (process.env[KILL_AT_ENV] === id) process.kill(process.pid, "SIGKILL");
    const pause = process.env[PAUSE_AT_ENV];
    if (pause?.startsWith(`${id}=`)) {
        const release = pause.slice(id.length + 1);
        const cell = new Int32Array(new SharedArrayBuffer(4));
        for (let waited = 0; waited < 120000 && !fs.existsSync(release); waited += 50) Atomics.wait(cell, 0, 0, 50);
    }
}

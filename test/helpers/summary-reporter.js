// Mocha's spec reporter plus a closing count in the plain form CI reads ("mocha: N passed, N failed").
// When MOCHA_SUMMARY_FILE is set (scripts/run-tests.sh runs mocha more than once), the counts are
// appended there instead and the script prints one total at the end.
const fs = require("fs");
const Mocha = require("mocha");
const { EVENT_RUN_END } = Mocha.Runner.constants;

class SummaryReporter extends Mocha.reporters.Spec {
    constructor(runner, options) {
        super(runner, options);
        runner.once(EVENT_RUN_END, () => {
            const s = runner.stats;
            if (process.env.MOCHA_SUMMARY_FILE) {
                fs.appendFileSync(process.env.MOCHA_SUMMARY_FILE, `${s.passes} ${s.failures} ${s.pending}\n`);
            } else {
                process.stdout.write(`\nmocha: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
            }
        });
    }
}
module.exports = SummaryReporter;

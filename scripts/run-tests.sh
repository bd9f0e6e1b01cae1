#!/usr/bin/env bash
# Runs every test layer: type check; the compiled package; the boot tests in two parallel mocha processes;
# unit, toolkit, fuzz, provider, faults, package, engine and cli tests in one mocha process; the Pulumi-mock construct tests in a second one (setMocks is process-global).
# Expects scripts/setup.sh to have run (npm test does both). Extra mocha args: MOCHA_ARGS.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# oras (the release registry client) from the set-up's cache, ahead of any other on PATH.
if [ -s .oras-bin ]; then PATH="$(dirname "$(cat .oras-bin)"):$PATH"; export PATH; fi
echo "== type check" >&2
npx tsc -p . --noEmit || exit 1
# The provider processes the engine starts load the compiled handlers when they are fresh
# (scripts/lib/local-engine.ts): ts-node would cost each of them about 6 s.
echo "== build (bin/)" >&2
npm run --silent build || exit 1

export MOCHA_SUMMARY_FILE
MOCHA_SUMMARY_FILE=$(mktemp)
trap 'rm -f "$MOCHA_SUMMARY_FILE"' EXIT
status=0
# The boot tests are most of the suite's time, and a TCG guest keeps one core busy: on two cores they
# run in two lanes at once (the node-updates lifecycle, the longest file, alone in one; every other boot
# file in the other), each lane's output printed whole when both are done.
echo "== boot tests (QEMU/OVMF), two lanes" >&2
lane_logs=()
lane_pids=()
run_lane() {
  local log; log=$(mktemp)
  lane_logs+=("$log")
  npx mocha ${MOCHA_ARGS:-} "$@" >"$log" 2>&1 &
  lane_pids+=($!)
}
other_boots=()
for f in test/boot/*.test.ts; do [ "$f" = test/boot/node-updates.test.ts ] || other_boots+=("$f"); done
run_lane test/boot/node-updates.test.ts
run_lane "${other_boots[@]}"
for pid in "${lane_pids[@]}"; do wait "$pid" || status=1; done
for log in "${lane_logs[@]}"; do cat "$log"; rm -f "$log"; done
echo "boot tests done after $(( $(date +%s) - start )) s" >&2
echo "== tests (unit, toolkit, fuzz, provider, faults, package, engine, cli)" >&2
npx mocha ${MOCHA_ARGS:-} 'test/{unit,toolkit,fuzz,provider,faults,package,engine,cli}/**/*.test.ts' || status=1
if compgen -G 'test/mocks/*.test.ts' >/dev/null; then
  echo "== construct tests with Pulumi mocks (@pulumi/docker, @pulumi/aws, @pulumi/command: no Docker engine or AWS here)" >&2
  npx mocha ${MOCHA_ARGS:-} 'test/mocks/**/*.test.ts' || status=1
fi
read -r passed failed skipped < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$MOCHA_SUMMARY_FILE")
echo "tests took $(( $(date +%s) - start )) s" >&2
echo "mocha: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]

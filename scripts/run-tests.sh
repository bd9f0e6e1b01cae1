#!/usr/bin/env bash
# Runs every test layer: type check; the compiled package; then three lanes of mocha processes at once
# (boots, the long engine tests, every other layer; see below); the Pulumi-mock construct tests last.
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
# Three lanes at once, each a sequence of mocha processes, so that two cores stay busy to the end: a TCG
# guest keeps one or two host threads busy while the engine tests mostly wait on process start-ups.
#   1. the node-updates lifecycle (four boots), then the demo (two boots);
#   2. every other boot file, then the kill test (some fifty engine runs);
#   3. every other layer.
# Each lane's output is printed whole, in lane order, when all are done. The construct tests with Pulumi
# mocks run last, alone (setMocks is process-global; they take seconds).
LONG_FILES=(test/boot/node-updates.test.ts test/engine/demo.test.ts test/faults/kill.test.ts)
other_boots=()
for f in test/boot/*.test.ts; do [ "$f" = test/boot/node-updates.test.ts ] || other_boots+=("$f"); done
lane_logs=()
lane_pids=()
run_lane() {  # name, then mocha runs separated by "--"
  local name=$1 log; shift
  log=$(mktemp)
  lane_logs+=("$log")
  (
    lane_status=0
    lane_start=$(date +%s)
    while [ $# -gt 0 ]; do
      files=()
      while [ $# -gt 0 ] && [ "$1" != -- ]; do files+=("$1"); shift; done
      [ $# -gt 0 ] && shift
      npx mocha ${MOCHA_ARGS:-} "${files[@]}" || lane_status=1
    done
    echo "lane $name done after $(( $(date +%s) - lane_start )) s"
    exit $lane_status
  ) >"$log" 2>&1 &
  lane_pids+=($!)
}
ignores=()
for f in "${LONG_FILES[@]}"; do ignores+=(--ignore "$f"); done
echo "== three lanes: (1) node-updates boots, demo; (2) other boots, kill test; (3) unit, toolkit, fuzz, provider, faults, package, engine, cli" >&2
run_lane 1 test/boot/node-updates.test.ts -- test/engine/demo.test.ts
run_lane 2 "${other_boots[@]}" -- test/faults/kill.test.ts
run_lane 3 'test/{unit,toolkit,fuzz,provider,faults,package,engine,cli}/**/*.test.ts' "${ignores[@]}"
for pid in "${lane_pids[@]}"; do wait "$pid" || status=1; done
for log in "${lane_logs[@]}"; do cat "$log"; rm -f "$log"; done
echo "lanes done after $(( $(date +%s) - start )) s" >&2
if compgen -G 'test/mocks/*.test.ts' >/dev/null; then
  echo "== construct tests with Pulumi mocks (@pulumi/docker, @pulumi/aws, @pulumi/command: no Docker engine or AWS here)" >&2
  npx mocha ${MOCHA_ARGS:-} 'test/mocks/**/*.test.ts' || status=1
fi
read -r passed failed skipped < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$MOCHA_SUMMARY_FILE")
echo "tests took $(( $(date +%s) - start )) s" >&2
echo "mocha: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]

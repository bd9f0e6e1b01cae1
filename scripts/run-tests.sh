#!/usr/bin/env bash
# Runs every test layer: type check; the compiled package; then two phases of two parallel lanes of mocha
# processes (the boots; every other layer; see below); the Pulumi-mock construct tests last.
# Expects scripts/setup.sh to have run (npm test does both). Extra mocha args: MOCHA_ARGS.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# oras (the release registry client) from the set-up's cache, ahead of any other on PATH.
if [ -s .oras-bin ]; then PATH="$(dirname "$(cat .oras-bin)"):$PATH"; export PATH; fi
# buildctl/buildkitd (Dockerfile sources) likewise.
if [ -s .buildkit-bin ]; then PATH="$(cat .buildkit-bin):$PATH"; export PATH; fi
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
# Two phases of two lanes each, so that both cores stay busy to the end (a lane is a sequence of mocha
# processes; each lane's output is printed whole, in lane order, when its phase is done):
#   boots: (1) the node-updates lifecycle (four boots); (2) every other boot file, then the demo (two
#          boots). Each TCG guest keeps one core busy, so two at a time fill the machine;
#   the rest: (3) the kill test (some fifty engine runs), then most engine tests; (4) unit, toolkit,
#          fuzz, provider, the other fault tests, package, cli, then the engine's moves, artifact-store and
#          signing-keys files, which balance the lanes (lane 3 took 878 s against 721 s with only the first
#          two in a rehearsal; signing-keys is about 70 s).
# Then the tests that pack the package (they rebuild bin/), and the construct tests with Pulumi mocks, each
# alone (setMocks is process-global; they take seconds).
lane_logs=()
lane_pids=()
run_lane() {  # mocha runs separated by "--"
  local log
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
    echo "(lane done after $(( $(date +%s) - lane_start )) s)"
    exit $lane_status
  ) >"$log" 2>&1 &
  lane_pids+=($!)
}
finish_phase() {  # name
  for pid in "${lane_pids[@]}"; do wait "$pid" || status=1; done
  for log in "${lane_logs[@]}"; do cat "$log"; rm -f "$log"; done
  lane_logs=()
  lane_pids=()
  echo "$1 done after $(( $(date +%s) - start )) s" >&2
}
other_boots=()
for f in test/boot/*.test.ts; do [ "$f" = test/boot/node-updates.test.ts ] || other_boots+=("$f"); done
echo "== boot tests (QEMU/OVMF) and the demo, two lanes" >&2
run_lane test/boot/node-updates.test.ts
run_lane "${other_boots[@]}" -- test/engine/demo.test.ts
finish_phase "boot tests"
echo "== the other layers, two lanes: (3) kill test, engine; (4) unit, toolkit, fuzz, provider, faults, package, cli, two engine files" >&2
balance=(test/engine/moves.engine.test.ts test/engine/artifact-store.engine.test.ts test/engine/signing-keys.engine.test.ts)
# These run `npm pack`, whose prepack rebuilds bin/ (rm -rf first): never beside a lane whose provider
# processes load bin/. They run after the lanes, alone.
packing=(test/package/pack.test.ts test/package/consumer.test.ts test/cli/yaml-seed.test.ts)
not_packing=()
for f in "${packing[@]}"; do not_packing+=(--ignore "$f"); done
not_balance=()
for f in "${balance[@]}"; do not_balance+=(--ignore "$f"); done
run_lane test/faults/kill.test.ts -- 'test/engine/**/*.test.ts' --ignore test/engine/demo.test.ts "${not_balance[@]}"
run_lane 'test/{unit,toolkit,fuzz,provider,faults,package,cli}/**/*.test.ts' --ignore test/faults/kill.test.ts "${not_packing[@]}" -- "${balance[@]}"
finish_phase "the other layers"
echo "== the tests that pack the package (they rebuild bin/)" >&2
npx mocha ${MOCHA_ARGS:-} "${packing[@]}" || status=1
if compgen -G 'test/mocks/*.test.ts' >/dev/null; then
  echo "== construct tests with Pulumi mocks (@pulumi/docker, @pulumi/aws, @pulumi/command: no Docker engine or AWS here)" >&2
  npx mocha ${MOCHA_ARGS:-} 'test/mocks/**/*.test.ts' || status=1
fi
read -r passed failed skipped < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$MOCHA_SUMMARY_FILE")
echo "tests took $(( $(date +%s) - start )) s" >&2
echo "mocha: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]

#!/usr/bin/env bash
# Runs every test layer: type check; the compiled package; unit, toolkit, fuzz, provider, faults, package, engine, cli and boot tests in one mocha
# process; the Pulumi-mock construct tests in a second one (setMocks is process-global).
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
echo "== tests (unit, toolkit, fuzz, provider, faults, package, engine, cli, boot)" >&2
npx mocha ${MOCHA_ARGS:-} 'test/{unit,toolkit,fuzz,provider,faults,package,engine,cli,boot}/**/*.test.ts' || status=1
if compgen -G 'test/mocks/*.test.ts' >/dev/null; then
  echo "== construct tests with Pulumi mocks (@pulumi/docker, @pulumi/aws, @pulumi/command: no Docker engine or AWS here)" >&2
  npx mocha ${MOCHA_ARGS:-} 'test/mocks/**/*.test.ts' || status=1
fi
read -r passed failed skipped < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$MOCHA_SUMMARY_FILE")
echo "tests took $(( $(date +%s) - start )) s" >&2
echo "mocha: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]

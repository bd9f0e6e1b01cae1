#!/usr/bin/env bash
# Runs every test layer: type check, then unit, toolkit, provider, engine (and later boot) tests.
# Expects scripts/setup.sh to have run (npm test does both).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
echo "== type check" >&2
npx tsc -p . --noEmit
echo "== mocha" >&2
npx mocha ${MOCHA_ARGS:-} 'test/**/*.test.ts'
echo "tests took $(( $(date +%s) - start )) s" >&2

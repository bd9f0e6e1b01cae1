#!/usr/bin/env bash
# The offline demo (README's main command); expects scripts/setup.sh to have run (npm run demo does).
set -euo pipefail
cd "$(dirname "$0")/.."
exec npx ts-node --transpile-only examples/offline-demo/run.ts

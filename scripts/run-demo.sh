#!/usr/bin/env bash
# The offline demo (README's main command); expects scripts/setup.sh to have run (npm run demo does).
set -euo pipefail
cd "$(dirname "$0")/.."
# oras (the release registry client) from the set-up's cache, ahead of any other on PATH.
if [ -s .oras-bin ]; then PATH="$(dirname "$(cat .oras-bin)"):$PATH"; export PATH; fi
# buildctl/buildkitd (Dockerfile sources) likewise.
if [ -s .buildkit-bin ]; then PATH="$(cat .buildkit-bin):$PATH"; export PATH; fi
exec npx ts-node --transpile-only examples/offline-demo/run.ts

#!/usr/bin/env bash
# Builds bench/klauspost-zstd (AuroraBoot's UKI initrd encoder, for the benchmark) ONCE into a cache
# outside the repo and prints the binary's path. The version is the one bench/klauspost-zstd/go.mod
# pins; the folder is named after it so that a bump builds anew.
set -euo pipefail
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
cd "$(dirname "$0")/../bench/klauspost-zstd"

VERSION=v1.18.0
grep -q "github.com/klauspost/compress $VERSION\$" go.mod || { echo "build-klauspost-zstd: go.mod does not pin klauspost/compress $VERSION; update VERSION here with it" >&2; exit 1; }
CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
DIR="$CACHE_ROOT/klauspost-zstd-$VERSION"
BIN="$DIR/klauspost-zstd"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "build-klauspost-zstd: go is missing (install Go 1.22 or newer)" >&2; exit 1; }
mkdir -p "$DIR"
# Built beside the final name and renamed, so an interrupted build never leaves a binary that counts.
GOFLAGS=-mod=mod go build -trimpath -o "$BIN.tmp" . >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"

#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (a single-binary S3 server, used by the tests as a real S3 endpoint and as
# a Pulumi state backend; test/helpers/s3-server.ts) from its Go module at a pinned version, ONCE,
# into a cache outside the repo, and prints the binary's path on stdout (messages go to stderr).
# `go install module@version` refuses this module because its go.mod has a replace directive
# (tyler-smith/go-bip39 => cosmos/go-bip39), so the module is downloaded, copied to a writable folder
# and built there as the main module, where the replace applies. The first build takes several
# minutes (about 5 on 2 cores) and several hundred MB of module downloads; later runs only check the
# cached binary.
set -euo pipefail
# shellcheck source=lib/go-module.sh
. "$(dirname "$0")/lib/go-module.sh"
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

MODULE=github.com/seaweedfs/seaweedfs
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"   # weed 4.53
# v0.0.0-20261109003541-7506e5f91cd6 -> 20261109-7506e5f91cd6: the commit date and hash.
SHORT="$(echo "$SEAWEEDFS_VERSION" | sed -E 's/^v[0-9]+\.[0-9]+\.[0-9]+-([0-9]{8})[0-9]{6}-([0-9a-f]{12})$/\1-\2/')"
CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
DIR="$CACHE_ROOT/seaweedfs-$SHORT"
BIN="$DIR/weed"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "build-seaweedfs: 'go' is required to build SeaweedFS (Go 1.26 or newer)" >&2; exit 1; }

mkdir -p "$CACHE_ROOT"
work="$(mktemp -d "$CACHE_ROOT/seaweedfs-build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

echo "build-seaweedfs: building weed $SEAWEEDFS_VERSION from Go modules (first run only, several minutes)..." >&2
start=$(date +%s)
go_module_source build-seaweedfs "$MODULE" "$SEAWEEDFS_VERSION" "$work"
(
  cd "$work/src"
  # GOFLAGS from the caller (e.g. -mod=mod) must not leak in: the module's own go.sum is complete.
  GOFLAGS= go build -trimpath -ldflags "-s -w -X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=${SEAWEEDFS_VERSION##*-}" \
    -o "$work/weed" ./weed >&2
)
"$work/weed" version >&2 || { echo "build-seaweedfs: the built weed does not run" >&2; exit 1; }

# Built in a folder beside the cache entry and renamed into it (same filesystem), so an interrupted
# build never leaves a binary that counts.
mkdir -p "$DIR"
mv "$work/weed" "$BIN"
echo "build-seaweedfs: built in $(( $(date +%s) - start )) s -> $BIN" >&2
echo "$BIN"

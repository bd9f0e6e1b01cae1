#!/usr/bin/env bash
# Builds the ORAS CLI (`oras`, the OCI registry client the release resources push, resolve and copy
# with) from its Go module at a pinned version, ONCE, into a cache outside the repo, and prints the
# binary's path on stdout (messages go to stderr). Debian's skopeo 1.9 predates OCI artifact types,
# so Kairos' raw sysext artifacts need a newer client; users with oras on PATH need none of this.
set -euo pipefail
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

ORAS_VERSION="${ORAS_VERSION:-v1.3.6}"
CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
DIR="$CACHE_ROOT/oras-$ORAS_VERSION"
BIN="$DIR/oras"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "build-oras: 'go' is required to build oras" >&2; exit 1; }

mkdir -p "$CACHE_ROOT"
work="$(mktemp -d "$CACHE_ROOT/oras-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "build-oras: building oras $ORAS_VERSION from Go modules (first run only)..." >&2
start=$(date +%s)
GOBIN="$work" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath \
  -ldflags "-s -w -X oras.land/oras/internal/version.Version=${ORAS_VERSION#v} -X oras.land/oras/internal/version.BuildMetadata=" \
  "oras.land/oras/cmd/oras@$ORAS_VERSION" >&2
"$work/oras" version >&2 || { echo "build-oras: the built oras does not run" >&2; exit 1; }
# Renamed into place (same filesystem), so an interrupted build never leaves a binary that counts.
mkdir -p "$DIR"
mv "$work/oras" "$BIN"
echo "build-oras: built in $(( $(date +%s) - start )) s -> $BIN" >&2
echo "$BIN"

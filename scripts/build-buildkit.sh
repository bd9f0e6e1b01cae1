#!/usr/bin/env bash
# Builds BuildKit's `buildkitd` and `buildctl` from the Go module at a pinned version, ONCE, into a
# cache outside the repo, and prints the folder holding both on stdout (messages go to stderr).
# SystemExtension's `dockerfile` source drives buildctl; the tests and the demo start buildkitd
# themselves (OCI worker on Debian's runc). `go install module@version` refuses this module (its
# go.mod has exclude directives), so the module is copied to a writable folder and built there as the
# main module. About 3-4 minutes on 2 cores with a cold module cache; later runs only check the cache.
set -euo pipefail
# shellcheck source=lib/go-module.sh
. "$(dirname "$0")/lib/go-module.sh"
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

MODULE=github.com/moby/buildkit
BUILDKIT_VERSION="${BUILDKIT_VERSION:-v0.35.0}"
CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
DIR="$CACHE_ROOT/buildkit-$BUILDKIT_VERSION"

if [ -x "$DIR/buildkitd" ] && [ -x "$DIR/buildctl" ]; then
  echo "$DIR"
  exit 0
fi
command -v go >/dev/null || { echo "build-buildkit: 'go' is required to build BuildKit" >&2; exit 1; }

mkdir -p "$CACHE_ROOT"
work="$(mktemp -d "$CACHE_ROOT/buildkit-build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
echo "build-buildkit: building buildkitd and buildctl $BUILDKIT_VERSION from Go modules (first run only, a few minutes)..." >&2
start=$(date +%s)
go_module_source build-buildkit "$MODULE" "$BUILDKIT_VERSION" "$work"
mkdir -p "$work/bin"
(
  cd "$work/src"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X $MODULE/version.Version=$BUILDKIT_VERSION -X $MODULE/version.Revision=" \
    -o "$work/bin/" ./cmd/buildkitd ./cmd/buildctl >&2
)
"$work/bin/buildctl" --version >&2 || { echo "build-buildkit: the built buildctl does not run" >&2; exit 1; }
# Renamed into place (same filesystem), so an interrupted build never leaves binaries that count.
rm -rf "$DIR"
mv "$work/bin" "$DIR"
echo "build-buildkit: built in $(( $(date +%s) - start )) s -> $DIR" >&2
echo "$DIR"

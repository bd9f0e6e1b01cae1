#!/usr/bin/env bash
# Builds the Pulumi CLI from its Go modules at a pinned version and caches it outside the repo.
# The npm registry's Pulumi CLI cannot run here (it downloads a binary), and the Node language host
# module (sdk/nodejs/cmd/pulumi-language-nodejs) is not served by the Go module proxy, so tests and the
# demo drive the engine through the Automation API with inline programs, which needs only the CLI.
# Prints the bin directory on stdout.
set -euo pipefail
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

PULUMI_VERSION="${PULUMI_VERSION:-3.248.0}"   # = @pulumi/pulumi in package.json: the newest SDK that runs on Node 20
CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
BIN_DIR="$CACHE_ROOT/pulumi-v$PULUMI_VERSION/bin"

# The engine launches dynamic providers through this plugin; the CLI release ships it as a tiny
# script next to the binary, so we write the same thing, plus one line: the engine passes its address
# as the last argument, and exporting it lets pulumi.log in a dynamic provider reach the engine (the
# stock script does not, so such messages only reach stderr). Rewritten on every run: cheap, and a
# cached CLI picks up changes to it.
write_dynamic_provider_wrapper() {
  cat > "$1/pulumi-resource-pulumi-nodejs.tmp" <<'SH'
#!/bin/sh
for arg in "$@"; do case "$arg" in -*) ;; *) PULUMI_NODEJS_ENGINE="$arg" ;; esac; done
export PULUMI_NODEJS_ENGINE
exec node "${PULUMI_NODEJS_DYNAMIC_PROVIDER:-./node_modules/@pulumi/pulumi/cmd/dynamic-provider}" "$@"
SH
  chmod 0755 "$1/pulumi-resource-pulumi-nodejs.tmp"
  mv "$1/pulumi-resource-pulumi-nodejs.tmp" "$1/pulumi-resource-pulumi-nodejs"
}

if [ -x "$BIN_DIR/pulumi" ] && "$BIN_DIR/pulumi" version 2>/dev/null | grep -qx "v$PULUMI_VERSION"; then
  write_dynamic_provider_wrapper "$BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null || { echo "install-pulumi: 'go' is required to build the Pulumi CLI" >&2; exit 1; }

work="$(mktemp -d "$CACHE_ROOT.build.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE_ROOT"; mktemp -d "$CACHE_ROOT/build.XXXXXX"; })"
trap 'rm -rf "$work"' EXIT

# pkg/v3's go.mod replaces sdk/v3 with a relative path, so `go install pkg@version` refuses it; a small
# wrapper module that requires both at the same version builds the CLI package instead.
cat > "$work/go.mod" <<GOMOD
module pulumi-kairos.local/pulumi-cli

go 1.26

require (
	github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
GOMOD
cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GO

echo "install-pulumi: building Pulumi CLI v$PULUMI_VERSION from Go modules (first run only)..." >&2
start=$(date +%s)
(
  cd "$work"
  export GOFLAGS=-mod=mod
  go mod tidy >&2
  go build -trimpath -o "$work/bin/pulumi" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2
)

write_dynamic_provider_wrapper "$work/bin"

mkdir -p "$(dirname "$BIN_DIR")"
rm -rf "$BIN_DIR"
mv "$work/bin" "$BIN_DIR"
echo "install-pulumi: built in $(( $(date +%s) - start )) s -> $BIN_DIR" >&2
echo "$BIN_DIR"

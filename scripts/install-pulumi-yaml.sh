#!/usr/bin/env bash
# Builds Pulumi's YAML language host from its Go module at a pinned version into the CLI's bin folder
# (given as $1, from scripts/install-pulumi.sh), cached there. Next to the `pulumi` binary is where the
# CLI finds it (on PATH alone it works too, with a warning on every run). v1.25.0 pins pulumi sdk/pkg
# v3.206.0 and does not compile against 3.248.0, so it is built as its go.mod says; it runs with CLI 3.248.0.
set -euo pipefail
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
BIN_DIR="${1:?usage: install-pulumi-yaml.sh <pulumi bin dir>}"
YAML_VERSION="${PULUMI_YAML_VERSION:-1.25.0}"
target="$BIN_DIR/pulumi-language-yaml"

if [ -x "$target" ] && [ "$(cat "$target.version" 2>/dev/null)" = "$YAML_VERSION" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "install-pulumi-yaml: 'go' is required to build pulumi-language-yaml" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "install-pulumi-yaml: building pulumi-language-yaml v$YAML_VERSION from Go modules (first run only)..." >&2
start=$(date +%s)
GOBIN="$work" GOFLAGS=-mod=mod go install -trimpath \
  -ldflags "-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version=v$YAML_VERSION" \
  "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml@v$YAML_VERSION" >&2
mv "$work/pulumi-language-yaml" "$target.tmp"
mv "$target.tmp" "$target"
echo "$YAML_VERSION" > "$target.version"
echo "install-pulumi-yaml: built in $(( $(date +%s) - start )) s -> $target" >&2

#!/usr/bin/env bash
# Downloads Debian's current amd64 kernel ONCE into a cache outside the repo, for the boot tests' test OS
# (test/helpers/test-os.ts). Only boot/vmlinuz-<version> is kept. Idempotent: when a kernel is already
# cached, nothing is downloaded. Prints the vmlinuz path on stdout; progress goes to stderr.
set -euo pipefail
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
DIR="$CACHE_ROOT/test-kernel"

cached() { [ -d "$DIR" ] || return 0; find "$DIR" -maxdepth 1 -type f -name "vmlinuz-*" -size +1M | sort | tail -n 1; }

existing="$(cached)"
if [ -n "$existing" ]; then
  echo "$existing"
  exit 0
fi

# linux-image-amd64 is the metapackage; it depends on exactly one versioned image package.
resolve() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1; }
pkg="$(resolve)"
if [ -z "$pkg" ]; then
  echo "fetch-test-kernel: refreshing the apt package lists" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  pkg="$(resolve)"
fi
[ -n "$pkg" ] || { echo "fetch-test-kernel: could not resolve the kernel package behind linux-image-amd64" >&2; exit 1; }

mkdir -p "$DIR"
work="$(mktemp -d "$DIR/.download.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"   # apt-get download drops privileges to _apt when it can write there
echo "fetch-test-kernel: downloading $pkg" >&2
sandbox=(); [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)   # /root is not readable by _apt
(cd "$work" && apt-get download -q "${sandbox[@]}" "$pkg" >&2)
deb="$(find "$work" -maxdepth 1 -name '*.deb' | head -n 1)"
[ -n "$deb" ] || { echo "fetch-test-kernel: apt-get download produced no .deb for $pkg" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/x"
kernel="$(find "$work/x/boot" -maxdepth 1 -type f -name 'vmlinuz-*' | sort | tail -n 1)"
[ -n "$kernel" ] || { echo "fetch-test-kernel: $pkg contains no boot/vmlinuz-*" >&2; exit 1; }
name="$(basename "$kernel")"
# rename into place, so a half-written kernel is never "cached"
cp "$kernel" "$work/$name"
chmod 0644 "$work/$name"
mv -f "$work/$name" "$DIR/$name"
echo "$DIR/$name"

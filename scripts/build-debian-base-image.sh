#!/usr/bin/env bash
# Makes the small Debian base image the Dockerfile examples and tests build FROM, ONCE, into a cache
# outside the repo, and prints the OCI layout's folder on stdout (messages go to stderr). No registry
# outside this machine is reachable, so `FROM debian:bookworm` cannot be pulled: debootstrap (minbase)
# makes the tree from the Debian archive apt uses, and it is packed as a one-layer OCI image (tag
# `bookworm`) that the tests and the demo push to their local registry (docker-registry on 127.0.0.1).
# `RUN apt-get …` inside builds then reaches the same archive. The layer is a sorted tar with fixed
# owners and mtimes, so the image is the same for the same package versions (listed in manifest.txt).
set -euo pipefail
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

SUITE=bookworm
LAYOUT=1   # bump when the package set or the packing changes
CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
BASE="$CACHE_ROOT/debian-base-image"
DIR="$BASE/$SUITE-$LAYOUT"

if [ -f "$DIR/oci/index.json" ]; then
  echo "$DIR/oci"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "build-debian-base-image: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-debian-base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
# shellcheck source=lib/debian-mirror.sh
. "$(dirname "$0")/lib/debian-mirror.sh"
mirror="$(debian_mirror build-debian-base-image)"

mkdir -p "$BASE"
work="$(mktemp -d "$BASE/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
started=$(date +%s)
echo "build-debian-base-image: debootstrap $SUITE (minbase) from $mirror" >&2
debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' > "$work/manifest.txt"

# What a container image leaves out: package caches and lists (a build runs apt-get update), logs,
# device nodes (the runtime mounts /dev), the host's resolver and the machine's identity.
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/var/log/* "$root"/dev/* "$root"/tmp/* "$root"/run/* "$root"/var/cache/ldconfig/aux-cache
: > "$root/etc/machine-id"
: > "$root/etc/resolv.conf"
echo "deb $mirror $SUITE main" > "$root/etc/apt/sources.list"
# debootstrap stamps shadow with today's date; a fixed day keeps the layer the same across builds.
sed -i -E 's/^([^:]*:[^:]*:)[0-9]+:/\119000:/' "$root/etc/shadow"

mkdir -p "$work/oci/blobs/sha256"
tar --sort=name --mtime=@0 --clamp-mtime --owner=0 --group=0 --numeric-owner --xattrs --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$root" -cf "$work/layer.tar" .
python3 - "$work" "$SUITE" <<'PY'
import gzip, hashlib, json, os, shutil, sys
work, tag = sys.argv[1], sys.argv[2]
blobs = os.path.join(work, "oci", "blobs", "sha256")
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f: f.write(data)
    return "sha256:" + d, len(data)
raw = open(os.path.join(work, "layer.tar"), "rb").read()
diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
layer_digest, layer_size = put(gzip.compress(raw, compresslevel=6, mtime=0))
config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
          "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["bash"]},
          "rootfs": {"type": "layers", "diff_ids": [diff_id]},
          "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "debootstrap --variant=minbase " + tag}]}
cfg_digest, cfg_size = put(json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]}
man_digest, man_size = put(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest, "size": man_size,
          "platform": {"architecture": "amd64", "os": "linux"}, "annotations": {"org.opencontainers.image.ref.name": tag}}]}
with open(os.path.join(work, "oci", "oci-layout"), "w") as f: json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(work, "oci", "index.json"), "w") as f: json.dump(index, f)
print(f"build-debian-base-image: layer {layer_size // 1048576} MB gzip ({len(raw) // 1048576} MB tar), manifest {man_digest}", file=sys.stderr)
PY
rm -rf "$DIR"
mkdir -p "$DIR"
mv "$work/manifest.txt" "$DIR/manifest.txt"
mv "$work/oci" "$DIR/oci"   # index.json last in, so the cache check above never sees half an image
echo "build-debian-base-image: built in $(( $(date +%s) - started )) s -> $DIR/oci" >&2
echo "$DIR/oci"

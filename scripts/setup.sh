#!/usr/bin/env bash
# One-time (idempotent) set-up for a fresh Debian 12 machine: the Debian tools the build steps and the
# tests use, the npm dependencies, the Pulumi CLI and its YAML language host and BuildKit built from Go modules. Safe to rerun: every step
# skips what is already there. Writes the Pulumi bin dir to .pulumi-bin for the test and demo runners.
# usage: setup.sh [demo]   "demo" (npm run demo) builds only what the demo runs: not the busybox test
# kernel, the YAML language host, SeaweedFS or oras, which serve the tests (on a fresh machine about
# 8 of the 19 minutes a first `npm run demo` took).
set -euo pipefail
case "${1:-all}" in
  all|demo) SCOPE="${1:-all}" ;;
  *) echo "usage: setup.sh [demo]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
# CI may run with a minimal environment; go and npm both need a home for their caches.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

# Prerequisites this machine kind provides and Debian 12's own packages are too old for (Node 18, Go 1.19).
need_version() {  # name, command printing a version, minimum major.minor, how to get it
  local have; have="$($2 2>/dev/null | grep -oE '[0-9]+\.[0-9]+' | head -n 1)" || true
  if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$3" "$have" | sort -V | head -n 1)" != "$3" ]; then
    echo "setup: $1 >= $3 is required (found: ${have:-none}); $4" >&2
    exit 1
  fi
}
need_version node "node --version" 20.0 "install Node.js 20 or newer"
need_version go "go version" 1.21 "install Go 1.21 or newer (it fetches the toolchain the Pulumi build pins through the module proxy)"

# tool -> Debian package; the build steps name the package in their "missing tool" errors too.
DEBIAN_PACKAGES=(
  openssl efitools sbsigntool         # keys, signature lists, Authenticode
  erofs-utils cryptsetup-bin fdisk gdisk  # sysext: erofs, dm-verity, GPT
  systemd-container                   # systemd-dissect (tests verify DDIs with it)
  binutils systemd-boot-efi zstd cpio # UKI: objcopy, stub + systemd-boot, initrd
  mtools dosfstools xorriso           # ESP image and ISO
  ovmf qemu-system-x86 swtpm swtpm-tools  # firmware boot tests, vTPM
  libtss2-esys-3.0.2-0 libtss2-rc0 libtss2-mu0 libtss2-tctildr0  # systemd-measure sign (tests cross-check .pcrsig)
  docker-registry skopeo              # a real OCI registry and a Docker-free client
  runc                                # the OCI runtime BuildKit's worker runs Dockerfile RUN steps with
  busybox-static                      # the busybox test OS's /init
  debootstrap                         # the systemd test OS (Debian trixie, built into the cache, never onto the host)
  python3                             # byte-compiles the generated Python SDK (test/cli)
  libengine-pkcs11-openssl opensc p11-kit softhsm2  # keys in PKCS#11 tokens: the OpenSSL engine, pkcs11-tool, the proxy module, a software token for the tests
  gnutls-bin                          # p11tool: the tests make a token key that may not sign
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # docker-registry's package starts a system service on :5000; tests start their own on a free port.
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    $SUDO systemctl stop docker-registry || true
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
bash scripts/build-systemd-test-os.sh >/dev/null   # the systemd test OS (trixie rootfs), cached outside the repo
bash scripts/install-pulumi.sh > .pulumi-bin
bash scripts/build-buildkit.sh > .buildkit-bin   # buildkitd + buildctl: Dockerfile sources (the demo's k3s extension), cached outside the repo
bash scripts/build-debian-base-image.sh > .debian-base-image   # the Debian base those Dockerfiles build FROM (no registry outside is reachable)
if [ "$SCOPE" = demo ]; then
  echo "setup: ok for the demo (pulumi: $(cat .pulumi-bin)); npm test completes the set-up" >&2
  exit 0
fi

bash scripts/fetch-test-kernel.sh >/dev/null   # the busybox test OS's kernel, cached outside the repo
bash scripts/install-pulumi-yaml.sh "$(cat .pulumi-bin)"   # `runtime: yaml` projects (test/cli)
bash scripts/build-seaweedfs.sh > .seaweedfs-bin   # S3 server for the tests (test/helpers/s3-server.ts), cached outside the repo
bash scripts/build-oras.sh > .oras-bin   # the OCI registry client the release resources publish with (oras on PATH also works), cached outside the repo
echo "setup: ok (pulumi: $(cat .pulumi-bin))" >&2

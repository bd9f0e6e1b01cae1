# Sourced by the scripts that debootstrap a trixie rootfs into the cache. debian_mirror NAME prints the
# Debian archive to use: $DEBIAN_MIRROR, else the URI this machine's apt serves its own release's main
# component from; NAME prefixes the error when there is neither.
debian_mirror() {
  local mirror="${DEBIAN_MIRROR:-}" codename
  if [ -z "$mirror" ]; then
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    mirror="$(apt-cache policy 2>/dev/null | awk -v s="$codename/main" '$3 == s && $2 ~ /^https?:/ {print $2; exit}')"
  fi
  [ -n "$mirror" ] || { echo "$1: cannot tell the Debian archive from apt's sources; set DEBIAN_MIRROR" >&2; return 1; }
  echo "$mirror"
}

#!/usr/bin/env bash
# Builds the benchmark's "real scale" Kairos-like rootfs ONCE into a cache outside the repo: the tree a
# UKI initrd is made from (AuroraBoot's build-uki packs the whole rootfs), and the chroot the benchmark
# runs AuroraBoot's own sysext command in (bench/repart-chroot.ts), so it must carry systemd-repart 257
# and mkfs.erofs. Debian trixie, minbase, plus what a Kairos core image carries: kernel and modules,
# firmware, systemd, the disk, network and container tools (PACKAGES below). About 0.9 GB of files,
# within the 800 MB-1 GB the Kairos docs give as the firmware's limit for a UKI. Trixie packages go into
# the rootfs only, never onto the host. The benchmark only, never `npm test`: it is not in setup.sh.
#
# Idempotent: prints the rootfs path; builds only when the cache has none. Beside the rootfs:
# manifest.txt (package versions) and stats.txt (size, file count, build time).
set -euo pipefail
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

SUITE=trixie
# Bump when the package set or the trimming changes: a new cache folder is built.
LAYOUT=2
# Kernel, firmware and CPU microcode as a Kairos image ships them for real hardware: GPUs, the common
# server and desktop NICs, Wi-Fi. The kernel's initramfs is not built (INITRD=No below): build-uki drops
# /boot but its kernel, and a Kairos image's initrd is its own, not Debian's.
KERNEL=(linux-image-amd64)
FIRMWARE_NONFREE=(firmware-linux-nonfree firmware-misc-nonfree firmware-amd-graphics firmware-intel-graphics
  firmware-intel-misc firmware-iwlwifi firmware-realtek firmware-bnx2 firmware-bnx2x firmware-qlogic
  firmware-netxen firmware-myricom firmware-cavium intel-microcode amd64-microcode)
FIRMWARE_FREE=(firmware-linux-free)
PACKAGES=(
  systemd systemd-sysv udev systemd-boot-efi systemd-repart systemd-resolved systemd-timesyncd systemd-container dbus kmod
  erofs-utils squashfs-tools cryptsetup dmsetup lvm2 mdadm parted fdisk gdisk e2fsprogs xfsprogs btrfs-progs
  dosfstools cloud-guest-utils tpm2-tools
  openssh-server iproute2 nftables iptables conntrack ethtool wireguard-tools open-iscsi nfs-common curl ca-certificates
  containerd runc
  rsync jq sudo less nano tar gzip xz-utils zstd pciutils usbutils
  systemd-ukify python3-pefile sbsigntool
)
MIN_BYTES=$((800 * 1000 * 1000))

CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
BASE="$CACHE_ROOT/bench-rootfs"
DIR="$BASE/$SUITE-$LAYOUT"

if [ -f "$DIR/.complete" ]; then
  echo "$DIR/rootfs"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "build-bench-rootfs: debootstrap needs root (run the benchmark set-up as root or via sudo)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-bench-rootfs: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

# shellcheck source=lib/debian-mirror.sh
. "$(dirname "$0")/lib/debian-mirror.sh"
mirror="$(debian_mirror build-bench-rootfs)"

mkdir -p "$BASE"
work="$(mktemp -d "$BASE/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
started=$(date +%s)

echo "build-bench-rootfs: debootstrap $SUITE (minbase)" >&2
debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

# Inside the rootfs, in a private mount namespace so nothing is left mounted on the host. Maintainer
# scripts want /proc; policy-rc.d keeps them from starting sshd, containerd or iscsid on the host's kernel.
in_root() {
  unshare -m -- sh -c 'mount --make-rprivate / && mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$root" \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive INITRD=No "$@"
}
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# debootstrap's resolver cannot do apt's alternatives and virtual packages; apt installs the rest. A
# mirror without the component only warns on update, so the firmware's presence is checked afterwards.
echo "deb $mirror $SUITE main non-free-firmware" >"$root/etc/apt/sources.list"
in_root apt-get update -qq >&2
firmware=("${FIRMWARE_FREE[@]}")
if in_root apt-cache show --no-all-versions firmware-misc-nonfree >/dev/null 2>&1; then
  firmware+=("${FIRMWARE_NONFREE[@]}")
else
  echo "build-bench-rootfs: WARNING: $mirror serves no $SUITE/non-free-firmware; only main's firmware (${FIRMWARE_FREE[*]}) goes in, so the rootfs comes out smaller than a Kairos image" >&2
fi
echo "build-bench-rootfs: apt-get install ${#KERNEL[@]} kernel, ${#firmware[@]} firmware and ${#PACKAGES[@]} other packages" >&2
in_root apt-get install -y -q --no-install-recommends "${KERNEL[@]}" "${firmware[@]}" "${PACKAGES[@]}" >"$work/apt.log" 2>&1 || {
  tail -n 30 "$work/apt.log" >&2
  exit 1
}
downloaded=$(( $(date +%s) - started ))

# What the benchmark runs in here: AuroraBoot's sysext command (systemd-repart --make-ddi, 257's stock
# definitions, erofs).
repart_version="$(in_root systemd-repart --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')"
[ "${repart_version:-0}" -ge 257 ] || { echo "build-bench-rootfs: systemd-repart in the rootfs is ${repart_version:-missing}, the benchmark needs 257" >&2; exit 1; }
[ -f "$root/usr/lib/systemd/repart/definitions/sysext.repart.d/10-root.conf" ] || { echo "build-bench-rootfs: systemd-repart has no stock sysext definitions" >&2; exit 1; }
in_root mkfs.erofs --version >/dev/null 2>&1 || { echo "build-bench-rootfs: mkfs.erofs does not run in the rootfs" >&2; exit 1; }

kver="$(basename "$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)" | sed 's/^vmlinuz-//')"
[ -n "$kver" ] || { echo "build-bench-rootfs: the kernel package left no /boot/vmlinuz-*" >&2; exit 1; }
ln -sfn "vmlinuz-$kver" "$root/boot/vmlinuz"   # where build-uki takes the kernel from
# build-uki names its artifacts after these fields and needs KAIROS_RELEASE quoted; the rest of a
# Kairos image (immucore as /init, kairos-agent) is the benchmark's to add: it is not in Debian.
cat >"$root/etc/kairos-release" <<EOF
KAIROS_NAME="kairos-bench"
KAIROS_FLAVOR="debian"
KAIROS_FLAVOR_RELEASE="13"
KAIROS_VARIANT="core"
KAIROS_ARCH="amd64"
KAIROS_MODEL="generic"
KAIROS_RELEASE="v0.0.0-bench"
KAIROS_VERSION="v0.0.0-bench"
EOF

in_root dpkg-query -W -f='${Package} ${Version}\n' >"$work/manifest.txt"
echo "kernel $kver" >>"$work/manifest.txt"
echo "firmware ${firmware[*]}" >>"$work/manifest.txt"

# Trim as a shipped image is trimmed: no package caches or indexes, logs, docs or man pages (Kairos
# images drop them; locales stay). Host keys are made on first boot, and the rest depends on the day
# or the machine, so it is emptied to keep the tree the same for the same package versions.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
  "$root"/usr/share/{doc,man,info,lintian} "$root/var/cache/ldconfig/aux-cache" "$root/var/cache/debconf"/*-old \
  "$root"/etc/{passwd,group,shadow,gshadow,subuid,subgid}- "$root"/var/lib/dpkg/*-old "$root/etc/resolv.conf" \
  "$root/usr/sbin/policy-rc.d" "$root"/etc/ssh/ssh_host_*
# debootstrap's device nodes: the initrd is made of plain files, folders and links, and the chroot
# runner mounts its own /dev.
find "$root/dev" -mindepth 1 -delete
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo kairos-bench >"$root/etc/hostname"
sed -i -E 's/^([^:]*:[^:]*:)[0-9]+:/\10:/' "$root/etc/shadow"

bytes=$(du -sb "$root" | cut -f1)
entries=$(find "$root" | wc -l)
files=$(find "$root" -type f | wc -l)
[ "$bytes" -ge "$MIN_BYTES" ] || echo "build-bench-rootfs: WARNING: the rootfs is $bytes bytes, below the $MIN_BYTES the benchmark means to measure at" >&2
elapsed=$(( $(date +%s) - started ))
printf 'bytes %s\nentries %s\nfiles %s\ndownload_install_seconds %s\nbuild_seconds %s\n' \
  "$bytes" "$entries" "$files" "$downloaded" "$elapsed" >"$work/stats.txt"

mkdir -p "$DIR.new"
mv "$root" "$DIR.new/rootfs"
mv "$work/manifest.txt" "$work/stats.txt" "$DIR.new/"
rm -rf "$DIR"
mv "$DIR.new" "$DIR"
touch "$DIR/.complete"
echo "build-bench-rootfs: $DIR/rootfs ($bytes bytes, $files files, $entries entries, kernel $kver) in $elapsed s" >&2
echo "$DIR/rootfs"

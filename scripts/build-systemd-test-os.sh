#!/usr/bin/env bash
# Builds the base of the "Kairos-like with systemd" test OS ONCE into a cache outside the repo, for the
# demo and the boot tests that merge signed extensions (scripts/lib/systemd-test-os.ts adds the Kairos
# parts on top). Debian trixie, minbase, plus:
#   systemd systemd-sysv udev kmod     systemd 257 as PID 1 straight from the UKI's initrd-rootfs
#   libcryptsetup12 dmsetup            verity: systemd dlopen()s libcryptsetup ("Suggests" only)
#   systemd-boot-efi                   the 257 stub and boot loader, so the UKI is built on them
#   keyutils                           the report shows the kernel's .platform keyring
#   cryptsetup-bin systemd-cryptsetup  the installer stand-in's LUKS2 format and TPM2 enrolment
#   libtss2-*                          (systemd-cryptenroll/-cryptsetup dlopen() them), and the unlock
#   fdisk dosfstools e2fsprogs         the installer stand-in partitions and formats the disk
#   systemd-container                  systemd-dissect, which immucore's stand-in validates extensions
#                                      with (installed by apt after debootstrap: it needs a D-Bus system
#                                      bus, a virtual package debootstrap cannot resolve)
#   systemd-boot                       systemd-bless-boot and its generator (boot counting marks a good
#                                      boot; without it an upgraded entry falls back after 3 boots);
#                                      installed with systemd-container, after debootstrap
#   curl jq                            the kairos-agent stand-in's registry and catalog client
#   sbsigntool                         sbverify: the agent's Authenticode check of an upgrade's UKI
# and trixie's signed 6.12 kernel (its config has DM_VERITY_VERIFY_ROOTHASH_SIG with the platform
# keyring fallback; bookworm's 6.1 lacks it) with only the modules extensions and the install medium
# need. The NIC is configured by systemd-networkd (in the systemd package), so no iproute2.
# Trixie packages go into the rootfs only, never onto the host.
#
# Idempotent: prints the rootfs path; builds only when the cache has none. The result is trimmed and
# normalised (empty machine-id, fixed shadow dates, no logs or caches) so that it is the same tree
# for the same package versions; the versions are listed in manifest.txt beside it.
set -euo pipefail
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

SUITE=trixie
# Bump when the package set, the module list or the trimming changes: a new cache folder is built.
LAYOUT=4
PACKAGES=systemd,systemd-sysv,udev,kmod,libcryptsetup12,dmsetup,systemd-boot-efi,keyutils,cryptsetup-bin,systemd-cryptsetup,libtss2-esys-3.0.2-0t64,libtss2-rc0t64,libtss2-mu-4.0.1-0t64,libtss2-tcti-device0t64,fdisk,dosfstools,e2fsprogs,curl,jq,sbsigntool
# Verity-checked extensions (loop, device-mapper, dm-verity, erofs, overlay), EFI variables, the
# install medium (AHCI CD-ROM, ISO 9660) that carries the cloud-config, and the installed disk
# (virtio, its FAT ESP, the LUKS2 persistent partition with ext4; libcryptsetup reaches the kernel's
# ciphers through AF_ALG), the user-mode network to the test registry (virtio-net) and the files the
# host passes in through QEMU's fw_cfg (qemu_fw_cfg: /sys/firmware/qemu_fw_cfg/by_name/opt/…).
# modprobe adds dependencies.
MODULES=(loop dm_mod dm_verity erofs overlay efivarfs ahci sr_mod isofs
  virtio_blk vfat nls_cp437 nls_iso8859_1 nls_ascii dm_crypt xts ext4 af_alg algif_skcipher algif_hash
  virtio_net qemu_fw_cfg)

CACHE_ROOT="${PULUMI_KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-kairos}"
BASE="$CACHE_ROOT/systemd-test-os"
DIR="$BASE/$SUITE-$LAYOUT"

if [ -f "$DIR/.complete" ]; then
  echo "$DIR/rootfs"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "build-systemd-test-os: debootstrap needs root (run the set-up as root or via sudo)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-systemd-test-os: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

# shellcheck source=lib/debian-mirror.sh
. "$(dirname "$0")/lib/debian-mirror.sh"
mirror="$(debian_mirror build-systemd-test-os)"

mkdir -p "$BASE"
work="$(mktemp -d "$BASE/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
started=$(date +%s)

echo "build-systemd-test-os: debootstrap $SUITE (minbase + $PACKAGES)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

# Inside the rootfs, in a private mount namespace so nothing is left mounted on the host.
in_root() { unshare -m -- chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

# The kernel: downloaded (not installed, which would build an initramfs) and unpacked beside the rootfs.
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root apt-get update -qq >&2
in_root apt-get install -y -qq --no-install-recommends -o APT::Sandbox::User=root systemd-container systemd-boot >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; exit 1; }
kpkg="$(in_root apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)"
[ -n "$kpkg" ] || { echo "build-systemd-test-os: cannot resolve the kernel package behind linux-image-amd64 in $SUITE" >&2; exit 1; }
mkdir -p "$root/tmp/kernel"
in_root sh -c "cd /tmp/kernel && apt-get download -q -o APT::Sandbox::User=root $kpkg" >&2
deb="$(find "$root/tmp/kernel" -maxdepth 1 -name '*.deb' | head -n 1)"
[ -n "$deb" ] || { echo "build-systemd-test-os: apt-get download produced no .deb for $kpkg" >&2; exit 1; }
dpkg-deb -x "$deb" "$root/tmp/kernel/x"
kver="$(basename "$(find "$root/tmp/kernel/x/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)" | sed 's/^vmlinuz-//')"
[ -n "$kver" ] || { echo "build-systemd-test-os: $kpkg has no boot/vmlinuz-*" >&2; exit 1; }
kmods="/tmp/kernel/x/lib/modules/$kver"

# Only the listed modules and what they depend on, with the package's own module metadata. depmod and
# modprobe look below BASE/lib/modules; the package (merged /usr) ships usr/lib/modules.
ln -sfn usr/lib "$root/tmp/kernel/x/lib"
in_root depmod -b /tmp/kernel/x "$kver"
mapfile -t needed < <(in_root modprobe -a -d /tmp/kernel/x -S "$kver" --show-depends "${MODULES[@]}" | awk '$1 == "insmod" {print $2}' | sort -u)
[ ${#needed[@]} -ge ${#MODULES[@]} ] || { echo "build-systemd-test-os: no module files resolved for ${MODULES[*]}" >&2; exit 1; }
for m in "${needed[@]}"; do
  rel="${m#"$kmods"/}"
  [ "$rel" != "$m" ] || { echo "build-systemd-test-os: module $m is not below $kmods" >&2; exit 1; }
  mkdir -p "$root/usr/lib/modules/$kver/$(dirname "$rel")"
  cp "$root$m" "$root/usr/lib/modules/$kver/$rel"
done
cp "$root$kmods"/modules.builtin* "$root$kmods"/modules.order "$root/usr/lib/modules/$kver/"
in_root depmod "$kver"
mkdir -p "$root/boot"
cp "$root/tmp/kernel/x/boot/vmlinuz-$kver" "$root/boot/vmlinuz-$kver"
cp "$root/tmp/kernel/x/boot/config-$kver" "$work/kernel-config"
ln -sfn "vmlinuz-$kver" "$root/boot/vmlinuz"

# The kernel options the issue depends on, read from the package's own config.
for opt in CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG=y CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG_PLATFORM_KEYRING=y CONFIG_LOAD_UEFI_KEYS=y CONFIG_INTEGRITY_PLATFORM_KEYRING=y; do
  grep -qx "$opt" "$work/kernel-config" || { echo "build-systemd-test-os: $kpkg lacks $opt" >&2; exit 1; }
done

in_root dpkg-query -W -f='${Package} ${Version}\n' >"$work/manifest.txt"
echo "kernel $kpkg $kver" >>"$work/manifest.txt"

# Trim what a booted test OS never reads, and normalise what depends on the day or the machine.
rm -rf "$root/tmp/kernel" "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
  "$root"/usr/share/{doc,man,info,locale,lintian,bash-completion,zsh,fish} "$root/usr/lib/x86_64-linux-gnu/gconv" \
  "$root/usr/lib/udev/hwdb.bin" "$root/etc/hwdb.bin" "$root/var/cache/ldconfig/aux-cache" "$root/var/cache/debconf"/*-old \
  "$root"/etc/{passwd,group,shadow,gshadow,subuid,subgid}- "$root"/var/lib/dpkg/*-old "$root/etc/resolv.conf"
# debootstrap's device nodes: the kernel's devtmpfs provides /dev at boot, and a rootfs source must be
# plain files, folders and links.
find "$root/dev" -mindepth 1 -delete
mkdir -p "$root/usr/share/locale"
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo kairos-test >"$root/etc/hostname"
# Day-of-build fields in /etc/shadow (last password change) would make every build differ.
sed -i -E 's/^([^:]*:[^:]*:)[0-9]+:/\10:/' "$root/etc/shadow"

mkdir -p "$DIR.new"
mv "$root" "$DIR.new/rootfs"
mv "$work/manifest.txt" "$work/kernel-config" "$DIR.new/"
rm -rf "$DIR"
mv "$DIR.new" "$DIR"
touch "$DIR/.complete"
echo "build-systemd-test-os: $DIR/rootfs ($(du -sm "$DIR/rootfs" | cut -f1) MB, kernel $kver) in $(( $(date +%s) - started )) s" >&2
echo "$DIR/rootfs"

#!/usr/bin/env bash
# The bare tool chain for a signed sysext DDI, with no provider around it: the floor the provider's
# build is compared against. usage: sysext-bare.sh SRC_DIR OUT KEY CERT COMPRESSION(none|lz4|lz4hc)
set -euo pipefail
src=$1 out=$2 key=$3 cert=$4 comp=$5
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
zflag=(); [ "$comp" = none ] || zflag=(-z "$comp")
env -u SOURCE_DATE_EPOCH mkfs.erofs --quiet -T 0 -U 11111111-2222-4333-8444-555555555555 --all-root -x -1 "${zflag[@]}" "$w/root" "$src"
truncate -s %4096 "$w/root"
veritysetup format "$w/root" "$w/verity" --hash=sha256 --data-block-size=4096 --hash-block-size=4096 \
  --salt="$(printf 0%.0s {1..64})" --uuid=11111111-2222-4333-8444-666666666666 --root-hash-file="$w/rh" >/dev/null
truncate -s %4096 "$w/verity"
rh=$(cat "$w/rh"); printf %s "$rh" > "$w/rh.txt"
OPENSSL_CONF=/dev/null openssl smime -sign -in "$w/rh.txt" -signer "$cert" -inkey "$key" -noattr -binary -outform DER -out "$w/rh.p7s"
fp=$(openssl x509 -in "$cert" -outform DER | sha256sum | cut -c1-64)
printf '{"rootHash":"%s","certificateFingerprint":"%s","signature":"%s"}' "$rh" "$fp" "$(base64 -w0 "$w/rh.p7s")" > "$w/sig"
truncate -s 16384 "$w/sig"
s1=$(( $(stat -c%s "$w/root") / 512 )); s2=$(( $(stat -c%s "$w/verity") / 512 ))
p2=$((2048 + s1)); p3=$((p2 + s2))
{ head -c $((2048 * 512)) /dev/zero; cat "$w/root" "$w/verity" "$w/sig"; } > "$out"
truncate -s $(( ((p3 + 32 + 33) * 512 + 4095) / 4096 * 4096 )) "$out"
sfdisk --quiet --no-reread --no-tell-kernel --wipe never --wipe-partitions never "$out" >/dev/null <<SFD
label: gpt
unit: sectors
first-lba: 2048
start=2048, size=$s1, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root-x86-64", attrs="GUID:60"
start=$p2, size=$s2, type=2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5, name="root-x86-64-verity", attrs="GUID:60"
start=$p3, size=32, type=41092B05-9FC8-4523-994F-2DEF0408B176, name="root-x86-64-verity-sig", attrs="GUID:60"
SFD

#!/usr/bin/env bash
# Reflinks (issue 15): cp of a SIZE_MIB file (2 GiB by default) on Cairn
# (plain cp: copy_file_range shares the blocks), kernel btrfs
# (cp --reflink=always) and kernel ext4 (plain cp, a real copy), loop and
# FUSE images on the same backing disk, side by side in one run: the time
# of the copy made durable (cp, then fsync of the copy), the space it took
# (df's used bytes after minus before), and the space a 4 KiB write into
# the copy then takes. Median of RUNS rounds, a fresh filesystem each.
#
#   sudo bench/reflink.sh
#   SIZE_MIB=512 RUNS=5 sudo bench/reflink.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
SIZE_MIB=${SIZE_MIB:-2048}
SYSTEMS=${SYSTEMS:-"cairn btrfs ext4"}
command -v mkfs.btrfs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q btrfs-progs >/dev/null
IMG=$DIR/reflink.img
SRC=$DIR/reflink.src
# One source file for every system: the same bytes, made once.
[ "$(stat -c %s "$SRC" 2>/dev/null || echo 0)" = $((SIZE_MIB << 20)) ] ||
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$SRC"

mkfs_sys() {
  rm -f "$IMG"; truncate -s $(( SIZE_MIB * 4 + 2048 ))M "$IMG"
  case $1 in
  cairn) "$BUILD/mkfs.cairn" -q -f "$IMG" ;;
  ext4) mkfs.ext4 -q -F "$IMG" ;;
  btrfs) mkfs.btrfs -q -f "$IMG" >/dev/null ;;
  esac
}
used() { sync -f "$MNT/a"; df -B1 --output=used "$MNT" | tail -1; }
copy() {
  case $1 in
  btrfs) cp --reflink=always "$MNT/a" "$MNT/b" ;;
  *) cp "$MNT/a" "$MNT/b" ;;
  esac
  sync "$MNT/b"
}

for round in $(seq 1 "$RUNS"); do
  for sys in $SYSTEMS; do
    mkfs_sys "$sys"
    mount_sys "$sys"
    cp "$SRC" "$MNT/a"
    sync "$MNT/a"
    drop_caches
    u0=$(used)
    t0=$(now)
    copy "$sys"
    t1=$(now)
    u1=$(used)
    cmp -s "$MNT/a" "$MNT/b" || { echo "bench: $sys: the copy differs" >&2; exit 1; }
    dd if=/dev/zero of="$MNT/b" bs=4k seek=1000 count=1 conv=notrunc status=none
    sync "$MNT/b"
    # Cairn and btrfs commit on their own schedule: a remount makes df exact.
    umount_sys "$sys"; mount_sys "$sys"
    u2=$(used)
    record "$sys" cp_s "$(echo "$t1 - $t0" | bc -l)"
    record "$sys" cp_mib "$(echo "($u1 - $u0) / 1048576" | bc -l)"
    record "$sys" write_kib "$(echo "($u2 - $u1) / 1024" | bc -l)"
    umount_sys "$sys"
  done
done

machine_line
echo "cp of a $SIZE_MIB MiB file, made durable; median of $RUNS rounds"
printf '%-8s %12s %14s %22s\n' system "cp (s)" "space (MiB)" "4 KiB write (KiB)"
for sys in $SYSTEMS; do
  printf '%-8s %12.3f %14.1f %22.0f\n' "$sys" "$(med "$sys" cp_s)" "$(med "$sys" cp_mib)" "$(med "$sys" write_kib)"
done

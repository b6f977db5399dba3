#!/usr/bin/env bash
# Snapshots (issue 15): the time to snapshot a subvolume, and to delete the
# snapshot and have its space back, as the subvolume grows (SIZES files of
# 4 KiB spread over directories of 1,000): Cairn (cairnctl subvolume
# snapshot / delete / sync) against kernel btrfs (btrfs subvolume snapshot /
# delete / sync) on loop and FUSE images on the same backing disk. One
# modified file per round between snapshot and delete, so the delete has
# something of its own to free. Flat with the size is the target (a
# snapshot shares the root; a delete of a snapshot that shares nearly all
# drops a few nodes). Median of RUNS rounds per size.
#
#   sudo bench/snapshot.sh
#   SIZES="1000 10000" RUNS=5 sudo bench/snapshot.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
SIZES=${SIZES:-"1000 10000 100000"}
SYSTEMS=${SYSTEMS:-"cairn btrfs"}
command -v mkfs.btrfs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q btrfs-progs >/dev/null
SCALE=$DIR/scale
cc -O2 -o "$SCALE" "$ROOT/bench/src/scale.c"
IMG=$DIR/snapshot.img
CTL=$BUILD/cairnctl

mkfs_sys() {
  rm -f "$IMG"; truncate -s 8G "$IMG"
  case $1 in
  cairn) "$BUILD/mkfs.cairn" -q -f "$IMG" ;;
  btrfs) mkfs.btrfs -q -f "$IMG" >/dev/null ;;
  esac
}
sv() {  # SYSTEM create|snapshot|delete|sync ARGS
  local sys=$1 op=$2; shift 2
  case $sys in
  cairn) "$CTL" subvolume "$op" "$@" >/dev/null ;;
  btrfs) btrfs subvolume "$op" "$@" >/dev/null ;;
  esac
}
secs() { local t0; t0=$(now); "$@"; echo "$(now) - $t0" | bc -l; }

for n in $SIZES; do
  for sys in $SYSTEMS; do
    mkfs_sys "$sys"
    mount_sys "$sys"
    sv "$sys" create "$MNT/vol"
    "$SCALE" create tree "$MNT/vol" "$n" >/dev/null
    sync -f "$MNT/vol"; sync "$MNT/vol/d0/f0"
    for round in $(seq 1 "$RUNS"); do
      record "$sys" "snap$n" "$(secs sv "$sys" snapshot "$MNT/vol" "$MNT/s$round")"
      echo "$round" > "$MNT/s$round/d0/f0"
      sync "$MNT/s$round/d0/f0"
      record "$sys" "del$n" "$(secs bash -c "$(declare -f sv); CTL=$CTL; sv $sys delete $MNT/s$round && sv $sys sync $MNT")"
    done
    umount_sys "$sys"
  done
done

machine_line
echo "snapshot and delete (+ sync) of a subvolume of N files; median of $RUNS rounds, seconds"
printf '%-8s %10s %12s %12s\n' system files snapshot "delete+sync"
for n in $SIZES; do
  for sys in $SYSTEMS; do
    printf '%-8s %10s %12.3f %12.3f\n' "$sys" "$n" "$(med "$sys" "snap$n")" "$(med "$sys" "del$n")"
  done
done

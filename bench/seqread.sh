#!/usr/bin/env bash
# Sequential read under the same conditions for every system (issue 4's read
# target). bench.sh reads each system's file right after writing it, one
# system after another; on this virtual machine the raw file's read right
# after its write is the fastest read of the day (guest memory just touched
# by the write), and the device's speed drifts by 2x within minutes. Here
# every system holds the same SIZE_MB file at once (the raw backing file,
# kernel btrfs on a loop image, fuse2fs, Cairn), and ROUNDS rounds each read
# every file once after dropping caches, in an order that rotates from round
# to round, so drift and position hit all systems alike. Prints each
# system's median and every run, and ratios to the raw file.
#
#   sudo bench/seqread.sh                 # about 5 minutes here
#   ROUNDS=3 SIZE_MB=1024 sudo bench/seqread.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
SIZE_MB=${SIZE_MB:-2048}
ROUNDS=${ROUNDS:-7}
SYSTEMS=${SYSTEMS:-"raw btrfs fuse2fs cairn"}
CAIRN_OPTS=${CAIRN_OPTS:-}
IMG_SIZE=$(( SIZE_MB + 1024 ))M
command -v fuse2fs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse2fs >/dev/null

# Each system at its own mount point; the shared cleanup handles $MNT and $LOOP.
declare -A FILE
unmount_all() {
  for m in "$DIR"/mnt-*; do mountpoint -q "$m" && { umount "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || true; }; done
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
  LOOP=
  rm -f "$DIR/raw-seq"
}
trap 'rc=$?; unmount_all; (exit $rc); bench_cleanup' EXIT

dd if=/dev/urandom of="$DIR/source" bs=1M count="$SIZE_MB" status=none
present=()
for sys in $SYSTEMS; do
  m=$DIR/mnt-$sys
  mkdir -p "$m"
  case $sys in
  raw) FILE[raw]=$DIR/raw-seq ;;
  btrfs)
    grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || continue
    truncate -s "$IMG_SIZE" "$DIR/btrfs.img"
    mkfs.btrfs -q -f "$DIR/btrfs.img"
    LOOP=$(losetup -f --show "$DIR/btrfs.img")
    mount "$LOOP" "$m"; FILE[btrfs]=$m/seq ;;
  fuse2fs)
    truncate -s "$IMG_SIZE" "$DIR/ext4.img"
    mkfs.ext4 -q -F "$DIR/ext4.img"
    fuse2fs "$DIR/ext4.img" "$m" -o rw >/dev/null; FILE[fuse2fs]=$m/seq ;;
  cairn)
    "$BUILD/mkfs.cairn" -q -s "$IMG_SIZE" "$DIR/cairn.img"
    "$BUILD/cairn" "$DIR/cairn.img" "$m" ${CAIRN_OPTS:+-o $CAIRN_OPTS}; FILE[cairn]=$m/seq ;;
  esac
  dd if="$DIR/source" of="${FILE[$sys]}" bs=1M conv=fsync status=none
  present+=("$sys")
done
rm -f "$DIR/source"

read_mibs() {
  drop_caches
  local t0 t1; t0=$(now)
  dd if="$1" of=/dev/null bs=1M status=none
  t1=$(now); echo "$SIZE_MB / ($t1 - $t0)" | bc -l
}
n=${#present[@]}
for r in $(seq "$ROUNDS"); do
  for j in $(seq 0 $(( n - 1 ))); do
    sys=${present[$(( (j + r) % n ))]}
    record "$sys" read "$(read_mibs "${FILE[$sys]}")"
  done
  echo "round $r done" >&2
done

printf '\nSequential read, same conditions: %s MiB, %s rounds in rotating order, median\n' "$SIZE_MB" "$ROUNDS"
machine_line; echo
raw=$(med raw read)
printf '%-10s %12s %10s   %s\n' system "MiB/s" "/ raw" "every run (MiB/s)"
for sys in "${present[@]}"; do
  printf '%-10s %12.1f %10s   %s\n' "$sys" "$(med "$sys" read)" "$(ratio "$(med "$sys" read)" "$raw")" \
    "$(echo ${R["$sys|read"]} | xargs printf '%.0f ')"
done

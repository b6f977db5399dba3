#!/usr/bin/env bash
# Small appends (issue 13): COUNT appends of SIZE bytes through one
# descriptor, as a logger or a journal writes, on Cairn, kernel ext4 (loop
# image) and fuse2fs (the same ext4 image format through FUSE), side by
# side in one run. Prints the median microseconds per append of RUNS runs
# and Cairn's ratio to each (below 1: Cairn is faster).
#
#   sudo bench/appends.sh                 # 300,000 appends of 4 and 64 bytes, 3 runs
#   COUNT=3000000 sudo bench/appends.sh   # the issue's 3 million
set -euo pipefail
. "$(dirname "$0")/common.sh"
COUNT=${COUNT:-300000}
SIZES=${SIZES:-"4 64"}
SYSTEMS=${SYSTEMS:-"ext4 fuse2fs cairn"}
IMG_SIZE=${IMG_SIZE:-2G}
command -v fuse2fs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse2fs >/dev/null
APPEND=$DIR/append
cc -O2 -o "$APPEND" "$ROOT/bench/src/append.c"

setup() {
  case $1 in
  ext4)
    truncate -s "$IMG_SIZE" "$DIR/ext4.img"; mkfs.ext4 -q -F "$DIR/ext4.img"
    LOOP=$(losetup -f --show "$DIR/ext4.img"); mount "$LOOP" "$MNT" ;;
  fuse2fs)
    truncate -s "$IMG_SIZE" "$DIR/ext4.img"; mkfs.ext4 -q -F "$DIR/ext4.img"
    fuse2fs "$DIR/ext4.img" "$MNT" -o rw >/dev/null ;;
  cairn)
    rm -f "$DIR/cairn.img"; "$BUILD/mkfs.cairn" -q -s "$IMG_SIZE" "$DIR/cairn.img"
    "$BUILD/cairn" "$DIR/cairn.img" "$MNT" ;;
  esac
}
teardown() {
  case $1 in
  ext4) umount "$MNT"; losetup -d "$LOOP"; LOOP=; rm -f "$DIR/ext4.img" ;;
  fuse2fs) fusermount3 -u "$MNT"; sleep 1; rm -f "$DIR/ext4.img" ;;
  cairn) fusermount3 -u "$MNT"; flock -w 120 "$DIR/cairn.img" true; rm -f "$DIR/cairn.img" ;;
  esac
}

machine_line
echo "appends: $COUNT per run, sizes: $SIZES bytes, runs: $RUNS"
for run in $(seq "$RUNS"); do
  for sys in $SYSTEMS; do
    setup "$sys"
    for size in $SIZES; do
      record "$sys" "$size" "$("$APPEND" "$MNT/log.$size" "$COUNT" "$size")"
    done
    teardown "$sys"
  done
done

printf '\n%-22s' "µs per append"
for sys in $SYSTEMS; do printf '%12s' "$sys"; done
printf '%16s%16s\n' "cairn/fuse2fs" "cairn/ext4"
for size in $SIZES; do
  printf '%-22s' "$size-byte appends"
  for sys in $SYSTEMS; do printf '%12s' "$(med "$sys" "$size")"; done
  printf '%16s%16s\n' "$(ratio "$(med cairn "$size")" "$(med fuse2fs "$size")")" \
    "$(ratio "$(med cairn "$size")" "$(med ext4 "$size")")"
done

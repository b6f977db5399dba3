#!/usr/bin/env bash
# Cairn benchmarks: Cairn and its baselines side by side, in one run, on the
# same backing filesystem. Prints medians of RUNS runs and ratios.
#
#   sudo bench/bench.sh              # everything (about 15-25 minutes here)
#   RUNS=1 SIZE_MB=512 RAND_SECS=5 NFILES=2000 sudo bench/bench.sh   # a quick look
#
# Baselines: the raw backing file (the physical limit), kernel btrfs on a
# loop image (default checksums), fuse2fs on an ext4 image (a FUSE peer).
# Workloads: sequential write SIZE_MB in 1 MiB blocks + fsync; sequential
# read of it after dropping caches; random 4 KiB writes in a 512 MiB file
# for RAND_SECS s + fsync (fio); create, stat and unlink NFILES files in one
# directory. Then Cairn's csum=sync vs csum=async for crc32c and sha256 on
# the sequential write (a stream: bench/csum.sh pairs the modes and adds
# fsync-bound writes, where checksumming is on the critical path).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
SIZE_MB=${SIZE_MB:-2048}
RAND_SECS=${RAND_SECS:-20}
NFILES=${NFILES:-20000}
SYSTEMS=${SYSTEMS:-"raw btrfs fuse2fs cairn"}
# CSUM_ALGOS="" skips the csum=sync/async comparison.
IMG_SIZE=$(( SIZE_MB * 3 + 4096 ))M

command -v fio >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q fio >/dev/null
command -v fuse2fs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse2fs >/dev/null



# setup SYSTEM [cairn mkfs args] [cairn mount options]: leaves a filesystem at $TARGET
setup() {
  local sys=$1 mkfs_args=${2:-} mopts=${3:-}
  case $sys in
  raw) TARGET=$DIR/raw; rm -rf "$TARGET"; mkdir -p "$TARGET" ;;
  btrfs)
    truncate -s "$IMG_SIZE" "$DIR/btrfs.img"
    mkfs.btrfs -q -f "$DIR/btrfs.img"
    LOOP=$(losetup -f --show "$DIR/btrfs.img")
    mount "$LOOP" "$MNT"; TARGET=$MNT ;;
  fuse2fs)
    truncate -s "$IMG_SIZE" "$DIR/ext4.img"
    mkfs.ext4 -q -F "$DIR/ext4.img"
    fuse2fs "$DIR/ext4.img" "$MNT" -o rw >/dev/null; TARGET=$MNT ;;
  cairn)
    rm -f "$DIR/cairn.img"
    "$BUILD/mkfs.cairn" -q -s "$IMG_SIZE" $mkfs_args "$DIR/cairn.img"
    "$BUILD/cairn" "$DIR/cairn.img" "$MNT" ${mopts:+-o $mopts}; TARGET=$MNT ;;
  esac
}

teardown() {
  local sys=$1
  case $sys in
  raw) rm -rf "$DIR/raw" ;;
  btrfs) umount "$MNT"; losetup -d "$LOOP"; LOOP=; rm -f "$DIR/btrfs.img" ;;
  fuse2fs) fusermount3 -u "$MNT"; sleep 1; rm -f "$DIR/ext4.img" ;;
  cairn) fusermount3 -u "$MNT"; flock -w 120 "$DIR/cairn.img" true; rm -f "$DIR/cairn.img" ;;
  esac
}

# Each workload prints one number.
seq_write() {  # MiB/s, 1 MiB blocks, fsync included
  local t0 t1; t0=$(now)
  dd if=/dev/zero of="$TARGET/seq" bs=1M count="$SIZE_MB" conv=fsync status=none
  t1=$(now); echo "$SIZE_MB / ($t1 - $t0)" | bc -l
}
seq_read() {   # MiB/s after dropping caches
  drop_caches
  local t0 t1; t0=$(now)
  dd if="$TARGET/seq" of=/dev/null bs=1M status=none
  t1=$(now); echo "$SIZE_MB / ($t1 - $t0)" | bc -l
}
rand_write() { # IOPS, 4 KiB random writes in 512 MiB, fsync at the end
  fio --name=rand --filename="$TARGET/rand" --size=512M --rw=randwrite --bs=4k --ioengine=psync \
      --time_based --runtime="$RAND_SECS" --end_fsync=1 --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["jobs"][0]["write"]["iops"])'
}
meta_ops() {   # creates/s stats/s unlinks/s
  mkdir -p "$TARGET/meta"
  python3 - "$TARGET/meta" "$NFILES" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
t = time.monotonic()
for i in range(n): os.close(os.open(f"{d}/f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
c = time.monotonic() - t; t = time.monotonic()
for i in range(n): os.stat(f"{d}/f{i}")
s = time.monotonic() - t; t = time.monotonic()
for i in range(n): os.unlink(f"{d}/f{i}")
u = time.monotonic() - t
print(n / c, n / s, n / u)
PY
}


for run in $(seq "$RUNS"); do
  for sys in $SYSTEMS; do
    if [ "$sys" = btrfs ] && ! grep -qw btrfs /proc/filesystems && ! modprobe btrfs 2>/dev/null; then continue; fi
    setup "$sys"
    record "$sys" seq_write "$(seq_write)"
    record "$sys" seq_read "$(seq_read)"
    rm -f "$TARGET/seq"
    record "$sys" rand_write "$(rand_write)"
    rm -f "$TARGET/rand"
    read -r c s u <<< "$(meta_ops)"
    record "$sys" creates "$c"; record "$sys" stats "$s"; record "$sys" unlinks "$u"
    teardown "$sys"
    echo "run $run: $sys done" >&2
  done
  for csum in ${CSUM_ALGOS-crc32c sha256}; do
    for mode in sync async; do
      setup cairn "--csum $csum" "csum=$mode"
      record "cairn-$csum-$mode" seq_write "$(seq_write)"
      teardown cairn
    done
  done
  echo "run $run: checksum modes done" >&2
done

printf '\nCairn benchmark: median of %s run(s); %s MiB sequential, %s s random, %s files\n' "$RUNS" "$SIZE_MB" "$RAND_SECS" "$NFILES"
machine_line; echo
printf '%-12s %12s %12s %12s %12s %12s %12s\n' workload raw btrfs fuse2fs cairn "cairn/raw" "cairn/peer"
for w in seq_write seq_read rand_write creates stats unlinks; do
  raw=$(med raw $w); btr=$(med btrfs $w); f2=$(med fuse2fs $w); ca=$(med cairn $w)
  case $w in seq_*) peer=$btr ;; *) peer=$f2 ;; esac
  printf '%-12s %12.1f %12.1f %12.1f %12.1f %12s %12s\n' "$w" "${raw:-0}" "${btr:-0}" "${f2:-0}" "${ca:-0}" \
    "$(ratio "$ca" "$raw")" "$(ratio "$ca" "$peer")"
done
echo "(seq_write/seq_read in MiB/s, rand_write in IOPS, creates/stats/unlinks per second;"
echo " cairn/peer compares with btrfs for sequential I/O and with fuse2fs for the rest)"
echo
printf '%-10s %14s %14s %10s\n' checksum "sync MiB/s" "async MiB/s" async/sync
for csum in ${CSUM_ALGOS-crc32c sha256}; do
  s=$(med "cairn-$csum-sync" seq_write); a=$(med "cairn-$csum-async" seq_write)
  printf '%-10s %14.1f %14.1f %10.2f\n' "$csum" "$s" "$a" "$(echo "$a / $s" | bc -l)"
done

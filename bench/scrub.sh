#!/usr/bin/env bash
# Scrub benchmark (issue 6): SIZE_MB of data in files on a Cairn image and on
# a kernel btrfs loop image of the same size; then, after dropping caches:
#   raw      sequential read of as many bytes of the Cairn image file as it
#            has in use: fio O_DIRECT io_uring 1 MiB x 32 in flight (the
#            device's best), and dd 1 MiB buffered (one stream, readahead)
#   cairn    offline scrub (cairnctl scrub IMAGE) and online (scrub start -B)
#   btrfs    btrfs scrub start -B (when the kernel has btrfs)
#   fsck     fsck.cairn time, structure only and with --check-data
# Median of RUNS runs; speeds in MiB/s of data scrubbed.
#   sudo bench/scrub.sh       (about 5 minutes here)
set -euo pipefail
. "$(dirname "$0")/common.sh"
SIZE_MB=${SIZE_MB:-2048}
IMG_MB=$(( SIZE_MB + SIZE_MB / 2 + 512 ))
have_btrfs() { command -v btrfs >/dev/null && { grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; }; }
command -v fio >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q fio >/dev/null
command -v btrfs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q btrfs-progs >/dev/null 2>&1 || true

fill() {  # the same files on whatever is mounted at $MNT: 1 big, 64 medium, 1000 small
  local big=$(( SIZE_MB * 3 / 4 )) med=$(( SIZE_MB / 4 / 64 ))
  dd if=/dev/urandom of="$MNT/big" bs=1M count=$big status=none
  mkdir -p "$MNT/med" "$MNT/small"
  for i in $(seq 64); do head -c ${med}M "$MNT/big" > "$MNT/med/m$i"; done
  for i in $(seq 1000); do head -c 4096 /dev/urandom > "$MNT/small/s$i"; done
  sync
}
secs() { local t0 t1; t0=$(now); "$@" > /dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }

for run in $(seq "$RUNS"); do
  rm -f "$DIR/cairn.img"
  "$BUILD/mkfs.cairn" -q -s ${IMG_MB}M "$DIR/cairn.img"
  "$BUILD/cairn" "$DIR/cairn.img" "$MNT"
  fill
  fusermount3 -u "$MNT"; flock -w 120 "$DIR/cairn.img" true
  used=$("$BUILD/cairnctl" scrub --readonly --json "$DIR/cairn.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_scrubbed"] >> 20)')
  drop_caches
  t=$(secs dd if="$DIR/cairn.img" of=/dev/null bs=1M count="$used")
  record raw-dd mibs "$(echo "$used / $t" | bc -l)"
  # The device's best: O_DIRECT, io_uring, 32 reads of 1 MiB in flight.
  drop_caches
  record raw mibs "$(fio --name=raw --filename="$DIR/cairn.img" --rw=read --bs=1M --size=${used}M --direct=1 \
      --ioengine=io_uring --iodepth=32 --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw"] / 1024)')"
  drop_caches
  t=$(secs "$BUILD/cairnctl" scrub "$DIR/cairn.img")
  record cairn-offline mibs "$(echo "$used / $t" | bc -l)"
  drop_caches
  t=$(secs "$BUILD/fsck.cairn" "$DIR/cairn.img")
  record fsck secs "$t"
  drop_caches
  t=$(secs "$BUILD/fsck.cairn" --check-data "$DIR/cairn.img")
  record fsck-check-data secs "$t"
  "$BUILD/cairn" "$DIR/cairn.img" "$MNT"
  drop_caches
  t=$(secs "$BUILD/cairnctl" scrub start -B "$MNT")
  record cairn-online mibs "$(echo "$used / $t" | bc -l)"
  fusermount3 -u "$MNT"; flock -w 120 "$DIR/cairn.img" true
  rm -f "$DIR/cairn.img"
  if have_btrfs; then
    truncate -s ${IMG_MB}M "$DIR/btrfs.img"
    mkfs.btrfs -q -f "$DIR/btrfs.img"
    LOOP=$(losetup -f --show "$DIR/btrfs.img")
    mount "$LOOP" "$MNT"
    fill
    drop_caches
    t=$(secs btrfs scrub start -B "$MNT")
    bused=$(btrfs scrub status -R "$MNT" | awk '/data_bytes_scrubbed|tree_bytes_scrubbed/ { s += $2 } END { print int(s / 1048576) }')
    record btrfs mibs "$(echo "$bused / $t" | bc -l)"
    umount "$MNT"; losetup -d "$LOOP"; LOOP=; rm -f "$DIR/btrfs.img"
  fi
  echo "run $run done ($used MiB used)" >&2
done

printf '\nCairn scrub benchmark: median of %s run(s), %s MiB of data (1 large file, 64 medium, 1000 of 4 KiB)\n' "$RUNS" "$SIZE_MB"
machine_line; echo
raw=$(med raw mibs)
printf '%-28s %10s %10s\n' "" "MiB/s" "/raw"
for w in raw raw-dd cairn-offline cairn-online btrfs; do
  v=$(med $w mibs); [ -n "$v" ] || continue
  printf '%-28s %10.1f %10s\n' "$w" "$v" "$(ratio "$v" "$raw")"
done
[ -n "$(med btrfs mibs)" ] && echo "cairn offline / btrfs scrub: $(ratio "$(med cairn-offline mibs)" "$(med btrfs mibs)")   (target > 1)"
echo "cairn offline / raw read:    $(ratio "$(med cairn-offline mibs)" "$raw")   (target >= 0.90)"
printf 'fsck.cairn: %.2f s (structures), %.2f s (--check-data)\n' "$(med fsck secs)" "$(med fsck-check-data secs)"

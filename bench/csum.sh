#!/usr/bin/env bash
# Asynchronous against synchronous data checksums (issue 4's checksum
# target), paired: every round writes SIZE_MB sequentially (1 MiB blocks,
# fsync included) to a fresh Cairn image once with csum=sync and once with
# csum=async, in an order that alternates from round to round, for each
# checksum algorithm. The machine's speed drifts within minutes, so the
# figure that counts is the median of the per-round ratios async/sync (both
# halves of a pair ran seconds apart); the medians of each mode are printed
# beside it, with every run.
#
#   sudo bench/csum.sh                    # about 5 minutes here
#   ROUNDS=3 SIZE_MB=512 ALGOS=sha256 sudo bench/csum.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
SIZE_MB=${SIZE_MB:-2048}
ROUNDS=${ROUNDS:-7}
ALGOS=${ALGOS:-"crc32c sha256"}
IMG=$DIR/cairn.img

write_mibs() {  # algo mode
  rm -f "$IMG"
  "$BUILD/mkfs.cairn" -q -s $(( SIZE_MB * 2 + 2048 ))M --csum "$1" "$IMG"
  "$BUILD/cairn" "$IMG" "$MNT" -o "csum=$2"
  drop_caches
  local t0 t1; t0=$(now)
  dd if=/dev/zero of="$MNT/seq" bs=1M count="$SIZE_MB" conv=fsync status=none
  t1=$(now)
  fusermount3 -u "$MNT"; flock -w 120 "$IMG" true
  echo "$SIZE_MB / ($t1 - $t0)" | bc -l
}

for r in $(seq "$ROUNDS"); do
  for algo in $ALGOS; do
    if (( r % 2 )); then order="sync async"; else order="async sync"; fi
    for mode in $order; do record "$algo-$mode" w "$(write_mibs "$algo" "$mode")"; done
    s=${R["$algo-sync|w"]##* }; a=${R["$algo-async|w"]##* }
    record "$algo" ratio "$(echo "$a / $s" | bc -l)"
  done
  echo "round $r done" >&2
done

printf '\nChecksums async vs sync: %s MiB sequential write + fsync, %s paired rounds\n' "$SIZE_MB" "$ROUNDS"
machine_line; echo
printf '%-8s %12s %12s %22s   %s\n' checksum "sync MiB/s" "async MiB/s" "async/sync (paired)" "per-round ratios"
for algo in $ALGOS; do
  printf '%-8s %12.1f %12.1f %22.2f   %s\n' "$algo" "$(med "$algo-sync" w)" "$(med "$algo-async" w)" \
    "$(med "$algo" ratio)" "$(echo ${R["$algo|ratio"]} | xargs printf '%.2f ')"
done

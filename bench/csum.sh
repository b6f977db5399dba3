#!/usr/bin/env bash
# Asynchronous against synchronous data checksums (issue 4's checksum
# target), paired. Two workloads, each on a fresh Cairn image:
#   stream  SIZE_MB written sequentially in 1 MiB blocks, one fsync at the end
#           (writeback streams extents: one extent's checksums overlap the
#           previous one's write in either mode)
#   fsync   SIZE_MB/2 written in 4 MiB blocks, each followed by fsync
#           (dd oflag=dsync): every extent is awaited, so the time to
#           checksum it is on the critical path unless it runs beside the write
# Every round runs csum=sync, csum=async and csum=auto (the default) seconds
# apart, in an order that rotates from round to round. The machine's speed
# drifts within minutes, so the figures that count are the medians of the
# per-round ratios (async/sync, auto/sync); each mode's median is beside them.
#
#   sudo bench/csum.sh                    # about 10 minutes here
#   ROUNDS=3 SIZE_MB=512 ALGOS=sha256 sudo bench/csum.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
SIZE_MB=${SIZE_MB:-2048}
ROUNDS=${ROUNDS:-5}
ALGOS=${ALGOS:-"crc32c sha256"}
WORKLOADS=${WORKLOADS:-"stream fsync"}
MODES=(sync async auto)
IMG=$DIR/cairn.img

write_mibs() {  # algo mode workload
  rm -f "$IMG"
  "$BUILD/mkfs.cairn" -q -s $(( SIZE_MB * 2 + 2048 ))M --csum "$1" "$IMG"
  "$BUILD/cairn" "$IMG" "$MNT" -o "csum=$2"
  drop_caches
  local t0 t1 mb; t0=$(now)
  case $3 in
  stream) mb=$SIZE_MB; dd if=/dev/zero of="$MNT/seq" bs=1M count="$mb" conv=fsync status=none ;;
  fsync) mb=$(( SIZE_MB / 2 )); dd if=/dev/zero of="$MNT/seq" bs=4M count=$(( mb / 4 )) oflag=dsync status=none ;;
  esac
  t1=$(now)
  fusermount3 -u "$MNT"; flock -w 120 "$IMG" true
  echo "$mb / ($t1 - $t0)" | bc -l
}

for r in $(seq "$ROUNDS"); do
  for algo in $ALGOS; do
    for w in $WORKLOADS; do
      for j in 0 1 2; do
        mode=${MODES[$(( (j + r) % 3 ))]}
        record "$algo-$w-$mode" v "$(write_mibs "$algo" "$mode" "$w")"
      done
      s=${R["$algo-$w-sync|v"]##* }
      for mode in async auto; do
        record "$algo-$w-$mode" ratio "$(echo "${R["$algo-$w-$mode|v"]##* } / $s" | bc -l)"
      done
    done
  done
  echo "round $r done" >&2
done

printf '\nChecksums async vs sync: %s paired rounds (stream: %s MiB + fsync; fsync: %s MiB, fsync per 4 MiB)\n' \
  "$ROUNDS" "$SIZE_MB" "$(( SIZE_MB / 2 ))"
machine_line; echo
printf '%-8s %-7s %10s %10s %10s %12s %12s   %s\n' checksum load "sync" "async" "auto" "async/sync" "auto/sync" \
  "per-round async/sync | auto/sync"
for algo in $ALGOS; do
  for w in $WORKLOADS; do
    printf '%-8s %-7s %10.1f %10.1f %10.1f %12.2f %12.2f   %s\n' "$algo" "$w" \
      "$(med "$algo-$w-sync" v)" "$(med "$algo-$w-async" v)" "$(med "$algo-$w-auto" v)" \
      "$(med "$algo-$w-async" ratio)" "$(med "$algo-$w-auto" ratio)" \
      "$(echo ${R["$algo-$w-async|ratio"]} | xargs printf '%.2f ')| $(echo ${R["$algo-$w-auto|ratio"]} | xargs printf '%.2f ')"
  done
done
echo "(MiB/s; ratios are medians of the per-round ratios)"

#!/usr/bin/env bash
# Dropbehind benchmark (issue 5): write SIZE_MB (default 4 GiB) sequentially
# through Cairn with and without -o dropbehind, each ended by fsync, and
# measure what stays cached afterwards:
#   - throughput (MiB/s, fsync included)
#   - growth of the daemon's resident memory (VmRSS after - before), right
#     after fsync and again after the next periodic commit (which trims)
#   - the daemon's own page cache (cairnctl stats: cache.cached_bytes)
#   - the written file's pages in the kernel's FUSE page cache (fincore)
#   - the image file's pages in the host page cache (fincore)
#   - the change of Cached in /proc/meminfo
#   - after reading the file back once: its pages in the FUSE page cache and
#     the image's pages in the host cache (normal files stay cached for the
#     next reader; dropbehind files leave nothing)
# Median of RUNS runs.   sudo bench/dropbehind.sh   (about 5 minutes here)
set -euo pipefail
. "$(dirname "$0")/common.sh"
SIZE_MB=${SIZE_MB:-4096}
IMG=$DIR/cairn.img

one_run() {  # mode: cached | dropbehind
  local mode=$1 opts=""
  [ "$mode" = dropbehind ] && opts="-o dropbehind"
  rm -f "$IMG"
  "$BUILD/mkfs.cairn" -q -s $(( SIZE_MB * 2 + 2048 ))M "$IMG"
  "$BUILD/cairn" "$IMG" "$MNT" $opts
  drop_caches
  local pid rss0 cached0 t0 t1
  pid=$(cairn_pid "$IMG")
  rss0=$(awk '/^VmRSS/ { print $2 }' /proc/$pid/status)
  cached0=$(meminfo_kb Cached)
  t0=$(now)
  dd if=/dev/zero of="$MNT/big" bs=1M count="$SIZE_MB" conv=fsync status=none
  t1=$(now)
  record "$mode" mibs "$(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)"
  record "$mode" rss_mib "$(( ($(awk '/^VmRSS/ { print $2 }' /proc/$pid/status) - rss0) / 1024 ))"
  record "$mode" daemon_cache_mib "$("$BUILD/cairnctl" stats --json "$MNT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cache"]["cached_bytes"] >> 20)')"
  record "$mode" fuse_pages_mib "$(( $(cached_bytes "$MNT/big") >> 20 ))"
  record "$mode" image_pages_mib "$(( $(cached_bytes "$IMG") >> 20 ))"
  record "$mode" meminfo_cached_mib "$(( ($(meminfo_kb Cached) - cached0) / 1024 ))"
  # After a periodic commit (5 s): what the daemon keeps for good.
  sleep 6
  record "$mode" rss_settled_mib "$(( ($(awk '/^VmRSS/ { print $2 }' /proc/$pid/status) - rss0) / 1024 ))"
  # Read it back: normal files fill the kernel's cache for the next reader,
  # dropbehind files must not.
  cat "$MNT/big" > /dev/null
  record "$mode" readback_fuse_pages_mib "$(( $(cached_bytes "$MNT/big") >> 20 ))"
  record "$mode" readback_image_pages_mib "$(( $(cached_bytes "$IMG") >> 20 ))"
  fusermount3 -u "$MNT"; flock -w 120 "$IMG" true
}

for run in $(seq "$RUNS"); do
  for mode in cached dropbehind; do one_run $mode; done
  echo "run $run done" >&2
done

printf '\nCairn dropbehind benchmark: median of %s run(s), %s MiB written sequentially in 1 MiB blocks + fsync\n' "$RUNS" "$SIZE_MB"
machine_line; echo
printf '%-26s %12s %12s\n' measure cached dropbehind
for w in mibs rss_mib rss_settled_mib daemon_cache_mib fuse_pages_mib image_pages_mib meminfo_cached_mib readback_fuse_pages_mib readback_image_pages_mib; do
  printf '%-26s %12.1f %12.1f\n' "$w" "$(med cached $w)" "$(med dropbehind $w)"
done
d=$(med dropbehind mibs); c=$(med cached mibs)
left=$(( $(med dropbehind daemon_cache_mib | cut -d. -f1) + $(med dropbehind fuse_pages_mib | cut -d. -f1) + $(med dropbehind image_pages_mib | cut -d. -f1) ))
echo
echo "throughput dropbehind/cached: $(ratio "$d" "$c")   (target >= 0.90)"
echo "written data left cached with dropbehind (daemon + FUSE pages + image pages): ${left} MiB   (target <= 32)"

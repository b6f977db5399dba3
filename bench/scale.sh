#!/usr/bin/env bash
# How each whole-filesystem cost grows (issue 14): the same file sets on
# Cairn, kernel ext4 and kernel btrfs (loop images on the same backing
# disk), side by side in one run. File sets: SIZES files in one directory
# ("flat") and spread over directories of 1,000 ("tree"), and one file of
# EXTENTS extents (4 KiB written every 8 KiB). Columns: create rate, ls -f
# (a recursive listing for the tree), stat of every file with the caches
# dropped (a lookup of each name: in one directory of up to 1M names for
# "flat"), renames (10,000 files spread over the set, renamed in their
# directory and back), unmount right after creating (everything flushed) and mount
# again (Cairn loads the free-space cache its unmount saved; "mount scan"
# is Cairn with -o nospace_cache, reading the extent tree as after a
# crash), the daemon's RSS after the stat pass, fsck time and peak memory
# (fsck.cairn -n, e2fsck -fn, btrfs check --readonly), scrub time (offline
# cairnctl scrub, btrfs scrub -B; ext4 has none). Then the cost per file
# of each column for the largest set against the smallest (flat within 2x
# is the target) and Cairn's fsck against the baselines.
#
#   sudo bench/scale.sh                               # 10k, 100k, 1M files; 1M extents
#   SIZES="10000 100000" EXTENTS=100000 sudo bench/scale.sh
#   SIZES= EXTENTS=10000000 SYSTEMS=cairn SKIP="ls scrub" IMG_SIZE=64G sudo bench/scale.sh
#
# SKIP: columns not to measure (ls, stat, scrub), for the largest sets.
#
# One run per set (a million files takes minutes per system); RUNS is
# ignored. Noisy 2-core machines: repeat the run to see the spread.
set -euo pipefail
. "$(dirname "$0")/common.sh"
SIZES=${SIZES:-"10000 100000 1000000"}
LAYOUTS=${LAYOUTS:-"flat tree"}
EXTENTS=${EXTENTS:-1000000}
SYSTEMS=${SYSTEMS:-"cairn ext4 btrfs"}
SKIP=${SKIP:-}
skip() { case " $SKIP " in *" $1 "*) return 0 ;; esac; return 1; }
IMG_SIZE=${IMG_SIZE:-16G}
command -v mkfs.btrfs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q btrfs-progs >/dev/null
SCALE=$DIR/scale
cc -O2 -o "$SCALE" "$ROOT/bench/src/scale.c"
IMG=$DIR/scale.img

mkfs_sys() {  # SYSTEM FILES
  rm -f "$IMG"; truncate -s "$IMG_SIZE" "$IMG"
  case $1 in
  cairn) "$BUILD/mkfs.cairn" -q -f "$IMG" ;;
  ext4) mkfs.ext4 -q -F -N $(( $2 + $2 / 8 + 4096 )) "$IMG" ;;
  btrfs) mkfs.btrfs -q -f "$IMG" >/dev/null ;;
  esac
}
# tm CMD...: run it here (not in a subshell: mount_sys sets LOOP), seconds in T
tm() { local t0; t0=$(now); "$@" >/dev/null; T=$(echo "$(now) - $t0" | bc -l | xargs printf '%.3f'); }
timed() { tm "$@"; echo "$T"; }
# fsck of the unmounted image: "seconds peak-MiB"
fsck_sys() {
  local t=$DIR/fsck.time
  case $1 in
  cairn) /usr/bin/time -o "$t" -f '%e %M' "$BUILD/fsck.cairn" -n "$IMG" >/dev/null ;;
  ext4) /usr/bin/time -o "$t" -f '%e %M' e2fsck -fn "$IMG" >/dev/null 2>&1 ;;
  btrfs) /usr/bin/time -o "$t" -f '%e %M' btrfs check --readonly "$IMG" >/dev/null 2>&1 ;;
  esac
  awk '{ printf "%.2f %.0f\n", $1, $2 / 1024 }' "$t"
}
scrub_sys() {
  case $1 in
  cairn) timed "$BUILD/cairnctl" scrub "$IMG" ;;
  btrfs) mount_sys btrfs; tm btrfs scrub start -B "$MNT"; umount_sys btrfs; echo "$T" ;;
  *) echo - ;;
  esac
}
rss_mib() {
  local pid
  pid=$(cairn_pid "$IMG")
  [ -n "$pid" ] && awk '/VmRSS/ { printf "%.0f\n", $2 / 1024 }' "/proc/$pid/status" || echo -
}

# One file set: SYSTEM SET-NAME COUNT (COUNT files, or extents for "extents")
run_set() {
  local sys=$1 set=$2 n=$3 layout=${2%%-*} t
  mkfs_sys "$sys" "$n"
  mount_sys "$sys"
  if [ "$layout" = extents ]; then
    t=$("$SCALE" extents "$MNT/big" "$n")
  else
    mkdir "$MNT/s"
    t=$("$SCALE" create "$layout" "$MNT/s" "$n")
  fi
  record "$sys" "$set|create" "$(echo "$n / $t" | bc -l | xargs printf '%.0f')"
  tm umount_sys "$sys"; record "$sys" "$set|umount" "$T"
  drop_caches
  tm mount_sys "$sys"; record "$sys" "$set|mount" "$T"
  if skip ls && skip stat; then
    record "$sys" "$set|ls" -
    record "$sys" "$set|stat" -
  elif [ "$layout" = extents ]; then
    drop_caches
    skip ls && record "$sys" "$set|ls" - || record "$sys" "$set|ls" "$(timed cat "$MNT/big")"  # read back every extent, cold
    record "$sys" "$set|stat" -
  else
    drop_caches
    if [ "$layout" = flat ]; then record "$sys" "$set|ls" "$(timed ls -f "$MNT/s")"
    else record "$sys" "$set|ls" "$(timed ls -fR "$MNT/s")"; fi
    drop_caches
    record "$sys" "$set|stat" "$("$SCALE" stat "$layout" "$MNT/s" "$n")"
  fi
  if [ "$layout" = extents ] || skip rename; then record "$sys" "$set|rename" -
  else
    t=$("$SCALE" rename "$layout" "$MNT/s" "$n")
    record "$sys" "$set|rename" "$(echo "20000 / $t" | bc -l | xargs printf '%.0f')"
  fi
  [ "$sys" = cairn ] && record "$sys" "$set|rss" "$(rss_mib)" || record "$sys" "$set|rss" -
  umount_sys "$sys"
  if [ "$sys" = cairn ]; then
    drop_caches
    tm mount_sys cairn nospace_cache; record "$sys" "$set|scan" "$T"
    umount_sys cairn
  else
    record "$sys" "$set|scan" -
  fi
  read -r ft fm < <(fsck_sys "$sys")
  record "$sys" "$set|fsck" "$ft"
  record "$sys" "$set|fsckmem" "$fm"
  if skip scrub; then record "$sys" "$set|scrub" -
  else scrub_sys "$sys" > "$DIR/scrub.t"; record "$sys" "$set|scrub" "$(tail -1 "$DIR/scrub.t")"; fi
  rm -f "$IMG"
}

machine_line
echo "scale: files $SIZES ($LAYOUTS), extents $EXTENTS; systems $SYSTEMS; image $IMG_SIZE sparse"
SETS=()
for n in $SIZES; do for l in $LAYOUTS; do SETS+=("$l-$n"); done; done
[ "$EXTENTS" -gt 0 ] && SETS+=("extents-$EXTENTS")
for set in "${SETS[@]}"; do
  for sys in $SYSTEMS; do
    echo "  $sys $set ..." >&2
    run_set "$sys" "$set" "${set##*-}"
  done
done

COLS="create ls stat rename umount mount scan rss fsck fsckmem scrub"
# The header right-aligned over the columns (bench/plot.py reads it so).
printf '\n%-8s %-16s' system set
for h in "create/s" "ls -f s" "stat s" "rename/s" "umount s" "mount s" "scan s" "RSS MiB" "fsck s" "fsck MiB" "scrub s"; do
  printf ' %8s' "$h"
done
printf '\n'
for set in "${SETS[@]}"; do
  for sys in $SYSTEMS; do
    printf '%-8s %-16s' "$sys" "$set"
    for c in $COLS; do printf ' %8s' "$(med "$sys" "$set|$c")"; done
    printf '\n'
  done
done

# Growth: cost per file of the largest set over the smallest (1.00 = flat).
per() { local v; v=$(med "$1" "$2|$3"); [ "$v" = - ] || [ -z "$v" ] && { echo -; return; }
  if [ "$3" = create ] || [ "$3" = rename ]; then echo "1 / $v" | bc -l; else echo "$v / ${2##*-}" | bc -l; fi; }
small=${SIZES%% *}; large=${SIZES##* }
if [ "$small" != "$large" ]; then
  printf '\nper-file cost, %s files over %s (flat within 2x is the target)\n' "$large" "$small"
  printf '%-8s %-6s' system layout
  for c in create ls stat rename umount mount fsck scrub; do printf ' %8s' "$c"; done
  printf '\n'
  for sys in $SYSTEMS; do
    for l in $LAYOUTS; do
      printf '%-8s %-6s' "$sys" "$l"
      for c in create ls stat rename umount mount fsck scrub; do
        a=$(per "$sys" "$l-$large" "$c"); b=$(per "$sys" "$l-$small" "$c")
        if [ "$a" = - ] || [ "$b" = - ]; then printf ' %8s' -; else printf ' %8s' "$(ratio "$a" "$b")"; fi
      done
      printf '\n'
    done
  done
  printf '\nfsck of %s files: cairn / btrfs check, cairn / e2fsck\n' "$large"
  for l in $LAYOUTS; do
    printf '%-6s %8s %8s\n' "$l" "$(ratio "$(med cairn "$l-$large|fsck")" "$(med btrfs "$l-$large|fsck")")" \
      "$(ratio "$(med cairn "$l-$large|fsck")" "$(med ext4 "$l-$large|fsck")")"
  done
fi

#!/usr/bin/env bash
# Making an image from a directory (issue 18): mkfs.cairn --rootdir against
# mkfs.btrfs --rootdir and mke2fs -d, side by side in one run, on the same
# tree (default /usr/include and /usr/share/doc, copied once to $DIR so the
# three read the same files from the page cache): the time to make the
# filesystem, filled, on a sparse image of SIZE, and the bytes the image
# then holds on the backing disk. Each result is checked (fsck, and a diff
# of the tree through a mount for Cairn). Median of RUNS rounds.
#
#   sudo bench/rootdir.sh
#   SRC_DIRS="/usr/share" SIZE=8G sudo bench/rootdir.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
SRC_DIRS=${SRC_DIRS:-"/usr/include /usr/share/doc"}
SIZE=${SIZE:-4G}
SYSTEMS=${SYSTEMS:-"cairn btrfs ext4"}
command -v mkfs.btrfs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q btrfs-progs >/dev/null
IMG=$DIR/rootdir.img
TREE=$DIR/rootdir.tree
rm -rf "$TREE"; mkdir -p "$TREE"
for d in $SRC_DIRS; do mkdir -p "$TREE$(dirname "$d")"; cp -a "$d" "$TREE$d"; done
entries=$(find "$TREE" | wc -l)
tree_mib=$(du -sm "$TREE" | cut -f1)
cat "$(find "$TREE" -type f)" > /dev/null 2>&1 || true

for round in $(seq 1 "$RUNS"); do
  for sys in $SYSTEMS; do
    rm -f "$IMG"; truncate -s "$SIZE" "$IMG"
    t0=$(now)
    case $sys in
    cairn) "$BUILD/mkfs.cairn" -q -f --rootdir "$TREE" "$IMG" ;;
    btrfs) mkfs.btrfs -q -f --rootdir "$TREE" "$IMG" > /dev/null ;;
    ext4) mke2fs -q -F -t ext4 -d "$TREE" "$IMG" ;;
    esac
    sync -f "$IMG"
    t1=$(now)
    record "$sys" secs "$(echo "$t1 - $t0" | bc -l)"
    record "$sys" image_mib "$(( $(du -B1 "$IMG" | cut -f1) >> 20 ))"
    case $sys in
    cairn) "$BUILD/fsck.cairn" "$IMG" > /dev/null
           if [ "$round" = 1 ]; then
             mount_sys cairn; diff -r --no-dereference "$TREE" "$MNT" > /dev/null || { echo "bench: cairn tree differs" >&2; exit 1; }; umount_sys cairn
           fi ;;
    btrfs) btrfs check --readonly "$IMG" > /dev/null 2>&1 ;;
    ext4) e2fsck -fn "$IMG" > /dev/null 2>&1 ;;
    esac
  done
  echo "round $round done" >&2
done
rm -rf "$TREE"

machine_line
echo "mkfs from a directory: $SRC_DIRS ($entries entries, $tree_mib MiB), $SIZE sparse image; median of $RUNS rounds"
printf '%-10s %12s %12s %12s %12s\n' system seconds "entries/s" "MiB/s" "image MiB"
for sys in $SYSTEMS; do
  s=$(med "$sys" secs)
  printf '%-10s %12.2f %12.0f %12.1f %12s\n' "$sys" "$s" "$(echo "$entries / $s" | bc -l)" "$(echo "$tree_mib / $s" | bc -l)" "$(med "$sys" image_mib)"
done
printf '\n%-10s %12s\n' "system" "time/cairn"
for sys in $SYSTEMS; do printf '%-10s %12s\n' "$sys" "$(ratio "$(med "$sys" secs)" "$(med cairn secs)")"; done

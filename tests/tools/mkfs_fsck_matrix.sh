#!/usr/bin/env bash
# mkfs.cairn -s 1G x.img && fsck.cairn x.img exits 0 for every checksum
# algorithm and both metadata profiles (issue 2's "done means").
set -u
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
for csum in crc32c xxhash64 sha256 blake2b; do
  for m in single dup; do
    img=$dir/x-$csum-$m.img
    if ! "$bin/mkfs.cairn" -q -s 1G --csum "$csum" -m "$m" "$img"; then
      echo "FAIL: mkfs --csum $csum -m $m"; fails=$((fails + 1)); continue
    fi
    out=$("$bin/fsck.cairn" "$img"); rc=$?
    if [ $rc -ne 0 ]; then echo "FAIL: fsck ($csum, $m) exit $rc: $out"; fails=$((fails + 1)); fi
    json=$("$bin/fsck.cairn" --json "$img")
    echo "$json" | grep -q '"clean": true' || { echo "FAIL: json report ($csum, $m)"; fails=$((fails + 1)); }
  done
done
# Flip one byte of the primary superblock: fsck must exit 4 and say so.
img=$dir/x-crc32c-single.img
printf '\x55' | dd of="$img" bs=1 seek=$((65536 + 200)) conv=notrunc status=none
"$bin/fsck.cairn" "$img" > "$dir/out" 2>&1; rc=$?
[ $rc -eq 4 ] || { echo "FAIL: damaged superblock gave exit $rc"; fails=$((fails + 1)); }
grep -q "superblock copy at 0x10000" "$dir/out" || { echo "FAIL: damaged superblock not named"; cat "$dir/out"; fails=$((fails + 1)); }
echo "mkfs/fsck matrix: $fails failure(s)"
exit $((fails > 0))

#!/usr/bin/env bash
# Compression (issue 16): one real corpus — a tar of /usr/share and
# /usr/include (text, images, locales: a mix) — and an incompressible file of random
# bytes, written to Cairn with -o compress=none|lz4|zstd:1|zstd:3 and to
# kernel btrfs with the same compress= (btrfs has no lz4: lzo is its
# nearest), loop and FUSE images on the same backing disk, side by side in
# one run: space the corpus takes (df after a remount), write throughput
# (copy, then fsync), cold read throughput, and write throughput of the
# random file. Median of RUNS rounds, a fresh filesystem each.
#
#   sudo bench/compress.sh
#   RUNS=5 sudo bench/compress.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
command -v mkfs.btrfs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q btrfs-progs >/dev/null
MODES=${MODES:-"none lz4 zstd:1 zstd:3"}
IMG=$DIR/compress.img
CORPUS=$DIR/corpus-share-include.tar
NOISE=$DIR/noise.bin
[ -s "$CORPUS" ] || tar -cf "$CORPUS" -C / usr/share usr/include 2>/dev/null || [ -s "$CORPUS" ]
[ -s "$NOISE" ] || head -c $((256 << 20)) /dev/urandom > "$NOISE"
corpus_mib=$(( $(stat -c %s "$CORPUS") >> 20 ))
noise_mib=$(( $(stat -c %s "$NOISE") >> 20 ))

btrfs_opt() { case $1 in none) echo compress=no ;; lz4) echo compress=lzo ;; *) echo "compress=$1" ;; esac; }
mount_one() {  # SYSTEM MODE
  case $1 in
  cairn) "$BUILD/cairn" "$IMG" "$MNT" -o "compress=$2" ;;
  btrfs) LOOP=$(losetup -f --show "$IMG"); mount -o "$(btrfs_opt "$2")" "$LOOP" "$MNT" ;;
  esac
}
used() { df -B1 --output=used "$MNT" | tail -1; }
mbps() { echo "$1 / ($3 - $2)" | bc -l; }

for round in $(seq 1 "$RUNS"); do
  for mode in $MODES; do
    for sys in cairn btrfs; do
      rm -f "$IMG"; truncate -s 8G "$IMG"
      case $sys in
      cairn) "$BUILD/mkfs.cairn" -q -f "$IMG" ;;
      btrfs) mkfs.btrfs -q -f "$IMG" >/dev/null ;;
      esac
      mount_one $sys "$mode"
      u0=$(used)
      drop_caches
      t0=$(now); cat "$CORPUS" > "$MNT/corpus"; sync "$MNT/corpus"; t1=$(now)
      umount_sys $sys; mount_one $sys "$mode"
      u1=$(used)
      drop_caches
      t2=$(now); cat "$MNT/corpus" > /dev/null; t3=$(now)
      cmp -s "$CORPUS" "$MNT/corpus" || { echo "bench: $sys $mode: corpus differs" >&2; exit 1; }
      drop_caches
      t4=$(now); cat "$NOISE" > "$MNT/noise"; sync "$MNT/noise"; t5=$(now)
      record "$sys/$mode" space "$(echo "($u1 - $u0) / 1048576" | bc -l)"
      record "$sys/$mode" write "$(mbps "$corpus_mib" "$t0" "$t1")"
      record "$sys/$mode" read "$(mbps "$corpus_mib" "$t2" "$t3")"
      record "$sys/$mode" noise "$(mbps "$noise_mib" "$t4" "$t5")"
      umount_sys $sys
    done
  done
done

machine_line
echo "corpus: tar of /usr/share and /usr/include, $corpus_mib MiB; incompressible: $noise_mib MiB random; median of $RUNS rounds"
printf '%-14s %12s %12s %12s %16s %14s %16s\n' "system/mode" "space (MiB)" "space/btrfs" "write MiB/s" "write/btrfs" "read MiB/s" "random MiB/s"
for mode in $MODES; do
  for sys in cairn btrfs; do
    k="$sys/$mode"
    printf '%-14s %12.1f %12s %12.0f %16s %14.0f %16.0f\n' "$k" "$(med "$k" space)" \
      "$(ratio "$(med "$k" space)" "$(med "btrfs/$mode" space)")" "$(med "$k" write)" \
      "$(ratio "$(med "$k" write)" "$(med "btrfs/$mode" write)")" "$(med "$k" read)" "$(med "$k" noise)"
  done
done
for sys in cairn btrfs; do
  echo "$sys: random data written with compression at $(ratio "$(med "$sys/zstd:1" noise)" "$(med "$sys/none" noise)") (zstd:1) and $(ratio "$(med "$sys/lz4" noise)" "$(med "$sys/none" noise)") (lz4) of the uncompressed speed"
done

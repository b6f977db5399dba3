#!/usr/bin/env bash
# What DUP metadata (mkfs.cairn's default since 2026-12-03, as btrfs-progs'
# since 5.15) costs against single metadata, on Cairn and on kernel btrfs
# as the reference, side by side in one run, a fresh filesystem each round:
#   seq      SEQ_MIB MiB written in 1 MiB blocks, then fsync (MiB/s)
#   creates  FILES files of 4 KiB in one directory, then syncfs (files/s)
#   fsync    FSYNCS 4 KiB random overwrites of a 64 MiB file, each fsynced (IOPS)
# Median of RUNS rounds; ratios dup/single per system at the end.
#
#   sudo bench/profiles.sh
#   RUNS=5 FILES=20000 sudo bench/profiles.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
SEQ_MIB=${SEQ_MIB:-1024}
FILES=${FILES:-10000}
FSYNCS=${FSYNCS:-2000}
SYSTEMS=${SYSTEMS:-"cairn btrfs"}
command -v mkfs.btrfs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q btrfs-progs >/dev/null
IMG=$DIR/profiles.img
PY=/usr/bin/python3

mkfs_sys() {  # SYSTEM PROFILE
  rm -f "$IMG"; truncate -s 8G "$IMG"
  case $1 in
  cairn) "$BUILD/mkfs.cairn" -q -f -m "$2" "$IMG" ;;
  btrfs) mkfs.btrfs -q -f -m "$2" -d single "$IMG" >/dev/null ;;
  esac
}
rate() { echo "$1 / ($3 - $2)" | bc -l | xargs printf '%.1f'; }

for round in $(seq 1 "$RUNS"); do
  for sys in $SYSTEMS; do
    for prof in single dup; do
      key=$sys/$prof
      mkfs_sys "$sys" "$prof"; mount_sys "$sys"
      t0=$(now)
      dd if=/dev/zero of="$MNT/seq" bs=1M count="$SEQ_MIB" conv=fsync status=none
      t1=$(now)
      record "$key" seq "$(rate "$SEQ_MIB" "$t0" "$t1")"
      rm "$MNT/seq"; sync -f "$MNT"
      mkdir "$MNT/many"
      t0=$(now)
      $PY - "$MNT/many" "$FILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
block = b"x" * 4096
for i in range(n):
    fd = os.open(os.path.join(d, "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, block)
    os.close(fd)
fd = os.open(d, os.O_RDONLY)
os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
os.close(fd)
PY
      sync -f "$MNT/many"
      t1=$(now)
      record "$key" creates "$(rate "$FILES" "$t0" "$t1")"
      head -c 64M /dev/zero > "$MNT/db"; sync "$MNT/db"
      t0=$(now)
      $PY - "$MNT/db" "$FSYNCS" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
r = random.Random(1)
block = os.urandom(4096)
for _ in range(int(sys.argv[2])):
    os.pwrite(fd, block, r.randrange(16384) * 4096)
    os.fsync(fd)
os.close(fd)
PY
      t1=$(now)
      record "$key" fsync "$(rate "$FSYNCS" "$t0" "$t1")"
      umount_sys "$sys"
    done
  done
  echo "round $round done" >&2
done

machine_line
echo "DUP metadata against single: median of $RUNS rounds, fresh filesystem each; seq $SEQ_MIB MiB + fsync, $FILES creates + syncfs, $FSYNCS fsynced 4 KiB writes"
printf '%-16s %12s %12s %12s\n' "system/metadata" "seq MiB/s" "creates/s" "fsync IOPS"
for sys in $SYSTEMS; do
  for prof in single dup; do
    printf '%-16s %12s %12s %12s\n' "$sys/$prof" "$(med "$sys/$prof" seq)" "$(med "$sys/$prof" creates)" "$(med "$sys/$prof" fsync)"
  done
done
echo
printf '%-16s %12s %12s %12s\n' "dup/single" "seq" "creates" "fsync"
for sys in $SYSTEMS; do
  printf '%-16s %12s %12s %12s\n' "$sys" "$(ratio "$(med "$sys/dup" seq)" "$(med "$sys/single" seq)")" \
    "$(ratio "$(med "$sys/dup" creates)" "$(med "$sys/single" creates)")" \
    "$(ratio "$(med "$sys/dup" fsync)" "$(med "$sys/single" fsync)")"
done

#!/usr/bin/env bash
# Small writes, fsync and random reads (issue 17): Cairn against kernel
# btrfs, fuse2fs and libfuse's passthrough_hp (the ceiling of any FUSE
# filesystem here), side by side in one run, a fresh filesystem per system
# and round, median of RUNS rounds. cairn/commit is Cairn with
# -o nofsync_log (every fsync commits), to show what the log gives.
#
#   bufw      4 KiB random writes, buffered, RAND_SECS s, fsync at the end (IOPS)
#   fsync1    4 KiB random writes, fsync after each, 1 job (IOPS)
#   p99       write() latency p99 in that run (us; fsync excluded)
#   fsync4    the same, 4 jobs, fsync every 8 writes (IOPS)
#   wal       sqlite, TX one-row transactions, WAL, synchronous=FULL (tx/s)
#   rollback  the same with the rollback journal (tx/s)
#   extract   untar a tree of EXTRACT_FILES files, then unmount (files/s)
#   read1     4 KiB random reads of a 1 GiB file, cold, 1 job (IOPS)
#   read4     the same, 4 jobs (IOPS)
#   read4w    read4 while another process writes and fsyncs (IOPS)
#   dread1    read1 with O_DIRECT: no page cache at any level, so the cost
#             of a request through each system (IOPS)
#   dread4    the same, 4 jobs (IOPS)
#
# Images (btrfs, fuse2fs, Cairn) are written in full before mkfs
# (LAYOUT=written, the default), as fio lays out passthrough_hp's files
# before it times them: otherwise the first write to each region of a
# sparse image pays the host's block allocation, which the next fdatasync
# must write (measured: fsync1 on Cairn 1,726 IOPS sparse, 2,250 written).
# LAYOUT=sparse measures images as truncate leaves them.
#
#   sudo bench/smallio.sh
#   RUNS=1 RAND_SECS=5 SYSTEMS="cairn passthrough_hp" sudo bench/smallio.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"
RAND_SECS=${RAND_SECS:-10}
TX=${TX:-3000}
EXTRACT_FILES=${EXTRACT_FILES:-15000}
SYSTEMS=${SYSTEMS:-"btrfs fuse2fs passthrough_hp cairn/commit cairn"}
PY=/usr/bin/python3
IMG=$DIR/smallio.img
LAYOUT=${LAYOUT:-written}
IMG_GB=6
# A fresh image of IMG_GB GiB at $IMG, laid out as LAYOUT says.
new_image() {
  rm -f "$IMG"
  if [ "$LAYOUT" = written ]; then dd if=/dev/zero of="$IMG" bs=1M count=$((IMG_GB * 1024)) conv=fsync status=none
  else truncate -s "${IMG_GB}G" "$IMG"; fi
}
need() { command -v "$1" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }
need fio fio; need fuse2fs fuse2fs; need sqlite3 sqlite3; need mkfs.btrfs btrfs-progs
$PY -c 'import sqlite3' 2>/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 >/dev/null

# passthrough_hp is an example of libfuse 3.14 that Debian does not ship:
# built from Debian's own source package, once.
PTHP=$DIR/passthrough_hp
if [ ! -x "$PTHP" ] && [[ " $SYSTEMS " == *" passthrough_hp "* ]]; then
  src=$DIR/fuse3-src
  mkdir -p "$src/lists/partial"
  # One-line format: apt reads deb822 only from files named *.sources.
  echo 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main' > "$src/sources"
  apt=(apt-get -q -o Dir::Etc::SourceList="$src/sources" -o Dir::Etc::SourceParts=/nonexistent -o Dir::State::Lists="$src/lists")
  "${apt[@]}" update >/dev/null
  (cd "$src" && "${apt[@]}" source --download-only fuse3 >/dev/null 2>&1 && tar xf fuse3_*.orig.tar.xz)
  # HAVE_*: what meson would find on this system (utimensat without them is EOPNOTSUPP).
  g++ -O2 -std=c++17 -DHAVE_UTIMENSAT -DHAVE_POSIX_FALLOCATE -DHAVE_COPY_FILE_RANGE -DHAVE_SETXATTR -I"$src"/fuse-3.*/example -o "$PTHP" "$src"/fuse-3.*/example/passthrough_hp.cc \
      $(pkg-config --cflags --libs fuse3) -lpthread
fi

# The tree extract unpacks: the first EXTRACT_FILES files under /usr, once.
TREE=$DIR/tree.tar
[ -s "$TREE" ] || (cd / && find usr -type f -size -256k 2>/dev/null | head -n "$EXTRACT_FILES" | tar cf "$TREE" -T - 2>/dev/null)
TREE_FILES=$(tar tf "$TREE" | wc -l)

setup() {  # SYSTEM: an empty filesystem at $MNT
  case $1 in
  btrfs) new_image; mkfs.btrfs -q -f "$IMG" >/dev/null; mount_sys btrfs ;;
  fuse2fs) new_image; mkfs.ext4 -q -F "$IMG"; fuse2fs "$IMG" "$MNT" -o rw >/dev/null ;;
  passthrough_hp) rm -rf "$DIR/pt"; mkdir -p "$DIR/pt"; "$PTHP" "$DIR/pt" "$MNT" ;;
  cairn) new_image; "$BUILD/mkfs.cairn" -q -f "$IMG" >/dev/null; mount_sys cairn ;;
  cairn/commit) new_image; "$BUILD/mkfs.cairn" -q -f "$IMG" >/dev/null; mount_sys cairn nofsync_log ;;
  esac
}
teardown() {
  case $1 in
  btrfs) umount_sys btrfs ;;
  fuse2fs) fusermount3 -u "$MNT"; sleep 1 ;;
  passthrough_hp) fusermount3 -u "$MNT"; sleep 1; rm -rf "$DIR/pt" ;;
  cairn*) umount_sys cairn ;;
  esac
  rm -f "$IMG"
}

fio_json() { fio --output-format=json "$@" 2>/dev/null; }
iops() { $PY -c 'import json,sys; j=json.load(sys.stdin); print(sum(x[sys.argv[1]]["iops"] for x in j["jobs"]))' "$1"; }

workloads() {  # SYSTEM
  local sys=$1 out
  record "$sys" bufw "$(fio_json --name=bufw --filename="$MNT/bufw" --size=512M --rw=randwrite --bs=4k --ioengine=psync \
      --time_based --runtime="$RAND_SECS" --end_fsync=1 | iops write)"
  rm -f "$MNT/bufw"
  out=$(fio_json --name=fsync1 --filename="$MNT/fs1" --size=256M --rw=randwrite --bs=4k --ioengine=psync \
      --fsync=1 --time_based --runtime="$RAND_SECS")
  record "$sys" fsync1 "$(echo "$out" | iops write)"
  record "$sys" p99 "$(echo "$out" | $PY -c 'import json,sys; j=json.load(sys.stdin); print(j["jobs"][0]["write"]["clat_ns"]["percentile"]["99.000000"] / 1000)')"
  rm -f "$MNT/fs1"
  record "$sys" fsync4 "$(fio_json --name=fsync4 --directory="$MNT" --size=64M --rw=randwrite --bs=4k --ioengine=psync \
      --fsync=8 --numjobs=4 --time_based --runtime="$RAND_SECS" | iops write)"
  rm -f "$MNT"/fsync4.*
  for mode in wal rollback; do
    record "$sys" "$mode" "$($PY - "$MNT/db-$mode" "$mode" "$TX" <<'PY'
import sqlite3, sys, time
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=" + ("WAL" if mode == "wal" else "DELETE"))
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
t0 = time.monotonic()
for i in range(n):
    db.execute("BEGIN")
    db.execute("INSERT INTO t (v) VALUES (?)", (b"x" * 100,))
    db.execute("COMMIT")
print(n / (time.monotonic() - t0))
PY
)"
  done
  rm -f "$MNT"/db-*
  # Reads: a 1 GiB file written and made durable, then cold.
  fio_json --name=lay --filename="$MNT/rd" --size=1G --rw=write --bs=1M --ioengine=psync --end_fsync=1 >/dev/null
  drop_caches
  record "$sys" read1 "$(fio_json --name=read1 --filename="$MNT/rd" --size=1G --rw=randread --bs=4k --ioengine=psync \
      --invalidate=1 --time_based --runtime="$RAND_SECS" | iops read)"
  drop_caches
  record "$sys" read4 "$(fio_json --name=read4 --filename="$MNT/rd" --size=1G --rw=randread --bs=4k --ioengine=psync \
      --invalidate=1 --numjobs=4 --time_based --runtime="$RAND_SECS" | iops read)"
  drop_caches
  fio_json --name=bg --filename="$MNT/bg" --size=64M --rw=randwrite --bs=4k --ioengine=psync --fsync=1 \
      --time_based --runtime="$((RAND_SECS + 2))" >/dev/null &
  local bg=$!
  sleep 1
  record "$sys" read4w "$(fio_json --name=read4w --filename="$MNT/rd" --size=1G --rw=randread --bs=4k --ioengine=psync \
      --invalidate=1 --numjobs=4 --time_based --runtime="$RAND_SECS" | iops read)"
  wait "$bg"
  drop_caches
  record "$sys" dread1 "$(fio_json --name=dread1 --filename="$MNT/rd" --size=1G --rw=randread --bs=4k --ioengine=psync \
      --direct=1 --time_based --runtime="$RAND_SECS" | iops read)"
  record "$sys" dread4 "$(fio_json --name=dread4 --filename="$MNT/rd" --size=1G --rw=randread --bs=4k --ioengine=psync \
      --direct=1 --numjobs=4 --time_based --runtime="$RAND_SECS" | iops read)"
  rm -f "$MNT/rd" "$MNT/bg"
}

extract() {  # SYSTEM: files/s until unmounted (durable for every system)
  local t0 t1
  setup "$1"
  t0=$(now)
  tar xf "$TREE" -C "$MNT"
  teardown "$1"
  t1=$(now)
  record "$1" extract "$(echo "$TREE_FILES / ($t1 - $t0)" | bc -l)"
}

for round in $(seq 1 "$RUNS"); do
  for sys in $SYSTEMS; do
    setup "$sys"; workloads "$sys"; teardown "$sys"
    extract "$sys"
  done
  echo "round $round done" >&2
done

COLS="bufw fsync1 p99 fsync4 wal rollback extract read1 read4 read4w dread1 dread4"
machine_line
echo "small I/O: median of $RUNS rounds, fresh filesystem each, images $LAYOUT; $RAND_SECS s per fio run, $TX sqlite transactions, $TREE_FILES files extracted"
printf '%-15s' system; for c in $COLS; do printf ' %9s' "$c"; done; echo
for sys in $SYSTEMS; do
  printf '%-15s' "$sys"; for c in $COLS; do printf ' %9.0f' "$(med "$sys" "$c")"; done; echo
done
echo
echo "Cairn / baseline (p99: baseline / Cairn, higher is better)"
printf '%-15s' baseline; for c in $COLS; do printf ' %9s' "$c"; done; echo
for base in $SYSTEMS; do
  [ "$base" = cairn ] && continue
  printf '%-15s' "$base"
  for c in $COLS; do
    if [ "$c" = p99 ]; then printf ' %9s' "$(ratio "$(med "$base" "$c")" "$(med cairn "$c")")"
    else printf ' %9s' "$(ratio "$(med cairn "$c")" "$(med "$base" "$c")")"; fi
  done
  echo
done

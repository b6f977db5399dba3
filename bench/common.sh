# Helpers shared by the benchmark scripts (sourced, not run).
# Every script runs as root and prints Cairn and its baselines side by side.
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (loop devices, drop_caches, mounts)" >&2; exit 2; }
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${CAIRN_BUILD:-$ROOT/build}
RUNS=${RUNS:-3}
DIR=${BENCH_DIR:-/var/tmp/cairn-bench}
[ -x "$BUILD/cairn" ] || bash "$ROOT/scripts/build" >/dev/null

# Every script mounts at $MNT and keeps its images in $DIR; LOOP is the loop
# device of a kernel btrfs image, when one is attached. On exit, whatever
# happened, nothing stays mounted, attached or on disk.
MNT=$DIR/mnt
LOOP=
mkdir -p "$MNT"
bench_cleanup() {
  local rc=$?
  mountpoint -q "$MNT" && { umount "$MNT" 2>/dev/null || fusermount3 -u "$MNT" 2>/dev/null || true; }
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
  rm -f "$DIR"/*.img
  (exit $rc); bench_chart
}
trap bench_cleanup EXIT

# What a script prints also goes to its raw results file, and when it ends
# well, a chart of its tables goes beside it (bench/plot.py): RESULTS=FILE
# to choose the name, RESULTS= (empty) for neither.
RESULTS=${RESULTS-$ROOT/bench/results-$(date +%Y-%m-%d)-$(basename "$0" .sh).txt}
if [ -n "$RESULTS" ]; then
  /usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib > /dev/null 2>&1 ||
    echo "bench: python3-matplotlib missing, no chart" >&2
  exec 3>&1
  exec > >(tee "$RESULTS")
  RESULTS_TEE=$!
fi
# Called by the EXIT trap: let the tee finish the file, then draw it.
bench_chart() {
  local rc=$?
  [ -n "${RESULTS:-}" ] || return 0
  exec 1>&3 3>&-
  wait "$RESULTS_TEE" 2>/dev/null
  [ "$rc" -eq 0 ] && /usr/bin/python3 "$ROOT/bench/plot.py" "$RESULTS" "${RESULTS%.txt}.png" >&2 || true
  echo "bench: results in $RESULTS" >&2
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
# median of the numbers on stdin, one per line
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# results: record SYSTEM WORKLOAD VALUE; med SYSTEM WORKLOAD prints the median
declare -A R
record() { R["$1|$2"]="${R["$1|$2"]:-} $3"; }
med() { echo ${R["$1|$2"]:-} | tr ' ' '\n' | { grep -v '^$' || true; } | median; }
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then echo "$1 / $2" | bc -l | xargs printf '%.2f'; else echo -; fi; }
# The pid of the cairn daemon serving IMAGE.
cairn_pid() { pgrep -f -- "cairn $1 " | head -1; }
meminfo_kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
# Bytes of FILE in the host's page cache.
cached_bytes() { fincore -b -n -o RES "$1" 2>/dev/null | awk '{ printf "%.0f\n", $1 }'; }
machine_line() { printf 'machine: %s cores, kernel %s, backing fs %s\n' "$(nproc)" "$(uname -r)" "$(df -T "$DIR" | awk 'NR==2 {print $2}')"; }

# The scripts' image $IMG (Cairn through FUSE, or a kernel filesystem on a
# loop device) at $MNT: mount_sys SYSTEM [CAIRN-OPTIONS]; umount_sys SYSTEM
# (waits until the daemon has let go of the image).
mount_sys() {
  case $1 in
  cairn) "$BUILD/cairn" "$IMG" "$MNT" ${2:+-o "$2"} ;;
  *) LOOP=$(losetup -f --show "$IMG"); mount "$LOOP" "$MNT" ;;
  esac
}
umount_sys() {
  case $1 in
  cairn) fusermount3 -u "$MNT"; flock -w 600 "$IMG" true ;;
  *) umount "$MNT"; losetup -d "$LOOP"; LOOP= ;;
  esac
}

#!/usr/bin/env bash
# Run every fuzz target for a fixed time on seeds made from a real image;
# fail on any finding (crash, sanitizer report, timeout, out of memory).
#
#   tests/fuzz/run.sh FUZZ_BUILD TOOLS_BUILD SECONDS_PER_TARGET [WORKDIR]
#
# FUZZ_BUILD holds the fuzz_* targets (cmake -DCAIRN_FUZZ=ON with clang),
# TOOLS_BUILD a normal build (mkfs.cairn and cairn make the seed image).
# Corpora grow in WORKDIR (default /tmp/cairn-fuzz) and are reused by the
# next run; findings land in WORKDIR/findings. Needs root (mounts).
set -euo pipefail
fuzz=$(realpath "$1"); tools=$(realpath "$2"); secs=$3
work=${4:-/tmp/cairn-fuzz}
mkdir -p "$work/findings" "$work/mnt"

# A real image with every kind of item: directories, files with several
# extents, a hole, a preallocated range, a symlink, a hard link, small and
# spilled xattrs, 4 KiB nodes (the node target's size).
img=$work/seed.img
if [ ! -s "$work/corpus/image/seed" ]; then
	"$tools/mkfs.cairn" -q -f -s 64M -n 4096 "$img"
	"$tools/cairn" "$img" "$work/mnt"
	m=$work/mnt
	mkdir -p $m/d/sub
	head -c 300000 /dev/urandom > $m/d/f
	dd if=/dev/urandom of=$m/d/f bs=4096 seek=200 count=3 conv=notrunc status=none
	truncate -s 2M $m/d/sparse; echo tail >> $m/d/sparse
	fallocate -l 64k $m/d/pre
	ln -s d/f $m/link; ln $m/d/f $m/d/sub/hard
	setfattr -n user.small -v v $m/d/f
	mkdir $m/z; setfattr -n user.cairn.compress -v zstd $m/z
	seq 1 60000 > $m/z/text
	setfattr -n user.big -v "$(head -c 9000 /dev/zero | tr '\0' x)" $m/d/f
	for i in $(seq 1 40); do echo "$i" > $m/d/sub/n$i; done
	fusermount3 -u "$m"
	flock "$img" true
	"$fuzz/cairn-fuzz-seeds" "$img" "$work/corpus"
fi

total=0
for t in superblock node items image compressed log; do
	mkdir -p "$work/corpus/$t"
	log=$work/$t.log
	if ! (cd "$work/findings" && "$fuzz/fuzz_$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
		-print_final_stats=1 "$work/corpus/$t" >"$log" 2>&1); then
		echo "fuzz_$t: FINDING (see $log, inputs in $work/findings)"
		grep -E "ERROR|SUMMARY|runtime error" "$log" | head -5
		exit 1
	fi
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	echo "fuzz_$t: ${n:-?} executions in ${secs}s, no finding"
	total=$((total + ${n:-0}))
done
echo "fuzzing: $total executions, no finding"

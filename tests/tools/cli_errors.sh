#!/usr/bin/env bash
# Bad input to mkfs.cairn, fsck.cairn and cairnctl: clear messages, right
# exit codes, and nothing overwritten without -f.
set -u
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
expect() {  # expect EXIT_CODE PATTERN COMMAND...
  local want=$1 pat=$2; shift 2
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ] || ! echo "$out" | grep -qi -- "$pat"; then
    echo "FAIL: '$*' gave exit $rc (want $want), output: $out"; fails=$((fails + 1))
  fi
}
expect 1 "too small" "$bin/mkfs.cairn" -s 10M "$dir/small.img"
expect 1 "bad node size" "$bin/mkfs.cairn" -s 1G -n 5000 "$dir/a.img"
expect 1 "unknown checksum" "$bin/mkfs.cairn" -s 1G --csum md5 "$dir/a.img"
expect 1 "unknown metadata profile" "$bin/mkfs.cairn" -s 1G -m raid5 "$dir/a.img"
expect 1 "does not exist" "$bin/mkfs.cairn" "$dir/missing.img"
expect 1 "bad size" "$bin/mkfs.cairn" -s 12Q "$dir/a.img"
expect 0 "Created" "$bin/mkfs.cairn" -s 256M -L mylabel "$dir/a.img"
expect 1 "use -f" "$bin/mkfs.cairn" -s 256M "$dir/a.img"
expect 0 "Created" "$bin/mkfs.cairn" -f -s 256M "$dir/a.img"
truncate -s 256M "$dir/ext4.img" && mkfs.ext4 -q -F "$dir/ext4.img" 2>/dev/null && \
  expect 1 "ext2/3/4" "$bin/mkfs.cairn" "$dir/ext4.img"
expect 0 "mkfs.cairn" "$bin/mkfs.cairn" --version
expect 0 "Usage" "$bin/mkfs.cairn" --help
expect 16 "" "$bin/fsck.cairn" --bogus-option "$dir/a.img"
expect 16 "required" "$bin/fsck.cairn"
expect 8 "No such file" "$bin/fsck.cairn" "$dir/missing.img"
truncate -s 100M "$dir/zero.img"
expect 4 "no valid superblock" "$bin/fsck.cairn" "$dir/zero.img"
expect 0 "clean" "$bin/fsck.cairn" "$dir/a.img"
expect 16 "contradict" "$bin/fsck.cairn" --repair -n "$dir/a.img"
expect 0 "clean" "$bin/fsck.cairn" --check-data "$dir/a.img"
# cairnctl: offline scrub and its errors.
expect 0 "scrub finished" "$bin/cairnctl" scrub "$dir/a.img"
expect 0 '"state": "finished"' "$bin/cairnctl" scrub --readonly --json "$dir/a.img"
expect 1 "not a Cairn filesystem" "$bin/cairnctl" scrub "$dir/zero.img"
expect 1 "No such file" "$bin/cairnctl" scrub "$dir/missing.img"
expect 2 "is a directory" "$bin/cairnctl" scrub "$dir"
expect 2 "give IMAGE" "$bin/cairnctl" scrub
expect 2 "required" "$bin/cairnctl" scrub start
expect 1 "not on a mounted Cairn" "$bin/cairnctl" scrub status "$dir"
expect 1 "not on a mounted Cairn" "$bin/cairnctl" verify "$dir/a.img"
expect 2 "" "$bin/cairnctl" scrub --limit -5 "$dir/a.img"
echo "cli errors: $fails failure(s)"
exit $((fails > 0))

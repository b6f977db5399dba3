#!/usr/bin/env bash
# The Debian package, end to end on this machine (as root): cpack builds
# cairn_VERSION_ARCH.deb; its metadata declares the shared libraries'
# packages; apt installs it; the installed programs make an image that
# mount(8) mounts from an fstab (-t fuse.cairn through mount.fuse.cairn),
# fsck(8) checks it as fsck.fuse.cairn, the scrub unit passes
# systemd-analyze verify and its ExecStart exits 0 on a sound filesystem,
# 3 with the damaged path in its output on a damaged one; bash completion
# loads; dpkg -r removes every file, a second install works, purge ends.
# Usage: package_test.sh BUILD_DIR
set -u
build=$(cd "$1" && pwd)
dir=$(mktemp -d /tmp/cairn-package.XXXXXX)
mnt=$dir/mnt
fails=0
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  dpkg -s cairn > /dev/null 2>&1 && dpkg --purge cairn > /dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
# Only the system's directories: a copy in /usr/local must not stand in for the package's.
sys() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (dpkg)"; exit 0; fi
if dpkg -s cairn > /dev/null 2>&1; then echo "FAIL: a cairn package is installed already; remove it first"; exit 1; fi

(cd "$build" && cpack -G DEB -B "$dir/out" > "$dir/cpack.log" 2>&1) || { cat "$dir/cpack.log"; echo "FAIL: cpack"; exit 1; }
deb=$(ls "$dir"/out/cairn_*_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "FAIL: no cairn_VERSION_ARCH.deb"; exit 1; }
ok "built $(basename "$deb")"

depends=$(dpkg-deb -f "$deb" Depends)
for p in fuse3 libfuse3-3 liburing2 libisal2 libzstd1 liblz4-1 libxxhash0 libb2-1 libssl3 libstdc++6; do
  echo "$depends" | grep -q "\b$p\b" || fail "Depends lacks $p: $depends"
done
ok "Depends: $depends"
contents=$(dpkg-deb -c "$deb")
for f in usr/sbin/cairn usr/sbin/mkfs.cairn usr/sbin/fsck.cairn usr/sbin/cairnctl usr/sbin/mount.fuse.cairn \
         usr/sbin/fsck.fuse.cairn usr/share/man/man8/cairn.8.gz usr/share/man/man8/mkfs.cairn.8.gz \
         usr/share/man/man8/fsck.cairn.8.gz usr/share/man/man8/cairnctl.8.gz \
         usr/share/bash-completion/completions/cairnctl usr/lib/systemd/system/cairn-scrub@.service \
         usr/lib/systemd/system/cairn-scrub@.timer; do
  echo "$contents" | grep -q " \./$f\( \|$\)" || fail "package lacks /$f"
done

install_it() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" > "$dir/apt.log" 2>&1 ||
    { cat "$dir/apt.log"; fail "apt install"; return 1; }
  dpkg -s cairn | grep -q "install ok installed" || fail "dpkg says not installed"
}
install_it && ok "installed"
for p in cairn mkfs.cairn fsck.cairn cairnctl; do
  sys "$p" --version > /dev/null 2>&1 || fail "$p --version from /usr/sbin"
done
[ "$(readlink -f /usr/sbin/mount.fuse.cairn)" = "$(readlink -f /sbin/mount.fuse3)" ] || fail "mount.fuse.cairn is not mount.fuse3"
if command -v man > /dev/null; then
  for p in cairn mkfs.cairn fsck.cairn cairnctl; do man -w "$p" > /dev/null 2>&1 || fail "man $p"; done
fi

# Units: systemd-analyze verify checks the syntax, the ExecStart binary and
# the Documentation= man page; any message is a failure.
out=$(systemd-analyze verify /usr/lib/systemd/system/cairn-scrub@.service /usr/lib/systemd/system/cairn-scrub@.timer 2>&1)
rc=$?
[ $rc -eq 0 ] && [ -z "$out" ] && ok "systemd-analyze verify" || fail "systemd-analyze verify (exit $rc): $out"
exec_start=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/cairn-scrub@.service)
[ -n "$exec_start" ] || fail "no ExecStart"

# Bash completion, through bash-completion's own loader when it is there.
if [ -r /usr/share/bash-completion/bash_completion ]; then
  got=$(bash -c 'source /usr/share/bash-completion/bash_completion
    source /usr/share/bash-completion/completions/cairnctl
    COMP_WORDS=(cairnctl filesystem u); COMP_CWORD=2; COMP_LINE="cairnctl filesystem u"; COMP_POINT=${#COMP_LINE}
    _cairn_ctl; echo "${COMPREPLY[*]}"
    COMP_WORDS=(mkfs.cairn -m ""); COMP_CWORD=2; COMP_LINE="mkfs.cairn -m "; COMP_POINT=${#COMP_LINE}
    _cairn_mkfs; echo "${COMPREPLY[*]}"' 2>&1)
  [ "$got" = "$(printf 'usage\ndup single')" ] && ok "bash completion" || fail "bash completion gave: $got"
fi

# A filesystem through the installed programs, mounted from an fstab.
img=$dir/disk.img
mkdir -p "$mnt"
sys mkfs.cairn -q -s 512M "$img" || fail "mkfs.cairn"
echo "$img $mnt fuse.cairn defaults,commit=10 0 0" > "$dir/fstab"
if sys mount -T "$dir/fstab" "$mnt"; then
  [ "$(findmnt -n -o FSTYPE "$mnt")" = fuse.cairn ] && ok "mounted from fstab as fuse.cairn" || fail "fstype $(findmnt -n -o FSTYPE "$mnt")"
  head -c 3M /dev/urandom > "$dir/payload"
  cp "$dir/payload" "$mnt/payload"
  sync "$mnt/payload"
  sys cairnctl filesystem usage "$mnt" | grep -q "^Metadata,DUP:" || fail "filesystem usage: no DUP metadata"
  unit_cmd=${exec_start//%f/$mnt}
  out=$(sys $unit_cmd 2>&1); rc=$?
  [ $rc -eq 0 ] && ok "the scrub unit's command on a sound filesystem: exit 0" || fail "scrub unit command exit $rc: $out"
  umount "$mnt" || fail "umount"
  flock -w 60 "$img" true
else
  fail "mount -T fstab"
fi
sys fsck -t fuse.cairn -a "$img" > "$dir/fsck.out" 2>&1 && ok "fsck(8) -t fuse.cairn -a: clean" ||
  { cat "$dir/fsck.out"; fail "fsck(8) as fsck.fuse.cairn"; }

# Damage with no good copy: the unit's command fails and names the file.
"$build/cairn-corrupt" "$img" data /payload -n 1 --seed 7 > /dev/null || fail "cairn-corrupt"
if sys mount -T "$dir/fstab" "$mnt"; then
  out=$(sys $unit_cmd 2>&1); rc=$?
  [ $rc -eq 3 ] && ok "the scrub unit's command on damage: exit 3" || fail "scrub unit command on damage: exit $rc"
  echo "$out" | grep -q "/payload: bytes" && ok "the report names /payload" || fail "report does not name /payload: $out"
  umount "$mnt"
  flock -w 60 "$img" true
else
  fail "mount -T fstab (damaged)"
fi

dpkg -r cairn > /dev/null 2>&1 || fail "dpkg -r"
for f in /usr/sbin/cairn /usr/sbin/cairnctl /usr/sbin/mount.fuse.cairn /usr/share/man/man8/cairn.8.gz \
         /usr/lib/systemd/system/cairn-scrub@.service /usr/share/bash-completion/completions/cairnctl; do
  [ -e "$f" ] || [ -L "$f" ] && fail "$f left after dpkg -r"
done
ok "removed"
install_it && sys mkfs.cairn -q -f -s 256M "$img" && sys fsck.cairn "$img" > /dev/null && ok "reinstalled, works"
dpkg --purge cairn > /dev/null 2>&1 || fail "dpkg --purge"
echo "$fails failed"
[ "$fails" -eq 0 ]

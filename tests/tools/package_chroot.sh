#!/usr/bin/env bash
# The Debian package on a fresh Debian 12: debootstrap a minimal bookworm
# root, install the package there with apt (its dependencies come from the
# mirror: what Depends says is all it needs), then inside that root make an
# image with mkfs.cairn, mount it from the root's /etc/fstab with mount -a,
# write and read a file, unmount, fsck.cairn it, and verify the units (the
# root has systemd but no man pages: --man=no).
# Needs root and the network (the Debian mirror); not part of ctest.
#   sudo tests/tools/package_chroot.sh BUILD_DIR [ROOT_DIR]
set -euo pipefail
build=$(cd "$1" && pwd)
root=${2:-/var/tmp/cairn-chroot}
mirror=${MIRROR:-http://deb.debian.org/debian}
command -v debootstrap > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap > /dev/null
mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
rm -rf "$root"
echo "== debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase --include=systemd bookworm "$root" "$mirror" > "$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
(cd "$build" && cpack -G DEB -B "$root/tmp/pkg" > /dev/null)
deb=$(cd "$root/tmp/pkg" && ls cairn_*.deb | head -n 1)
for m in proc sys dev; do mount --rbind "/$m" "$root/$m"; mounts+=("$root/$m"); done
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive "$@"; }
echo "== apt install ./$deb"
in_root apt-get install -y -q --no-install-recommends "/tmp/pkg/$deb" > "$root.apt.log" 2>&1 || { tail -20 "$root.apt.log"; exit 1; }
grep -E "^(Setting up|Unpacking) " "$root.apt.log" | sed 's/^/   /' | head -40
echo "== mkfs.cairn, fstab, mount -a"
in_root mkfs.cairn -s 1G /srv/disk.img
mkdir -p "$root/srv/data"
echo "/srv/disk.img /srv/data fuse.cairn defaults,nofail 0 0" >> "$root/etc/fstab"
in_root mount -a
mounts+=("$root/srv/data")
in_root findmnt -n -o SOURCE,TARGET,FSTYPE /srv/data
in_root sh -c 'echo "hello from a fresh Debian 12" > /srv/data/hello && sync /srv/data/hello && cat /srv/data/hello'
in_root cairnctl filesystem usage /srv/data | head -7
in_root df -h /srv/data
in_root umount /srv/data
unset 'mounts[${#mounts[@]}-1]'
sleep 1
echo "== fsck.cairn, units"
in_root fsck.cairn /srv/disk.img
in_root systemd-analyze verify --man=no /usr/lib/systemd/system/cairn-scrub@.service /usr/lib/systemd/system/cairn-scrub@.timer && echo "units verify" ||
  { echo "systemd-analyze verify failed"; exit 1; }
echo "== a fresh Debian 12 installs, mounts from fstab and checks: passed"

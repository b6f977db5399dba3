#pragma once
// The control channel between cairnctl and a mounted daemon (docs/design.md,
// "Control channel"): ioctls on the mount's root directory. FUSE forwards
// them to the daemon, which checks the caller: root, or the uid that owns
// the filesystem's root directory.
#include <sys/ioctl.h>

#include <cstddef>

namespace cairn {

constexpr size_t kCtlBufferSize = 16000;  // the largest a restricted FUSE ioctl carries
// Each returns a NUL-terminated JSON document.
// On the root directory (root or the filesystem's owner):
#define CAIRN_IOC_STATS _IOC(_IOC_READ, 0xCA, 1, cairn::kCtlBufferSize)
// Takes a JSON request {"limit_bytes_per_sec": N, "resume": bool}; returns the status.
#define CAIRN_IOC_SCRUB_START _IOC(_IOC_READ | _IOC_WRITE, 0xCA, 2, cairn::kCtlBufferSize)
#define CAIRN_IOC_SCRUB_STATUS _IOC(_IOC_READ, 0xCA, 3, cairn::kCtlBufferSize)
#define CAIRN_IOC_SCRUB_CANCEL _IOC(_IOC_READ, 0xCA, 4, cairn::kCtlBufferSize)
// On any regular file the caller could open: verify its data blocks (every
// copy), repair from a good copy, report (cairnctl verify).
#define CAIRN_IOC_VERIFY _IOC(_IOC_READ, 0xCA, 5, cairn::kCtlBufferSize)
// On a regular file, by anyone: the calling thread's next copy_file_range
// into this file is a clone — shared blocks or an error, never a copy
// (cairnctl clone; fuse/clone_intents.h).
#define CAIRN_IOC_CLONE_NEXT _IOC(_IOC_READ, 0xCA, 6, cairn::kCtlBufferSize)
// Subvolumes (cairnctl subvolume; docs/design.md, "Subvolumes"). On a
// directory the caller may write: {"name"} makes a subvolume there;
// {"name", "source": st_ino of a subvolume's root, "readonly"} a snapshot
// of it (root or the source's owner); {"name"} deletes the subvolume of
// that name (root or its owner).
#define CAIRN_IOC_SUBVOL_CREATE _IOC(_IOC_READ | _IOC_WRITE, 0xCA, 7, cairn::kCtlBufferSize)
#define CAIRN_IOC_SUBVOL_SNAPSHOT _IOC(_IOC_READ | _IOC_WRITE, 0xCA, 8, cairn::kCtlBufferSize)
#define CAIRN_IOC_SUBVOL_DELETE _IOC(_IOC_READ | _IOC_WRITE, 0xCA, 9, cairn::kCtlBufferSize)
// On any file or directory of the mount: every subvolume; the one holding
// it, with its space; wait until deleted subvolumes are dropped.
#define CAIRN_IOC_SUBVOL_LIST _IOC(_IOC_READ, 0xCA, 10, cairn::kCtlBufferSize)
#define CAIRN_IOC_SUBVOL_SHOW _IOC(_IOC_READ, 0xCA, 11, cairn::kCtlBufferSize)
#define CAIRN_IOC_SUBVOL_SYNC _IOC(_IOC_READ, 0xCA, 12, cairn::kCtlBufferSize)
// On a regular file anyone may open: its data's referenced, exclusive and
// shared bytes (cairnctl du).
#define CAIRN_IOC_FILE_SPACE _IOC(_IOC_READ, 0xCA, 13, cairn::kCtlBufferSize)

}  // namespace cairn

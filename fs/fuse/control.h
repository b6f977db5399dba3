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

}  // namespace cairn

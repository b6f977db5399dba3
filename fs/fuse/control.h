#pragma once
// The control channel between cairnctl and a mounted daemon (docs/design.md,
// "Control channel"): ioctls on the mount's root directory. FUSE forwards
// them to the daemon, which checks the caller: root, or the uid that owns
// the filesystem's root directory.
#include <sys/ioctl.h>

#include <cstddef>

namespace cairn {

constexpr size_t kCtlBufferSize = 16000;  // the largest a restricted FUSE ioctl carries
// Returns a NUL-terminated JSON document.
#define CAIRN_IOC_STATS _IOC(_IOC_READ, 0xCA, 1, cairn::kCtlBufferSize)

}  // namespace cairn

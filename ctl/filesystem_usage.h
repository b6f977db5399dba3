#pragma once
// cairnctl filesystem usage: where the device's bytes are, per chunk type
// and profile (as `btrfs filesystem usage`), from a mounted filesystem or an
// unmounted image. The figures are the daemon's own account (fs/alloc/
// space_usage.h), the one df and `cairnctl stats` print.

#include <string>

namespace cairn::ctl {

// TARGET: a mount point (or any directory on the mount), or an unmounted
// image or device. Returns an Exit status.
int filesystem_usage(const std::string& target, bool as_json);

}  // namespace cairn::ctl

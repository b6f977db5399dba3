#pragma once
// The FUSE low-level operations table over a Filesystem (docs/design.md,
// "FUSE daemon"). Each handler sends exactly one reply; errors travel as
// errno from the Filesystem's Status codes.
#define FUSE_USE_VERSION 314
#include <fuse3/fuse_lowlevel.h>

#include "vfs/filesystem.h"

namespace cairn {

struct FuseContext {
  Filesystem* fs = nullptr;
  double attr_timeout = 1.0;
  double entry_timeout = 1.0;
  size_t max_write = 1 << 20;
};

const fuse_lowlevel_ops& cairn_fuse_ops();

}  // namespace cairn

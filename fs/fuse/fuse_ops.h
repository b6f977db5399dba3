#pragma once
// The FUSE low-level operations table over a Filesystem (docs/design.md,
// "FUSE daemon"). Each handler sends exactly one reply; errors travel as
// errno from the Filesystem's Status codes.
#define FUSE_USE_VERSION 314
#include <fuse3/fuse_lowlevel.h>

#include "fuse/clone_intents.h"
#include "scrub/scrub_service.h"
#include "util/buffer_pool.h"
#include "vfs/filesystem.h"

namespace cairn {

struct FuseContext {
  Filesystem* fs = nullptr;
  ScrubService* scrub = nullptr;  // online scrub; null on read-only mounts
  double attr_timeout = 1.0;
  double entry_timeout = 1.0;
  size_t max_write = 1 << 20;
  // The mount's backing device info ("MAJ:MIN"), found after mounting, and
  // the readahead to give it (KiB): the kernel's 128 KiB default cuts
  // sequential reads through FUSE to a fraction of the device's speed.
  std::string bdi;
  unsigned readahead_kb = 16384;
  bool writeback_cache = false;  // ask for FUSE_CAP_WRITEBACK_CACHE
  bool posix_acl = true;         // ask for FUSE_CAP_POSIX_ACL (-o noacl: not)
  // The kernel maps FOPEN_DIRECT_IO handles (Linux 6.6+, asked for at INIT):
  // O_DIRECT handles are opened that way (set_open_mode in fuse_ops.cc).
  bool direct_io_mmap = false;
  // For notifications to the kernel (cache invalidation); set once the
  // session exists.
  fuse_session* se = nullptr;
  // Read replies are read into and sent from these; main() keeps one per
  // 1 MiB request a sequential read keeps in flight (readahead / 1 MiB).
  BufferPool read_buffers;
  // copy_file_range calls that cairnctl clone marked as clone-or-fail.
  CloneIntents clone_intents;
};

// Raise the mount's readahead once the kernel has finished INIT (which
// resets it). Called from request handlers; runs once.
void apply_readahead(FuseContext& c);

const fuse_lowlevel_ops& cairn_fuse_ops();
// The mount's root directory (Filesystem::root_ino), before the session runs.
void set_root_ino(uint64_t ino);

// The kernel's cached attributes of `ino` are stale (the daemon moved atime
// or a set-ID bit on its own): drop them, not the pages. Safe from any
// thread and any handler: the kernel takes no lock of the inode for it.
void invalidate_kernel_attrs(FuseContext& c, uint64_t ino);

}  // namespace cairn

#pragma once
// mkfs.cairn --rootdir DIR: fill a new filesystem from a directory tree, as
// mkfs.btrfs --rootdir and mke2fs -d do, for making images in build
// pipelines.
//
// Everything goes through the same VFS calls the FUSE daemon makes
// (Filesystem::mkdir, mknod, symlink, link, write, setxattr, setattr), so
// the image is exactly what copying the tree into a mounted filesystem
// would give: checksums, inode items, directory indexes, ACLs and
// compression choices alike, and fsck has nothing new to learn.
//
// What is copied, for every entry below DIR (DIR itself becomes the root
// directory): regular files (holes stay holes: only SEEK_DATA ranges are
// written), directories, symbolic links (never followed), hard links (one
// inode, as in DIR), character and block devices, FIFOs and sockets; owner,
// group, mode (set-ID and sticky bits too), atime and mtime in nanoseconds,
// and every extended attribute (POSIX ACLs, security.*, trusted.*).
// ctime is the time of the copy, as for any file written now.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dev/block_device.h"
#include "util/status.h"

namespace cairn {

struct PopulateProgress {
  uint64_t entries = 0;  // files, directories, links... created so far
  uint64_t bytes = 0;    // data bytes written so far
};

struct PopulateOptions {
  std::string rootdir;
  // Called with the first entry, then at most every 250 ms, with the figures so far:
  // mkfs prints a progress line on a terminal.
  std::function<void(const PopulateProgress&)> on_progress;
};

// Mount the new filesystem on `dev` (without FUSE), copy the tree in, and
// unmount cleanly. The error names the path that could not be copied;
// ENOSPC says how much did fit.
Result<PopulateProgress> populate_from_directory(std::shared_ptr<BlockDevice> dev, const PopulateOptions& opts);

}  // namespace cairn

#pragma once
// In-memory inodes (docs/design.md, "Inode table").
//
// An Inode is a FileState (the item, its size on disk, the file's cached
// pages: fs/cache/file_state.h) plus what only the VFS needs: the kernel's
// references, the orphan flag and the I/O lock. Changes to the item are made
// in memory and written to the fs tree before each commit (as btrfs's
// delayed inodes), so a stream of writes does not rewrite the item each time.
//
// Locking: `nlookup`, `open_count`, `orphan` (and FileState's `item`,
// `dirty`, `disk_size`) are guarded by the engine mutex. `io_lock` orders
// data I/O on the file: readers share it, writers and size changes hold it
// exclusively. Lock order: io_lock before the engine mutex, never the reverse.

#include <cstdint>
#include <shared_mutex>
#include <sys/stat.h>

#include "cache/file_state.h"
#include "vfs/vino.h"

namespace cairn {

struct Inode : FileState {
  // `vino`: the mount-wide number (vfs/vino.h): tree and inode number.
  explicit Inode(uint64_t vino) : FileState(ino_of_vino(vino), root_of_vino(vino)) {}
  uint64_t vino() const { return vino_of(root, ino); }
  uint64_t nlookup = 0;     // kernel references (FUSE lookup count)
  uint32_t open_count = 0;  // open file handles
  bool orphan = false;      // nlink reached 0 while still in use; an ORPHAN_ITEM exists
  std::shared_mutex io_lock;

  bool is_dir() const { return S_ISDIR(item.mode); }
  bool is_reg() const { return S_ISREG(item.mode); }
  bool is_lnk() const { return S_ISLNK(item.mode); }
};

}  // namespace cairn

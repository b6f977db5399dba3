#pragma once
// In-memory inodes (docs/design.md, "Inode table").
//
// An Inode caches its INODE_ITEM; changes to it are made in memory and
// written to the fs tree before each commit (as btrfs's delayed inodes), so
// a stream of writes does not rewrite the item each time.
//
// Locking: `item`, `nlookup`, `open_count`, `dirty`, `orphan`, `disk_size` are guarded
// by the engine mutex. `io_lock` orders data I/O on the file: readers share
// it, writers and size changes hold it exclusively. Lock order: io_lock
// before the engine mutex, never the reverse.

#include <cstdint>
#include <shared_mutex>
#include <sys/stat.h>

#include "cache/file_cache.h"
#include "format/items.h"

namespace cairn {

struct Inode {
  explicit Inode(uint64_t n) : ino(n) {}
  const uint64_t ino;
  InodeItem item;
  uint64_t nlookup = 0;     // kernel references (FUSE lookup count)
  uint32_t open_count = 0;  // open file handles
  bool dirty = false;       // item differs from the tree
  bool orphan = false;      // nlink reached 0 while still in use; an ORPHAN_ITEM exists
  std::shared_mutex io_lock;
  // The size the tree may record: data up to here is on disk (ordered
  // extents raise it as they finish), so a crash never exposes a size
  // whose bytes were not written. Guarded by the engine mutex.
  uint64_t disk_size = 0;
  FileCache cache;

  bool is_dir() const { return S_ISDIR(item.mode); }
  bool is_reg() const { return S_ISREG(item.mode); }
  bool is_lnk() const { return S_ISLNK(item.mode); }
};

}  // namespace cairn

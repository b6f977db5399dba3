#pragma once
// The daemon's per-file write cache (docs/design.md, "Write path").
//
// Buffered writes land here as dirty 4 KiB pages (delayed allocation: no
// disk space is chosen until writeback). A page under writeback is frozen:
// the ordered extent holds a reference to it, and a write to that page
// replaces it in the map with a copy instead of changing bytes that are
// being checksummed and written (invariant 3). Once the ordered extent has
// finished, clean pages leave the cache: the kernel's page cache keeps clean
// file data, so the daemon holds only what the disk does not have yet.
//
// Locking: every field is guarded by `mu`. Lock order: FileCache::mu
// before the engine mutex.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "util/status.h"

namespace cairn {

constexpr uint64_t kPageSize = 4096;

struct alignas(4096) Page {
  uint8_t bytes[kPageSize];
};
using PagePtr = std::shared_ptr<Page>;
// A page whose bytes are NOT cleared: every caller fills what it uses.
// Allocated apart from its reference count, so it takes 4 KiB, not 8 (a
// page-aligned object after the count would round the block up).
inline PagePtr new_page() { return PagePtr(new Page); }

// What held a dirty page's block on disk when the page became dirty.
enum class BlockSpace : uint8_t {
  kHole,       // nothing: writeback allocates, and st_blocks counts the page meanwhile
  kWritten,    // data: writeback allocates anew (copy-on-write); st_blocks already counts it
  kUnwritten,  // preallocated space of this file: written in place, nothing to allocate
};

struct CachedPage {
  PagePtr page;
  bool dirty = false;      // newer than the disk and not yet in an ordered extent
  bool writeback = false;  // `page` is frozen in an ordered extent in flight
  bool dropbehind = false; // written through a dropbehind handle or file: leaves no trace once on disk
  BlockSpace space = BlockSpace::kHole;  // while dirty
  // Space for writeback is reserved for kHole and kWritten pages.
  bool reserved() const { return space != BlockSpace::kUnwritten; }
};

struct FileCache {
  // Serializes writers of the file (as i_rwsem does for local filesystems),
  // so a partial page read in for one write cannot miss another's bytes.
  // Taken before `mu`.
  std::mutex write_mu;
  std::mutex mu;
  std::condition_variable cv;             // an ordered extent of this file finished
  std::map<uint64_t, CachedPage> pages;   // page index -> current page
  std::set<uint64_t> inflight;            // page indexes covered by an ordered extent in flight
  std::atomic<uint64_t> dirty_pages{0};
  std::atomic<uint64_t> dirty_hole_pages{0};  // dirty pages over holes; read without `mu` for st_blocks
  uint32_t inflight_extents = 0;
  Status error;                           // first writeback error; the next fsync reports it
  bool deleted = false;                   // the inode is gone: finishing extents release their space
};

}  // namespace cairn

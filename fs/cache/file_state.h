#pragma once
// FileState: everything about one file that the data path (fs/data) reads or
// changes, and that may exist only in memory until writeback and the next
// commit put it in the tree (docs/design.md, "Inode table").
//
// The VFS `Inode` is built on it (vfs/inode.h adds the kernel's references,
// the orphan flag and the I/O lock); fs/data and fs/cache never see the VFS.
// One object exists per inode number at a time: the inode table keeps it
// while any of its state is not yet in the tree (a dirty item, dirty or
// in-flight pages, an error to report), whatever the kernel remembers.
//
// Locking: `item`, `dirty` and `disk_size` are guarded by the engine mutex;
// `cache` by its own `mu` (taken before the engine mutex).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <map>

#include "cache/file_cache.h"
#include "format/constants.h"
#include "format/items.h"

namespace cairn {

// What the fsync log must carry for one file (docs/design.md, "Fsync
// log"); guarded by the engine mutex. A file's fsync can be logged when
// everything that changed since the last commit is data written through
// the write path (ranges here) and inode fields; anything else (names,
// xattrs, truncation, fallocate, reflinks) marks the transaction, and an
// fsync in it commits.
struct FsyncLogState {
  uint64_t base = 0;                     // the committed generation `written` counts from
  std::map<uint64_t, uint64_t> written;  // start -> end: written since then, not yet logged
  uint64_t needs_commit = 0;             // transaction in which the log cannot describe the file

  // Ranges from an older generation are in the tree the last commit wrote.
  void rebase(uint64_t committed) {
    if (base != committed) written.clear(), base = committed;
  }
  void note_written(uint64_t committed, uint64_t start, uint64_t end) {
    rebase(committed);
    auto it = written.upper_bound(start);
    if (it != written.begin() && std::prev(it)->second >= start) {
      --it;
      start = it->first;
    }
    while (it != written.end() && it->first <= end) {
      end = std::max(end, it->second);
      it = written.erase(it);
    }
    written[start] = end;
  }
};

struct FileState {
  explicit FileState(uint64_t n, uint64_t tree = kFsTreeId) : ino(n), root(tree) {}
  FileState(const FileState&) = delete;
  FileState& operator=(const FileState&) = delete;
  virtual ~FileState() = default;

  const uint64_t ino;   // in its tree
  const uint64_t root;  // the fs tree (subvolume) holding it
  InodeItem item;      // the INODE_ITEM as the next commit will write it
  bool dirty = false;  // `item` differs from the tree
  // ... only in its atime (touch_atime; mark_dirty clears it). Kept by the
  // namespace paths, which are a directory's only changes: an fsync of a
  // directory need not make an atime durable (fdatasync never does).
  bool dirty_atime_only = false;
  // The size the tree may record: data up to here is on disk (ordered
  // extents raise it as they finish), so a crash never exposes a size
  // whose bytes were not written.
  uint64_t disk_size = 0;
  FileCache cache;     // dirty and in-flight pages, the error to report
  FsyncLogState log;
  // Compression heuristic (docs/design.md, "Compression"): clusters in a
  // row that did not compress; clusters still to be stored untried; and
  // how often the file backed off since its last success (each back-off
  // skips twice as many clusters). Races between clusters only shift
  // where a guess lands.
  std::atomic<uint32_t> compress_misses{0}, compress_skip{0}, compress_backoffs{0};
};

}  // namespace cairn

#pragma once
// Writeback: buffered writes, ordered extents, and their completion
// (docs/design.md, "Write path"; BRIEF "The write path"; seeds 000, 001, 003).
//
//  write()          -> dirty pages in the inode's FileCache (delayed allocation)
//  flush_inode()    -> runs of dirty pages become ordered extents: a new disk
//                      extent, pages frozen, data submitted with io_uring and,
//                      at the same moment, the checksums computed on the
//                      ChecksumPool from the extent's own saved page list
//  I/O + checksums  -> each half drops the extent's count; the half that
//                      drops it to zero queues the extent on a completion
//                      worker (the reaper itself never does more)
//  finish()         -> on the worker: file extent item, checksum items,
//                      extent reference, replaced extent to pinned, nbytes and
//                      disk size, clean pages leave the cache, waiters wake
//
// In-flight ordered extents of one file never overlap (a page whose older
// version is still in flight waits for the next round), so they may finish
// in any order. Thread-safety: all public methods from any thread.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "compress/codec.h"
#include "csum/checksum_pool.h"
#include "data/file_data.h"
#include "io/completion_workers.h"
#include "io/io_engine.h"
#include "cache/file_state.h"

namespace cairn {

enum class CsumMode { kAuto, kSync, kAsync };

struct WritebackOptions {
  uint64_t dirty_limit = 128ULL << 20;  // writers wait above this
  unsigned queue_depth = 64;
  CsumMode csum_mode = CsumMode::kAuto;
  unsigned csum_threads = 0;        // 0: one per CPU
  unsigned completion_workers = 0;  // 0: one per CPU
  uint64_t max_extent = 4ULL << 20; // bytes per ordered extent (IOV_MAX pages)
  double interval_seconds = 1.0;    // background writeback tick
  // -o compress: files without their own choice (user.cairn.compress).
  CompressSpec compress;
};

struct WritebackStats {
  std::atomic<uint64_t> extents{0}, bytes{0}, async_csums{0}, sync_csums{0}, io_errors{0};
  std::atomic<uint64_t> dropped_behind{0};     // pages
  std::atomic<uint64_t> dontcache_writes{0};   // ordered extents written with RWF_DONTCACHE
  // Compression: extents written compressed, their file bytes and disk
  // bytes; file bytes stored as they are after a try or a guess that it
  // would not pay, or untried while their file backed off; back-offs.
  std::atomic<uint64_t> compressed_extents{0}, compressed_in{0}, compressed_out{0};
  std::atomic<uint64_t> compress_rejected{0}, compress_guessed{0}, compress_skipped{0}, compress_backoffs{0};
};

class Writeback {
 public:
  Writeback(Engine& e, FileData& data, IoEngine& io, const WritebackOptions& opts);
  ~Writeback();  // flushes nothing: call flush_all(true) first
  // Called under the engine mutex after an ordered extent's items went into
  // the tree (the owner bounds dirty nodes with it). Set before any write.
  void set_after_record_hook(std::function<void()> fn) { after_record_ = std::move(fn); }

  // Copy into the cache. Caller holds in->io_lock (shared) and not the engine mutex.
  // `dropbehind`: the pages are written back at once and leave every cache
  // once on disk (seed 002: a property of each page, not of an I/O).
  Result<size_t> write(const std::shared_ptr<FileState>& in, uint64_t off, const char* buf, size_t len,
                       bool dropbehind = false);
  // Start writeback of the file's dirty pages; with `wait`, until none is dirty or in flight.
  Status flush_inode(const std::shared_ptr<FileState>& in, bool wait);
  Status flush_all(bool wait);
  // Wait until no ordered extent is in flight, of any file, deleted ones
  // included (flush_all waits only for files still dirty): the final commit
  // saves the free-space map, which must hold no space written but not yet
  // recorded or given back.
  void wait_idle();
  // The inode was deleted: forget its dirty pages and their reservation.
  // Takes the file's cache lock: never call with the engine mutex held.
  void discard(FileState& in);
  // Take (and clear) the file's writeback error.
  Status take_error(FileState& in);

  uint64_t dirty_bytes() const { return dirty_bytes_.load(); }
  // Space promised to dirty pages that have no disk extent yet.
  uint64_t reserved_bytes() const { return reserved_.load(); }
  uint64_t cached_bytes() const { return cached_bytes_.load(); }
  const WritebackStats& stats() const { return stats_; }
  const WritebackOptions& options() const { return opts_; }
  CompletionWorkers& workers() { return workers_; }
  ChecksumPool& pool() { return pool_; }

 private:
  struct Ordered;
  void submit(Ordered* oe);
  // The compression to try for a new extent of `in` (engine mutex held).
  CompressSpec compression_for(const FileState& in) const;
  // On the pool: compress one cluster (at most kMaxCompressedRam), then
  // checksum, allocate and write what goes to disk; a cluster that does
  // not compress goes back to submit() to be written as it is.
  void compress_and_submit(Ordered* oe);
  // A new ordered extent of oe's pages from `keep` on (oe keeps the first
  // `keep`), with its share of oe's space reservation; the caller counts it
  // in flight.
  Ordered* split_tail(Ordered* oe, size_t keep);
  // One write per copy; each completion drops oe's count (set by the caller).
  void write_copies(Ordered* oe, const std::vector<uint64_t>& copies);
  void finish(Ordered* oe);
  void background();
  void note_dirty(const std::shared_ptr<FileState>& in);
  void release_reservation(uint64_t bytes);

  Engine& e_;
  FileData& data_;
  IoEngine& io_;
  WritebackOptions opts_;
  ChecksumPool pool_;
  CompletionWorkers workers_;
  WritebackStats stats_;
  std::atomic<uint64_t> dirty_bytes_{0}, cached_bytes_{0}, reserved_{0};
  std::atomic<uint64_t> ordered_in_flight_{0};  // created, not yet finished

  std::function<void()> after_record_;
  std::mutex mu_;  // dirty_inodes_, stop_, the kick
  std::condition_variable kick_, progress_;
  std::set<std::shared_ptr<FileState>> dirty_inodes_;
  bool stop_ = false, kicked_ = false;
  std::thread thread_;
};

}  // namespace cairn

#pragma once
// Scrub: read every copy of every allocated tree node and checksummed data
// block, verify it, and rewrite a bad copy from a good one (docs/design.md,
// "Scrub").
//
// What is scrubbed is the set of allocations recorded in the extent tree:
// every METADATA_ITEM (tree nodes) and EXTENT_ITEM (data), in address
// order, so the position reached is one logical address and a cancelled
// scrub resumes there. Items are collected in batches under the engine
// mutex; the reads run outside it, through io_uring, deep-queued and
// coalesced; a batch is verified while the next one is being read.
//
// Scrubbing a live filesystem: an extent item only exists once its data is
// on disk, and commit (which writes tree nodes) holds the engine mutex, so
// whatever the extent tree lists under the mutex is stable on disk under the
// mutex. Between collection and reading, an extent may be freed and its
// space reused; therefore every mismatch is confirmed under the mutex (the
// item still exists, its checksum is the one used, a fresh read still
// fails) before it is counted or repaired. Scrub never reports a race as
// damage, and a repair only ever writes the good copy's bytes over a bad
// copy of a block that is still allocated.
//
// Thread-safety: one thread runs a Scrubber; progress() may be called from
// any thread; cancel through the atomic in ScrubOptions.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "format/items.h"
#include "io/io_engine.h"
#include "scrub/backrefs.h"
#include "tree/engine.h"

namespace cairn {

struct ScrubOptions {
  uint64_t start = 0;                 // logical address to start from (resume)
  uint64_t limit_bytes_per_sec = 0;   // 0: as fast as the device goes
  bool repair = true;                 // rewrite bad copies from good ones
  const std::atomic<bool>* cancel = nullptr;
  // Called after every batch (outside the engine mutex): persist progress.
  std::function<void(const ScrubProgress&)> on_batch;
};

// One damaged block (or node) the scrub confirmed.
struct ScrubError {
  bool metadata = false;
  uint64_t logical = 0;
  uint64_t length = 0;
  int copy = 0;            // which copy was bad
  uint64_t physical = 0;
  bool corrected = false;
  bool repairable = false; // a good copy exists (a read-only scrub leaves it unrepaired)
  std::string detail;      // what was wrong; for metadata, the tree
  std::vector<FileRange> files;  // data: who reads this block
};

class Scrubber {
 public:
  // `progress` carries counters to continue from (resume); position comes
  // from opts.start.
  Scrubber(Engine& e, IoEngine& io, ScrubOptions opts, ScrubProgress resume_from = {});

  // Everything recorded in the extent tree from opts.start on.
  Status run_all();
  // Only the data blocks of one file (cairnctl verify).
  Status run_inode(uint64_t root, uint64_t ino);

  ScrubProgress progress() const;
  std::vector<ScrubError> errors() const;
  bool cancelled() const { return cancelled_; }

 private:
  struct Unit;
  struct Batch;
  static uint64_t batch_bytes(const std::vector<Unit>& units);
  Status run(const std::function<Status(Batch&)>& collect);
  Status collect_extents(Batch& b);
  Status collect_inode(Batch& b, uint64_t root, uint64_t ino);
  Status add_data_unit(Batch& b, uint64_t ext_bytenr, uint64_t ext_len, uint64_t logical, uint64_t len);
  void submit(Batch& b);
  void wait(Batch& b);
  void verify(Batch& b);
  Status confirm_and_repair(Batch& b);
  Status confirm_data(const Unit& u, uint64_t sector_off);
  Status confirm_node(const Unit& u);
  void drain_node_store_log();
  void note(ScrubError err);
  // A confirmed bad copy: repair it from `good` (null: no good copy) when
  // allowed, count it, keep it for the report.
  void settle(ScrubError err, const uint8_t* good);
  void count(const ScrubError& err, bool have_good);
  void throttle(uint64_t bytes_this_run, double elapsed_s);

  Engine& e_;
  IoEngine& io_;
  ScrubOptions opts_;
  uint64_t position_;     // everything below it is verified
  uint64_t collect_pos_;  // the next batch is collected from here (one batch ahead)
  uint64_t batch_budget_ = 16ULL << 20;  // bytes read per batch, all copies
  uint64_t inode_cursor_ = 0;  // run_inode: next file offset to collect
  bool done_collecting_ = false;
  bool chunk_tree_collected_ = false;  // run_all: the chunk tree's nodes go in the first batch
  bool cancelled_ = false;
  mutable std::mutex mu_;  // guards progress_ and errors_ for readers on other threads
  ScrubProgress progress_;
  std::vector<ScrubError> errors_;
  std::set<std::pair<uint64_t, uint64_t>> reported_;  // (logical, physical) already counted
};

// The report, as `cairnctl scrub status --json` prints it.
nlohmann::json scrub_report_json(const ScrubProgress& p, const std::vector<ScrubError>& errors, uint64_t total_bytes,
                                 size_t max_errors = 100);
const char* scrub_state_name(uint8_t state);

}  // namespace cairn

#pragma once
// The online scrub of a mounted filesystem (docs/design.md, "Scrub"): one
// background thread runs a Scrubber over the live engine; cairnctl starts,
// watches, cancels and resumes it through the control channel.
//
// Progress is saved in the SCRUB_PROGRESS item of the root tree every few
// seconds and when the scrub ends (it reaches the disk with the next
// commit), so `scrub resume` continues after a cancel, an unmount or a
// crash, and `scrub status` reports the last scrub after a remount.
//
// Thread-safety: every method may be called from any FUSE thread.

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/io_engine.h"
#include "scrub/scrubber.h"
#include "tree/engine.h"

namespace cairn {

class ScrubService {
 public:
  ScrubService(Engine& e, IoEngine& io);
  ~ScrubService();  // cancels a running scrub and saves its position

  // Start from the beginning, or (resume) from the saved position with the
  // saved counters. EBUSY when one is running; EROFS on a read-only mount.
  Status start(uint64_t limit_bytes_per_sec, bool resume);
  Status cancel();  // ENOENT when none is running
  nlohmann::json status();
  void shutdown();

  // Read the saved progress item (None when there is none).
  static Result<ScrubProgress> load(Engine& e);
  // Store it in the running transaction; call with the engine mutex held.
  static Status save_locked(Engine& e, const ScrubProgress& p);

 private:
  ScrubOptions options(const ScrubProgress& from, uint64_t limit);
  void run(ScrubProgress from);
  void join_finished();

  Engine& e_;
  IoEngine& io_;
  std::mutex mu_;  // guards everything below
  std::thread thread_;
  std::unique_ptr<Scrubber> scrubber_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> running_{false};
  ScrubProgress last_;            // saved or final progress when none runs
  std::vector<ScrubError> last_errors_;
  Status last_status_;
};

}  // namespace cairn

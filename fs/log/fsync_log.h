#pragma once
// FsyncLog: fsync without a commit (docs/design.md, "Fsync log").
//
// A commit writes every dirty node of every tree, flushes, writes every
// superblock copy and flushes again. An fsync of a file whose names and
// xattrs are as the last commit left them needs far less: its data is
// already on disk (writeback), so a log write holding the file's inode
// item and the extent items of the ranges written since, with their
// checksums, and one flush make it durable. The next mount replays the
// log on top of the last commit (log/log_replay.h); the next commit makes
// it obsolete.
//
// Concurrent fsyncs join one log write: the first caller leads, builds the
// records of every file queued by then under the engine mutex (so a
// file's records are placed in the order its state changed), writes them
// outside it, flushes, and wakes the others. Whatever the log cannot carry
// (a file created, renamed or truncated in this transaction, a record too
// big, no log space) makes persist() say so, and the caller commits.

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "cache/file_state.h"
#include "format/log_write.h"
#include "tree/engine.h"

namespace cairn {

struct FsyncLogStats {
  uint64_t fsyncs = 0;     // persist() calls the log served
  uint64_t writes = 0;     // log writes (each one flush)
  uint64_t bytes = 0;      // bytes of log written
  uint64_t fallbacks = 0;  // persist() calls that had to commit, by reason:
  uint64_t fallback_changed = 0;    // created, renamed, truncated, ... in this transaction
  uint64_t fallback_new_chunk = 0;  // data in a chunk the last commit did not record
  uint64_t fallback_unloggable = 0; // inline data, checksums missing, not a regular file
  uint64_t fallback_too_big = 0;    // the record does not fit one log write
  uint64_t fallback_no_log = 0;     // no log space in this generation (or it failed)
};

// Why build_record_locked could not describe a file.
enum class LogRefusal { kNone, kChanged, kNewChunk, kUnloggable };

class FsyncLog {
 public:
  explicit FsyncLog(Engine& e) : e_(e) {}

  // Make `in` durable as it is now through the log. The caller has
  // finished the file's writeback (every ordered extent recorded) and
  // holds neither the engine mutex nor the file's cache lock. True: durable;
  // false: the log cannot carry it, commit instead; an error: the log write
  // failed (a commit still makes the file durable).
  Result<bool> persist(FileState& in);
  FsyncLogStats stats();

  // Engine mutex held: the record that makes `in` as it is now, or nothing
  // when the log cannot describe it.
  // `why` (if given) says which case it was.
  Result<std::optional<LogRecord>> build_record_locked(FileState& in, LogRefusal* why = nullptr);

 private:
  struct Waiter {
    FileState* in;
    bool done = false;
    bool logged = false;
    uint64_t FsyncLogStats::*fallback = nullptr;  // the reason counter, if it commits
    Status status = Status::Ok();
  };
  // Log every waiter of the batch in one write (or none: they commit).
  void run_batch(const std::vector<Waiter*>& batch);

  Engine& e_;
  std::mutex mu_;  // the queue and the leader; never held with another lock
  std::condition_variable cv_;
  std::vector<Waiter*> queue_;
  bool leading_ = false;
  FsyncLogStats stats_;
};

}  // namespace cairn

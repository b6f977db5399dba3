#pragma once
// IoEngine: data I/O on the image through io_uring (docs/design.md, "Write path").
//
// Submitters (any thread) queue reads and writes; one reaper thread per
// ring only reaps completions and calls each request's callback. Invariant
// 5: callbacks run on the reaper and must never block or take a lock that
// blocks — they drop a count and, at most, push work to a lock-free list.
//
// The image is opened a second time with O_DIRECT where the backing
// filesystem allows it (buffers and offsets are 4 KiB aligned), so data
// does not pass through the host's page cache twice; otherwise buffered.
//
// Thread-safety: submit_* may be called from any thread.

#include <liburing.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "util/status.h"

namespace cairn {

// One I/O in flight. The submitter owns it until `done` has been called.
struct IoRequest {
  // Called on the reaper thread with the result (bytes, or -errno). Must not block.
  std::function<void(int64_t res)> done;
  size_t expected = 0;
  int forced_error = 0;  // set by fault injection: the completion reports it
};

struct IoEngineOptions {
  unsigned queue_depth = 64;
  bool direct = true;         // try O_DIRECT
  bool dontcache = false;     // RWF_DONTCACHE on writes (dropbehind), where supported
};

class IoEngine {
 public:
  static Result<std::unique_ptr<IoEngine>> open(const std::string& path, bool read_only, const IoEngineOptions& opts);
  ~IoEngine();

  void submit_write(uint64_t offset, const iovec* iov, int iovcnt, IoRequest* req, int rw_flags = 0);
  void submit_read(uint64_t offset, const iovec* iov, int iovcnt, IoRequest* req);
  // Synchronous helpers for callers that wait anyway (reads, tests).
  // read_sync reads on the calling thread (pread on the same descriptor),
  // not through the ring: a caller that blocks anyway gains nothing from the
  // ring and would pay two wake-ups per read (the reaper's, then its own).
  Status read_sync(uint64_t offset, void* buf, size_t len);
  Status write_sync(uint64_t offset, const void* buf, size_t len, int rw_flags = 0);

  bool direct() const { return direct_; }
  bool dontcache_supported() const { return dontcache_ok_; }
  unsigned queue_depth() const { return depth_; }
  uint64_t completions() const { return completions_.load(); }
  uint64_t sync_reads() const { return sync_reads_.load(); }
  // Tests: writes complete with EIO without reaching the device.
  void inject_write_errors(bool on) { inject_write_errors_ = on; }

 private:
  IoEngine() = default;
  void submit(bool write, uint64_t offset, const iovec* iov, int iovcnt, IoRequest* req, int rw_flags);
  void reap();

  io_uring ring_{};
  int fd_ = -1;
  bool direct_ = false;
  bool dontcache_ok_ = false;
  unsigned depth_ = 0;
  std::mutex sq_mu_;  // the submission queue has one producer at a time
  std::atomic<uint32_t> inflight_{0};
  std::atomic<uint64_t> completions_{0};
  std::atomic<uint64_t> sync_reads_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> inject_write_errors_{false};
  std::thread reaper_;
};

// RWF_DONTCACHE (Linux 6.14); Debian 12's headers predate the name.
constexpr int kRwfDontcache = 0x80;

}  // namespace cairn

#pragma once
// ChecksumPool: threads that compute data checksums while the data's write
// is in flight (seed 003). A job computes into memory its submitter owns
// and then signals through the job's own callback; nobody ever waits for a
// job from inside the pool (the flush_work deadlock in seed 003).
//
// Thread-safety: submit() from any thread except the reaper (it takes the
// queue's mutex).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cairn {

class ChecksumPool {
 public:
  explicit ChecksumPool(unsigned nthreads);
  ~ChecksumPool();  // runs what is queued, then stops
  void submit(std::function<void()> job);
  uint64_t jobs_run() const;
  unsigned size() const { return unsigned(threads_.size()); }

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  uint64_t run_count_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace cairn

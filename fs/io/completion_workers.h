#pragma once
// CompletionWorkers: where finished I/O is completed, in task context
// (docs/design.md, "Write path"; seeds 000 and 001).
//
// One dedicated thread per CPU, each fed by a lock-free list (a Treiber
// stack). Producers — the io_uring reaper and the checksum pool — push with
// one compare-and-swap and wake the worker only when its list goes from
// empty to non-empty (seed 001). The worker takes the whole list at once and
// reverses it, so items run in the order they were queued (seed 000).
//
// Thread-safety: queue() from any thread, including the reaper (it never
// blocks: a CAS and at most one futex wake). drain() waits until everything
// queued before it has run; it must not be called from a worker.

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace cairn {

class CompletionItem {
 public:
  virtual ~CompletionItem() = default;
  virtual void complete() = 0;  // runs on a worker; may block, take locks, allocate

 private:
  friend class CompletionWorkers;
  CompletionItem* next_ = nullptr;
};

class CompletionWorkers {
 public:
  explicit CompletionWorkers(unsigned nworkers);
  ~CompletionWorkers();  // drains, then stops the threads

  // Queue on worker `hint % n` (callers pass a CPU or an inode number).
  void queue(CompletionItem* item, uint64_t hint);
  void drain();
  unsigned size() const { return unsigned(workers_.size()); }
  uint64_t completed() const { return done_.load(); }
  uint64_t wakeups() const;

 private:
  struct Worker {
    std::atomic<CompletionItem*> head{nullptr};
    std::atomic<uint32_t> signal{0};
    std::atomic<uint64_t> wakeups{0};
    std::thread thread;
  };
  void run(Worker* w);

  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint64_t> queued_{0}, done_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace cairn

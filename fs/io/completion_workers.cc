#include "io/completion_workers.h"

#include <pthread.h>
#include <sched.h>

namespace cairn {

CompletionWorkers::CompletionWorkers(unsigned n) {
  if (n == 0) n = 1;
  for (unsigned i = 0; i < n; i++) {
    workers_.push_back(std::make_unique<Worker>());
    Worker* w = workers_.back().get();
    w->thread = std::thread([this, w] { run(w); });
    pthread_setname_np(w->thread.native_handle(), ("cairn-compl/" + std::to_string(i)).c_str());
  }
}

CompletionWorkers::~CompletionWorkers() {
  drain();
  stop_ = true;
  for (auto& w : workers_) {
    w->signal.fetch_add(1);
    w->signal.notify_one();
  }
  for (auto& w : workers_) w->thread.join();
}

void CompletionWorkers::queue(CompletionItem* item, uint64_t hint) {
  Worker* w = workers_[hint % workers_.size()].get();
  queued_.fetch_add(1);
  CompletionItem* old = w->head.load(std::memory_order_relaxed);
  do {
    item->next_ = old;
  } while (!w->head.compare_exchange_weak(old, item, std::memory_order_release, std::memory_order_relaxed));
  if (old == nullptr) {  // empty -> non-empty: the only case that needs a wake-up
    w->signal.fetch_add(1, std::memory_order_release);
    w->signal.notify_one();
  }
}

void CompletionWorkers::run(Worker* w) {
  for (;;) {
    const uint32_t seen = w->signal.load(std::memory_order_acquire);
    CompletionItem* list = w->head.exchange(nullptr, std::memory_order_acquire);
    if (!list) {
      if (stop_) return;
      w->signal.wait(seen);
      w->wakeups++;
      continue;
    }
    // The stack holds newest first: reverse it to run in queue order.
    CompletionItem* fifo = nullptr;
    while (list) {
      CompletionItem* next = list->next_;
      list->next_ = fifo;
      fifo = list;
      list = next;
    }
    uint64_t n = 0;
    while (fifo) {
      CompletionItem* next = fifo->next_;
      fifo->complete();  // may delete the item
      fifo = next;
      n++;
    }
    done_.fetch_add(n);
    done_.notify_all();
  }
}

void CompletionWorkers::drain() {
  const uint64_t target = queued_.load();
  for (uint64_t d = done_.load(); d < target; d = done_.load()) done_.wait(d);
}

uint64_t CompletionWorkers::wakeups() const {
  uint64_t n = 0;
  for (auto& w : workers_) n += w->wakeups.load();
  return n;
}

}  // namespace cairn

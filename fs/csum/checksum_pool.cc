#include "csum/checksum_pool.h"

#include <pthread.h>

namespace cairn {

ChecksumPool::ChecksumPool(unsigned n) {
  if (n == 0) n = 1;
  for (unsigned i = 0; i < n; i++) {
    threads_.emplace_back([this] { run(); });
    pthread_setname_np(threads_.back().native_handle(), ("cairn-csum/" + std::to_string(i)).c_str());
  }
}

ChecksumPool::~ChecksumPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ChecksumPool::submit(std::function<void()> job) {
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

uint64_t ChecksumPool::jobs_run() const {
  std::lock_guard lk(const_cast<std::mutex&>(mu_));
  return run_count_;
}

void ChecksumPool::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    job();
    lk.lock();
    run_count_++;
  }
}

}  // namespace cairn

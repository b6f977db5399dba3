#pragma once
// CloneIntents: `cairnctl clone` wants a reflink or an error, never a
// silent copy, but it can only reach the daemon through copy_file_range
// (FUSE has no FICLONE, and only copy_file_range lets the kernel check that
// the caller may read the source and write the destination). So it first
// marks its next copy_file_range with an ioctl on the destination
// (CAIRN_IOC_CLONE_NEXT); the daemon remembers (thread, destination) and
// serves the next copy_file_range from that thread into that file as a
// clone (Filesystem::CopyMode::kShareOnly). A mark not used within a few
// seconds (the caller died in between) is forgotten.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

namespace cairn {

class CloneIntents {
 public:
  void expect(uint32_t tid, uint64_t ino) {
    std::lock_guard lk(mu_);
    const auto now = Clock::now();
    std::erase_if(pending_, [&](const auto& p) { return now - p.second > kLifetime; });
    pending_[{tid, ino}] = now;
  }
  // Was the copy_file_range from `tid` into `ino` marked? (Unmarks it.)
  bool take(uint32_t tid, uint64_t ino) {
    std::lock_guard lk(mu_);
    auto it = pending_.find({tid, ino});
    if (it == pending_.end()) return false;
    const bool fresh = Clock::now() - it->second <= kLifetime;
    pending_.erase(it);
    return fresh;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kLifetime = std::chrono::seconds(10);
  std::mutex mu_;
  std::map<std::pair<uint32_t, uint64_t>, Clock::time_point> pending_;
};

}  // namespace cairn

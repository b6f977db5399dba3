#pragma once
// Caller: who a request comes from, as far as the filesystem's rules need.
//
// A FUSE request carries the caller's uid, gid, umask and thread id, but
// not what the kernel itself would consult for the set-ID rules: the
// supplementary groups and CAP_FSETID. Those are read from
// /proc/PID/status when a rule needs them, which is only for files that
// carry a set-ID bit, so the common path never pays for it.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace cairn {

struct Caller {
  uint32_t uid = 0, gid = 0;
  uint32_t umask = 022;
  // The requesting thread (FUSE passes its id); 0 for the daemon's own
  // work and for tests, which then set `groups` and `cap_fsetid` directly.
  uint32_t pid = 0;

  // Filled on first use from /proc/PID/status; a caller without a pid is
  // privileged when it is root and in no group but its own.
  mutable std::optional<std::vector<uint32_t>> groups;
  mutable std::optional<bool> cap_fsetid;

  // The kernel's in_group_p(): the primary or a supplementary group.
  bool in_group(uint32_t g) const;
  // CAP_FSETID in the effective set (what `capable(CAP_FSETID)` asks).
  bool has_fsetid() const;

 private:
  void load() const;
};

}  // namespace cairn

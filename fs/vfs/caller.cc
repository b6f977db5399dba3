#include "vfs/caller.h"

#include <linux/capability.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace cairn {

void Caller::load() const {
  if (groups && cap_fsetid) return;
  std::vector<uint32_t> g;
  std::optional<bool> cap;
  if (pid != 0) {
    const std::string path = "/proc/" + std::to_string(pid) + "/status";
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char line[4096];
      while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, "Groups:", 7) == 0) {
          char* p = line + 7;
          for (;;) {
            char* end;
            unsigned long v = std::strtoul(p, &end, 10);
            if (end == p) break;
            g.push_back(uint32_t(v));
            p = end;
          }
        } else if (std::strncmp(line, "CapEff:", 7) == 0) {
          unsigned long long caps = std::strtoull(line + 7, nullptr, 16);
          cap = (caps >> CAP_FSETID) & 1;
        }
      }
      std::fclose(f);
    }
  }
  // The caller is gone or /proc is not there: its own ids are all we know.
  // Root is then taken to be privileged, anyone else not.
  if (!groups) groups = std::move(g);
  if (!cap_fsetid) cap_fsetid = cap.value_or(uid == 0);
}

bool Caller::in_group(uint32_t g) const {
  if (g == gid) return true;
  load();
  return std::find(groups->begin(), groups->end(), g) != groups->end();
}

bool Caller::has_fsetid() const {
  load();
  return *cap_fsetid;
}

}  // namespace cairn

#pragma once
// Addresses in messages: "0x1540000", as fsck and the engine word them.

#include <cstdint>
#include <cstdio>
#include <string>

namespace cairn {

inline std::string hex(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace cairn

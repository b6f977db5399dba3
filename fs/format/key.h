#pragma once
// Keys: (objectid, type, offset), ordered lexicographically (docs/format.md, "Key").

#include <compare>
#include <cstdint>
#include <string>

#include "util/endian.h"

namespace cairn {

struct Key {
  uint64_t objectid = 0;
  uint8_t type = 0;
  uint64_t offset = 0;

  auto operator<=>(const Key&) const = default;
  static constexpr size_t kDiskSize = 17;
  static Key Min() { return Key{0, 0, 0}; }
  static Key Max() { return Key{~0ULL, 0xFF, ~0ULL}; }

  void encode(uint8_t* p) const {
    put_le64(p, objectid);
    put_u8(p + 8, type);
    put_le64(p + 9, offset);
  }
  static Key decode(const uint8_t* p) { return Key{get_le64(p), get_u8(p + 8), get_le64(p + 9)}; }
  // The smallest key greater than this one.
  Key next() const {
    Key k = *this;
    if (++k.offset != 0) return k;
    if (++k.type != 0) return k;
    ++k.objectid;
    return k;
  }
  std::string to_string() const {
    return "(" + std::to_string(objectid) + " " + std::to_string(type) + " " + std::to_string(offset) + ")";
  }
};

}  // namespace cairn

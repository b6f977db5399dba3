#pragma once
// Little-endian load/store on raw byte buffers. Every on-disk structure is
// little-endian (docs/format.md, "Conventions"); the codecs go through these
// helpers, never through casts of packed structs, so alignment and host byte
// order never matter.

#include <cstdint>
#include <cstring>

namespace cairn {

inline uint8_t get_u8(const uint8_t* p) { return p[0]; }
inline uint16_t get_le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t get_le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline uint64_t get_le64(const uint8_t* p) { return uint64_t(get_le32(p)) | (uint64_t(get_le32(p + 4)) << 32); }
inline void put_u8(uint8_t* p, uint8_t v) { p[0] = v; }
inline void put_le16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
inline void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = uint8_t(v >> (8 * i));
}
inline void put_le64(uint8_t* p, uint64_t v) {
  put_le32(p, uint32_t(v));
  put_le32(p + 4, uint32_t(v >> 32));
}

}  // namespace cairn

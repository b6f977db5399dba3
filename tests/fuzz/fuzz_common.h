#pragma once
// Shared by the fuzz targets: mutated inputs get their checksums recomputed
// before decoding, so the fuzzer explores what lies behind the checksum
// (hostile images with valid checksums and lying fields) instead of
// stopping at it.
#include <cstdint>
#include <cstring>

#include "csum/checksum.h"
#include "util/endian.h"

namespace cairn::fuzz {

// Superblocks and nodes both keep their checksum in bytes [0, 32) over the
// rest of the block, the unused tail of the 32 bytes zero.
inline void fix_csum(uint8_t* buf, size_t len, CsumType ct) {
  uint8_t sum[kMaxCsumSize];
  csum_compute(ct, buf + kMaxCsumSize, len - kMaxCsumSize, sum);
  std::memset(buf, 0, kMaxCsumSize);
  std::memcpy(buf, sum, csum_size(ct));
}

// The checksum type a superblock names, or crc32c when it names none we know.
inline CsumType superblock_csum_type(const uint8_t* sb) {
  const uint16_t t = get_le16(sb + 116);
  return t <= uint16_t(CsumType::kBlake2b) ? CsumType(t) : CsumType::kCrc32c;
}

}  // namespace cairn::fuzz

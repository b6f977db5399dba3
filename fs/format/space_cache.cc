// Free-space cache block codec: implements docs/format.md, "Free space cache".
#include "format/space_cache.h"

#include <algorithm>
#include <cstring>

#include "csum/checksum.h"
#include "util/endian.h"
#include "util/hex.h"

namespace cairn {

namespace {
enum : size_t {
  kOffCsum = 0,
  kOffMagic = 32,
  kOffFsid = 40,
  kOffBytenr = 56,
  kOffGeneration = 64,
  kOffNext = 72,
  kOffIndex = 80,
  kOffTotalBlocks = 84,
  kOffTotalRanges = 88,
  kOffExtentItems = 96,
  kOffCount = 104,
  kOffEntries = SpaceCacheBlock::kHeaderSize,
};
}  // namespace

void SpaceCacheBlock::encode(const Superblock& sb, uint8_t* buf) const {
  std::memset(buf, 0, sb.node_size);
  put_le64(buf + kOffMagic, kMagic);
  std::memcpy(buf + kOffFsid, sb.fsid.data(), 16);
  put_le64(buf + kOffBytenr, bytenr);
  put_le64(buf + kOffGeneration, generation);
  put_le64(buf + kOffNext, next);
  put_le32(buf + kOffIndex, index);
  put_le32(buf + kOffTotalBlocks, total_blocks);
  put_le64(buf + kOffTotalRanges, total_ranges);
  put_le64(buf + kOffExtentItems, extent_items);
  // layout_space_cache never gives a block more than it holds; were it to,
  // the cut-off ranges make the chain's count wrong and the load refuses it.
  const size_t n = std::min(ranges.size(), capacity(sb.node_size));
  put_le32(buf + kOffCount, uint32_t(n));
  uint8_t* p = buf + kOffEntries;
  for (size_t i = 0; i < n; i++) {
    auto [s, l] = ranges[i];
    put_le64(p, s);
    put_le64(p + 8, l);
    p += kEntrySize;
  }
  uint8_t sum[kMaxCsumSize] = {};
  csum_compute(sb.csum_type, buf + kMaxCsumSize, sb.node_size - kMaxCsumSize, sum);
  std::memcpy(buf + kOffCsum, sum, kMaxCsumSize);
}

Result<SpaceCacheBlock> SpaceCacheBlock::decode(const Superblock& sb, const uint8_t* buf, uint64_t bytenr) {
  const std::string where = "free-space cache block " + hex(bytenr);
  if (!csum_verify(sb.csum_type, buf + kMaxCsumSize, sb.node_size - kMaxCsumSize, buf + kOffCsum))
    return Status::Corruption(where + ": checksum mismatch");
  if (get_le64(buf + kOffMagic) != kMagic) return Status::Corruption(where + ": bad magic");
  if (std::memcmp(buf + kOffFsid, sb.fsid.data(), 16) != 0) return Status::Corruption(where + ": belongs to another filesystem");
  SpaceCacheBlock b;
  b.bytenr = get_le64(buf + kOffBytenr);
  b.generation = get_le64(buf + kOffGeneration);
  b.next = get_le64(buf + kOffNext);
  b.index = get_le32(buf + kOffIndex);
  b.total_blocks = get_le32(buf + kOffTotalBlocks);
  b.total_ranges = get_le64(buf + kOffTotalRanges);
  b.extent_items = get_le64(buf + kOffExtentItems);
  uint32_t count = get_le32(buf + kOffCount);
  if (b.bytenr != bytenr) return Status::Corruption(where + ": records its address as " + hex(b.bytenr));
  if (b.generation != sb.space_cache_generation)
    return Status::Corruption(where + ": generation " + std::to_string(b.generation) + ", the superblock expects " +
                              std::to_string(sb.space_cache_generation));
  if (count > capacity(sb.node_size)) return Status::Corruption(where + ": " + std::to_string(count) + " ranges do not fit");
  b.ranges.reserve(count);
  const uint8_t* p = buf + kOffEntries;
  for (uint32_t i = 0; i < count; i++, p += kEntrySize) b.ranges.emplace_back(get_le64(p), get_le64(p + 8));
  return b;
}

}  // namespace cairn

// libFuzzer target: the superblock decoder on any 4 KiB block, its checksum
// made valid first. A decoded superblock is re-encoded and must decode to
// the same fields (the codec is canonical).
#include <cstdlib>
#include <vector>

#include "format/superblock.h"
#include "fuzz_common.h"

using namespace cairn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> buf(kSuperblockSize, 0);
  std::memcpy(buf.data(), data, std::min<size_t>(size, buf.size()));
  fuzz::fix_csum(buf.data(), buf.size(), fuzz::superblock_csum_type(buf.data()));
  auto sb = Superblock::decode(buf.data(), kSuperblockOffsets[0]);
  if (!sb.ok()) return 0;
  std::vector<uint8_t> again(kSuperblockSize, 0);
  sb->encode(again.data());
  auto sb2 = Superblock::decode(again.data(), kSuperblockOffsets[0]);
  if (!sb2.ok() || sb2->generation != sb->generation || sb2->chunks.size() != sb->chunks.size()) std::abort();
  return 0;
}

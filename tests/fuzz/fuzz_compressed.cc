// libFuzzer target: the compressed extent decoder with hostile input.
// Byte 0 picks the algorithm (zstd, lz4, or an unknown value), byte 1 the
// decoded length in blocks (1..32, as FileExtent::decode allows), the rest
// is the disk extent (its length rounded down to whole blocks, at least
// one). Decoding must fail cleanly or give exactly that length; and the
// input compressed by the encoder must decode back to itself.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "compress/codec.h"

using namespace cairn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const uint8_t kTypes[] = {kCompressZstd, kCompressLz4, kCompressNone, 7};
  const uint8_t type = kTypes[data[0] % 4];
  const size_t ram = (1 + data[1] % 32) * kSectorSize;
  std::vector<uint8_t> disk(std::max<size_t>(kSectorSize, (size - 2) / kSectorSize * kSectorSize), 0);
  std::memcpy(disk.data(), data + 2, std::min(disk.size(), size - 2));
  std::vector<uint8_t> out(ram);
  (void)decompress_extent(type, disk.data(), disk.size(), out.data(), ram);

  // Round trip of the input as file data (zero-padded to whole blocks).
  if (type != kCompressZstd && type != kCompressLz4) return 0;
  const size_t len = std::min<size_t>(kMaxCompressedRam, (size + kSectorSize - 1) / kSectorSize * kSectorSize);
  std::vector<uint8_t> plain(len, 0);
  std::memcpy(plain.data(), data, std::min(size, len));
  AlignedBuffer enc;
  const size_t n = compress_extent(CompressSpec{type, 1}, plain.data(), len, enc);
  if (n == 0) return 0;
  std::vector<uint8_t> back(len);
  if (!decompress_extent(type, enc.data(), n, back.data(), len).ok() || back != plain) std::abort();
  return 0;
}

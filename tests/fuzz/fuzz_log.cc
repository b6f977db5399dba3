// libFuzzer target: the fsync log write decoder (format/log_write.h) on any
// bytes, with the header fields the chain fixes (magic, fsid, generation,
// place, own address, length) and the checksum made right first, so the
// fuzzer works on the records behind them. A decoded write re-encodes to
// bytes that decode to the same write (the codec is canonical).
#include <cstdlib>
#include <vector>

#include "format/log_write.h"
#include "fuzz_common.h"

using namespace cairn;

namespace {
constexpr uint64_t kLogical = kFirstLogical + (1ULL << 20);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Superblock sb;
  sb.generation = 3;
  sb.total_bytes = 1ULL << 30;
  sb.next_chunk_logical = kFirstLogical + (1ULL << 30);
  const size_t len = std::min<size_t>(LogWrite::kMaxBytes, (std::max<size_t>(size, 1) + 4095) / 4096 * 4096);
  std::vector<uint8_t> buf(len, 0);
  std::memcpy(buf.data(), data, std::min(size, len));
  put_le64(buf.data() + 32, LogWrite::kMagic);
  std::memcpy(buf.data() + 40, sb.fsid.data(), 16);
  put_le64(buf.data() + 56, 3);  // generation
  put_le64(buf.data() + 64, 1);  // seq
  put_le64(buf.data() + 72, kLogical);
  put_le32(buf.data() + 80, uint32_t(len));
  fuzz::fix_csum(buf.data(), len, sb.csum_type);
  auto w = LogWrite::decode(sb, buf.data(), len, kLogical, 3, 1);
  if (!w.ok()) return 0;
  const Bytes again = w->encode(sb);
  auto w2 = LogWrite::decode(sb, again.data(), again.size(), kLogical, 3, 1);
  if (!w2.ok() || w2->encode(sb) != again || w2->records.size() != w->records.size()) std::abort();
  return 0;
}

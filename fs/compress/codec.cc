#include "compress/codec.h"

#include <lz4.h>
#include <zstd.h>

#include <charconv>
#include <cmath>
#include <cstring>

#include "util/endian.h"

namespace cairn {

namespace {

constexpr size_t kBlock = kSectorSize;
// Zstd's window never exceeds the extent (2^17 = 128 KiB): frames stay
// small, and the decoder refuses a (hostile) frame that asks for more,
// so decoding one extent never allocates more than that window.
constexpr int kZstdWindowLog = 17;

struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  int level = -1000;
  ZstdContexts() { ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, kZstdWindowLog); }
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
ZstdContexts& zstd() {
  thread_local ZstdContexts z;
  return z;
}

}  // namespace

Result<CompressSpec> parse_compress_spec(std::string_view s) {
  CompressSpec spec;
  std::string_view name = s, level;
  if (auto colon = s.find(':'); colon != std::string_view::npos) {
    name = s.substr(0, colon);
    level = s.substr(colon + 1);
  }
  if (name == "none" || name == "no") spec.type = kCompressNone;
  else if (name == "zstd") spec.type = kCompressZstd;
  else if (name == "lz4") spec.type = kCompressLz4;
  else return Status::Invalid("unknown compression '" + std::string(s) + "' (zstd[:1-19], lz4 or none)");
  if (s.find(':') != std::string_view::npos && level.empty()) return Status::Invalid("compression level missing: '" + std::string(s) + "'");
  if (!level.empty()) {
    if (spec.type != kCompressZstd) return Status::Invalid("only zstd takes a level: '" + std::string(s) + "'");
    int v = 0;
    auto [p, ec] = std::from_chars(level.data(), level.data() + level.size(), v);
    if (ec != std::errc() || p != level.data() + level.size() || v < 1 || v > kZstdMaxLevel)
      return Status::Invalid("zstd level must be 1 to " + std::to_string(kZstdMaxLevel) + ": '" + std::string(s) + "'");
    spec.level = v;
  }
  return spec;
}

const char* compress_type_name(uint8_t type) {
  switch (type) {
    case kCompressNone: return "none";
    case kCompressZstd: return "zstd";
    case kCompressLz4: return "lz4";
    default: return "unknown";
  }
}

std::string compress_spec_name(const CompressSpec& s) {
  std::string n = compress_type_name(s.type);
  if (s.type == kCompressZstd && s.level) n += ":" + std::to_string(s.level);
  return n;
}

size_t compress_extent(const CompressSpec& spec, const uint8_t* src, size_t len, AlignedBuffer& out) {
  if (len < 2 * kBlock || len > kMaxCompressedRam || len % kBlock) return 0;
  // At least one block saved, or it is not worth a decompression per read.
  const size_t room = len - kBlock - kCompressHeaderSize;
  out.resize(len - kBlock);
  uint8_t* payload = out.data() + kCompressHeaderSize;
  size_t n = 0;
  if (spec.type == kCompressZstd) {
    ZstdContexts& z = zstd();
    const int level = spec.level ? spec.level : kZstdDefaultLevel;
    if (z.level != level) {
      ZSTD_CCtx_reset(z.c, ZSTD_reset_session_and_parameters);
      ZSTD_CCtx_setParameter(z.c, ZSTD_c_compressionLevel, level);
      ZSTD_CCtx_setParameter(z.c, ZSTD_c_windowLog, kZstdWindowLog);
      ZSTD_CCtx_setParameter(z.c, ZSTD_c_checksumFlag, 0);  // the block checksums cover it
      z.level = level;
    }
    const size_t r = ZSTD_compress2(z.c, payload, room, src, len);
    if (ZSTD_isError(r)) return 0;  // did not fit: incompressible enough
    n = r;
  } else if (spec.type == kCompressLz4) {
    const int r = LZ4_compress_default(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(payload), int(len),
                                       int(room));
    if (r <= 0) return 0;
    n = size_t(r);
  } else {
    return 0;
  }
  put_le32(out.data(), uint32_t(n));
  const size_t used = kCompressHeaderSize + n, disk = (used + kBlock - 1) / kBlock * kBlock;
  if (disk >= len) return 0;
  std::memset(out.data() + used, 0, disk - used);
  return disk;
}

Status decompress_extent(uint8_t type, const uint8_t* disk, size_t disk_len, uint8_t* out, size_t ram_len) {
  if (disk_len < kBlock || ram_len == 0 || ram_len > kMaxCompressedRam)
    return Status::Corruption("compressed extent: impossible lengths");
  const uint32_t n = get_le32(disk);
  if (n == 0 || n > disk_len - kCompressHeaderSize)
    return Status::Corruption("compressed extent: payload length " + std::to_string(n) + " does not fit its " +
                              std::to_string(disk_len) + " bytes");
  const uint8_t* payload = disk + kCompressHeaderSize;
  if (type == kCompressZstd) {
    const size_t r = ZSTD_decompressDCtx(zstd().d, out, ram_len, payload, n);
    if (ZSTD_isError(r)) return Status::Corruption(std::string("compressed extent: zstd: ") + ZSTD_getErrorName(r));
    if (r != ram_len)
      return Status::Corruption("compressed extent: decodes to " + std::to_string(r) + " bytes, not " +
                                std::to_string(ram_len));
    return Status::Ok();
  }
  if (type == kCompressLz4) {
    const int r = LZ4_decompress_safe(reinterpret_cast<const char*>(payload), reinterpret_cast<char*>(out), int(n),
                                      int(ram_len));
    if (r < 0) return Status::Corruption("compressed extent: lz4 data does not decode");
    if (size_t(r) != ram_len)
      return Status::Corruption("compressed extent: decodes to " + std::to_string(r) + " bytes, not " +
                                std::to_string(ram_len));
    return Status::Ok();
  }
  return Status::Corruption("compressed extent: unknown algorithm " + std::to_string(type));
}

bool likely_incompressible(const uint8_t* src, size_t len) {
  // 32 bytes from every 1 KiB: 4 KiB of sample for a 128 KiB extent.
  constexpr size_t kRun = 32, kStride = 1024;
  uint32_t hist[256] = {};
  size_t n = 0;
  for (size_t at = 0; at + kRun <= len; at += kStride) {
    for (size_t i = 0; i < kRun; i++) hist[src[at + i]]++;
    n += kRun;
  }
  if (n < 1024) return false;
  double bits = 0;
  for (uint32_t h : hist)
    if (h) {
      const double p = double(h) / double(n);
      bits -= p * std::log2(p);
    }
  // Above 7.8 bits per byte, an order-0 coder saves under 2.5 %, less than
  // the one block in 32 a 128 KiB extent must save; compressed media,
  // archives and encrypted data sit at 7.9 and above.
  return bits > 7.8;
}

}  // namespace cairn

// Superblock codec: implements docs/format.md, "Superblock" and "Chunk array".
#include "format/superblock.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <random>

#include "util/endian.h"
#include "util/hex.h"

namespace cairn {

namespace {
// Field offsets, in the order docs/format.md lists them.
enum : size_t {
  kOffCsum = 0,
  kOffMagic = 32,
  kOffFsid = 40,
  kOffBytenr = 56,
  kOffFlags = 64,
  kOffGeneration = 72,
  kOffRoot = 80,
  kOffTotalBytes = 88,
  kOffBytesUsed = 96,
  kOffVersion = 104,
  kOffSectorSize = 108,
  kOffNodeSize = 112,
  kOffCsumType = 116,
  kOffRootLevel = 118,
  kOffDataProfile = 119,
  kOffMetaProfile = 120,
  kOffCompat = 128,
  kOffCompatRo = 136,
  kOffIncompat = 144,
  kOffNextChunk = 152,
  kOffNumChunks = 160,
  kOffLabel = 168,
  kOffRootGeneration = 424,
  kOffChunkRoot = 432,
  kOffChunkRootGeneration = 440,
  kOffChunkRootLevel = 448,
  kOffSpaceCache = 456,
  kOffSpaceCacheGeneration = 464,
  kOffLogStart = 472,
  kOffLogGeneration = 480,
  kOffChunks = 512,
};
static_assert(kOffChunks + Superblock::kMaxChunks * Chunk::kDiskSize <= kSuperblockSize);

}  // namespace

std::string uuid_to_string(const Uuid& u) {
  char b[40];
  std::snprintf(b, sizeof b, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return b;
}

bool uuid_parse(const std::string& s, Uuid* out) {
  Uuid u{};
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '-') continue;
    if (n >= 32 || !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    int v = std::isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0' : (std::tolower(s[i]) - 'a' + 10);
    u[n / 2] = uint8_t(u[n / 2] | (n % 2 == 0 ? v << 4 : v));
    n++;
  }
  if (n != 32) return false;
  *out = u;
  return true;
}

Uuid uuid_generate_random() {
  Uuid u{};
  std::random_device rd;
  for (auto& b : u) b = uint8_t(rd());
  u[6] = uint8_t((u[6] & 0x0F) | 0x40);  // RFC 4122 version 4
  u[8] = uint8_t((u[8] & 0x3F) | 0x80);
  return u;
}

bool Superblock::has_magic(const uint8_t* buf) { return get_le64(buf + kOffMagic) == kSuperMagic; }

void Superblock::encode(uint8_t* buf) const {
  std::memset(buf, 0, kSuperblockSize);
  put_le64(buf + kOffMagic, kSuperMagic);
  std::memcpy(buf + kOffFsid, fsid.data(), 16);
  put_le64(buf + kOffBytenr, bytenr);
  put_le64(buf + kOffFlags, flags);
  put_le64(buf + kOffGeneration, generation);
  put_le64(buf + kOffRoot, root);
  put_le64(buf + kOffRootGeneration, root_generation);
  put_le64(buf + kOffChunkRoot, chunk_root);
  put_le64(buf + kOffChunkRootGeneration, chunk_root_generation);
  put_u8(buf + kOffChunkRootLevel, chunk_root_level);
  put_le64(buf + kOffSpaceCache, space_cache);
  put_le64(buf + kOffSpaceCacheGeneration, space_cache_generation);
  put_le64(buf + kOffLogStart, log_start);
  put_le64(buf + kOffLogGeneration, log_generation);
  put_le64(buf + kOffTotalBytes, total_bytes);
  put_le64(buf + kOffBytesUsed, bytes_used);
  put_le32(buf + kOffVersion, format_version);
  put_le32(buf + kOffSectorSize, sector_size);
  put_le32(buf + kOffNodeSize, node_size);
  put_le16(buf + kOffCsumType, uint16_t(csum_type));
  put_u8(buf + kOffRootLevel, root_level);
  put_u8(buf + kOffDataProfile, data_profile);
  put_u8(buf + kOffMetaProfile, metadata_profile);
  put_le64(buf + kOffCompat, compat_flags);
  put_le64(buf + kOffCompatRo, compat_ro_flags);
  put_le64(buf + kOffIncompat, incompat_flags);
  put_le64(buf + kOffNextChunk, next_chunk_logical);
  put_le32(buf + kOffNumChunks, uint32_t(chunks.size()));
  std::memcpy(buf + kOffLabel, label.data(), std::min(label.size(), kLabelSize - 1));
  for (size_t i = 0; i < chunks.size() && i < kMaxChunks; i++)
    chunks[i].encode(buf + kOffChunks + i * Chunk::kDiskSize);
  uint8_t sum[kMaxCsumSize];
  csum_compute(csum_type, buf + kMaxCsumSize, kSuperblockSize - kMaxCsumSize, sum);
  std::memcpy(buf + kOffCsum, sum, kMaxCsumSize);
}

Result<Superblock> Superblock::decode(const uint8_t* buf, uint64_t at) {
  const std::string where = "superblock at " + hex(at);
  if (!has_magic(buf)) return Status::Corruption(where + ": bad magic (not a Cairn filesystem)");
  uint16_t ct = get_le16(buf + kOffCsumType);
  if (!csum_type_valid(ct)) return Status::Corruption(where + ": unknown checksum type " + std::to_string(ct));
  Superblock sb;
  sb.csum_type = CsumType(ct);
  if (!csum_verify(sb.csum_type, buf + kMaxCsumSize, kSuperblockSize - kMaxCsumSize, buf + kOffCsum))
    return Status::Corruption(where + ": checksum mismatch");
  for (size_t i = csum_size(sb.csum_type); i < kMaxCsumSize; i++)
    if (buf[kOffCsum + i]) return Status::Corruption(where + ": checksum padding is not zero");
  std::memcpy(sb.csum, buf + kOffCsum, kMaxCsumSize);
  std::memcpy(sb.fsid.data(), buf + kOffFsid, 16);
  sb.bytenr = get_le64(buf + kOffBytenr);
  sb.flags = get_le64(buf + kOffFlags);
  sb.generation = get_le64(buf + kOffGeneration);
  sb.root = get_le64(buf + kOffRoot);
  sb.root_generation = get_le64(buf + kOffRootGeneration);
  sb.chunk_root = get_le64(buf + kOffChunkRoot);
  sb.chunk_root_generation = get_le64(buf + kOffChunkRootGeneration);
  sb.chunk_root_level = get_u8(buf + kOffChunkRootLevel);
  sb.space_cache = get_le64(buf + kOffSpaceCache);
  sb.space_cache_generation = get_le64(buf + kOffSpaceCacheGeneration);
  sb.log_start = get_le64(buf + kOffLogStart);
  sb.log_generation = get_le64(buf + kOffLogGeneration);
  sb.total_bytes = get_le64(buf + kOffTotalBytes);
  sb.bytes_used = get_le64(buf + kOffBytesUsed);
  sb.format_version = get_le32(buf + kOffVersion);
  sb.sector_size = get_le32(buf + kOffSectorSize);
  sb.node_size = get_le32(buf + kOffNodeSize);
  sb.root_level = get_u8(buf + kOffRootLevel);
  sb.data_profile = get_u8(buf + kOffDataProfile);
  sb.metadata_profile = get_u8(buf + kOffMetaProfile);
  sb.compat_flags = get_le64(buf + kOffCompat);
  sb.compat_ro_flags = get_le64(buf + kOffCompatRo);
  sb.incompat_flags = get_le64(buf + kOffIncompat);
  sb.next_chunk_logical = get_le64(buf + kOffNextChunk);
  const char* lab = reinterpret_cast<const char*>(buf + kOffLabel);
  sb.label.assign(lab, strnlen(lab, kLabelSize - 1));

  if (sb.bytenr != at) return Status::Corruption(where + ": records its own offset as " + hex(sb.bytenr));
  if (sb.format_version != kFormatVersion)
    return Status::Corruption(where + ": format version " + std::to_string(sb.format_version) + " is not supported");
  if (sb.incompat_flags & ~kSupportedIncompat)
    return Status::Error(EOPNOTSUPP, where + ": unsupported incompatible features " + hex(sb.incompat_flags));
  if (sb.sector_size != kSectorSize) return Status::Corruption(where + ": sector size " + std::to_string(sb.sector_size));
  if (sb.node_size < kMinNodeSize || sb.node_size > kMaxNodeSize || (sb.node_size & (sb.node_size - 1)))
    return Status::Corruption(where + ": bad node size " + std::to_string(sb.node_size));
  if (sb.root_level >= kMaxLevel) return Status::Corruption(where + ": root level " + std::to_string(sb.root_level));
  if (sb.data_profile > kProfileDup || sb.metadata_profile > kProfileDup)
    return Status::Corruption(where + ": unknown block group profile");
  if (sb.generation == 0 || sb.root_generation == 0)
    return Status::Corruption(where + ": generation 0 (every commit has a generation of at least 1)");
  if (sb.root_generation > sb.generation)
    return Status::Corruption(where + ": root generation newer than the superblock");
  if (sb.bytes_used > sb.total_bytes) return Status::Corruption(where + ": bytes used exceed the device size");
  uint32_t n = get_le32(buf + kOffNumChunks);
  if (n == 0 || n > kMaxChunks) return Status::Corruption(where + ": chunk count " + std::to_string(n));
  const bool tree = sb.has_chunk_tree();
  for (uint32_t i = 0; i < n; i++) {
    Chunk c = Chunk::decode(buf + kOffChunks + i * Chunk::kDiskSize);
    const std::string cw = where + ": chunk " + std::to_string(i);
    Status st = validate_chunk(c, sb.total_bytes, sb.node_size, sb.next_chunk_logical);
    if (!st.ok()) return Status::Corruption(cw + ": " + st.message());
    // With a chunk tree the array is its bootstrap: system chunks only.
    if (tree != (c.type == kChunkSystem))
      return Status::Corruption(cw + ": a " + chunk_type_name(c.type) + " chunk in the superblock's array");
    if (!sb.chunks.empty() && c.logical <= sb.chunks.back().logical)
      return Status::Corruption(cw + ": not in logical order");
    sb.chunks.push_back(c);
  }
  if (Status st = validate_chunk_set(sb.chunks, sb.total_bytes); !st.ok())
    return Status::Corruption(where + ": " + st.message());
  if (tree) {
    if (sb.chunk_root_level >= kMaxLevel)
      return Status::Corruption(where + ": chunk root level " + std::to_string(sb.chunk_root_level));
    if (sb.chunk_root_generation == 0 || sb.chunk_root_generation > sb.generation)
      return Status::Corruption(where + ": chunk root generation " + std::to_string(sb.chunk_root_generation));
    bool in_system = false;
    for (const Chunk& c : sb.chunks) in_system |= c.contains(sb.chunk_root, sb.node_size);
    if (!in_system || sb.chunk_root % sb.node_size)
      return Status::Corruption(where + ": chunk root " + hex(sb.chunk_root) + " is not in a system chunk");
  } else {
    if (sb.chunk_root || sb.chunk_root_generation || sb.chunk_root_level)
      return Status::Corruption(where + ": a chunk root without the chunk tree feature");
    if (Status st = sb.check_chunk_map(sb.chunks); !st.ok()) return Status::Corruption(where + ": " + st.message());
  }
  return sb;
}

Status Superblock::check_chunk_map(const std::vector<Chunk>& all) const {
  RETURN_IF_ERROR(validate_chunk_set(all, total_bytes));
  // Chunks are handed out in logical order, each followed by a 1 MiB gap,
  // and the last one is never given back: the next address follows it.
  uint64_t logical_end = 0;
  for (const Chunk& c : all) logical_end = std::max(logical_end, c.logical + c.length);
  if (next_chunk_logical > logical_end + (1ULL << 20) || next_chunk_logical < logical_end)
    return Status::Corruption("next chunk address " + hex(next_chunk_logical) + " does not follow the last chunk");
  if (has_chunk_tree()) {
    // The array is exactly the system chunks of the map.
    std::vector<Chunk> system;
    for (const Chunk& c : all)
      if (c.type == kChunkSystem) system.push_back(c);
    if (system != chunks) return Status::Corruption("the superblock's system chunks differ from the chunk tree's");
  }
  bool root_ok = false;
  for (const Chunk& c : all)
    if (c.type == kChunkMetadata && c.contains(root, node_size) && root % node_size == 0) root_ok = true;
  if (!root_ok) return Status::Corruption("root " + hex(root) + " is not in a metadata chunk");
  return Status::Ok();
}

}  // namespace cairn

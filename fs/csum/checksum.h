#pragma once
// Checksum algorithms (docs/format.md, "Checksums").
//
// One interface for the four algorithms a filesystem can be made with:
// crc32c (Intel ISA-L, the default), xxhash64 (libxxhash), sha256 (OpenSSL
// EVP) and blake2b-256 (libb2). Checksums are stored in a 32-byte field,
// zero padded; the first csum_size() bytes are significant. Integer
// checksums are stored little-endian.
//
// Thread-safety: all functions are pure and may run on any thread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cairn {

enum class CsumType : uint16_t {
  kCrc32c = 0,
  kXxhash64 = 1,
  kSha256 = 2,
  kBlake2b = 3,
};

constexpr size_t kMaxCsumSize = 32;

// Bytes of a checksum of this type (4, 8, 32, 32); 0 for an unknown type.
size_t csum_size(CsumType type);
bool csum_type_valid(uint16_t raw);
std::string_view csum_name(CsumType type);
std::optional<CsumType> csum_from_name(std::string_view name);

// Checksum of one buffer. `out` receives kMaxCsumSize bytes (zero padded).
void csum_compute(CsumType type, const void* data, size_t len, uint8_t out[kMaxCsumSize]);

// Checksums of `len / sector` consecutive sectors, packed csum_size() apart
// in `out` (the layout of a checksum item, docs/format.md "EXTENT_CSUM").
void csum_sectors(CsumType type, const void* data, size_t len, size_t sector, uint8_t* out);

// True when the checksum of `data` equals the first csum_size() bytes of `expected`.
bool csum_verify(CsumType type, const void* data, size_t len, const uint8_t* expected);

}  // namespace cairn

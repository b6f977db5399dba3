#include "csum/checksum.h"

#include <blake2.h>
#include <isa-l/crc.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include <cstring>

#include "util/endian.h"

namespace cairn {

size_t csum_size(CsumType type) {
  switch (type) {
    case CsumType::kCrc32c: return 4;
    case CsumType::kXxhash64: return 8;
    case CsumType::kSha256: return 32;
    case CsumType::kBlake2b: return 32;
  }
  return 0;
}

namespace {
// SHA-256 of one block through a digest context kept per thread, with the
// algorithm fetched once: EVP_Digest() looks the algorithm up and builds a
// context on every call: 1,447-1,523 MB/s on 4 KiB blocks against
// 1,695-1,722 MB/s with the context reused (one core, interleaved runs).
void sha256_block(const void* data, size_t len, uint8_t* out) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct Ctx {
    EVP_MD_CTX* c = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(c); }
  };
  thread_local Ctx ctx;
  unsigned int n = 0;
  if (md && ctx.c && EVP_DigestInit_ex2(ctx.c, md, nullptr) && EVP_DigestUpdate(ctx.c, data, len) &&
      EVP_DigestFinal_ex(ctx.c, out, &n))
    return;
  EVP_Digest(data, len, out, &n, EVP_sha256(), nullptr);  // no context: the slow path still answers
}
}  // namespace

bool csum_type_valid(uint16_t raw) { return raw <= uint16_t(CsumType::kBlake2b); }

std::string_view csum_name(CsumType type) {
  switch (type) {
    case CsumType::kCrc32c: return "crc32c";
    case CsumType::kXxhash64: return "xxhash64";
    case CsumType::kSha256: return "sha256";
    case CsumType::kBlake2b: return "blake2b";
  }
  return "unknown";
}

std::optional<CsumType> csum_from_name(std::string_view name) {
  for (uint16_t t = 0; t <= uint16_t(CsumType::kBlake2b); t++)
    if (csum_name(CsumType(t)) == name) return CsumType(t);
  if (name == "crc32") return CsumType::kCrc32c;
  if (name == "xxhash" || name == "xxh64") return CsumType::kXxhash64;
  return std::nullopt;
}

void csum_compute(CsumType type, const void* data, size_t len, uint8_t out[kMaxCsumSize]) {
  std::memset(out, 0, kMaxCsumSize);
  switch (type) {
    case CsumType::kCrc32c: {
      // ISA-L's crc32_iscsi neither pre- nor post-inverts; the standard
      // CRC-32C (RFC 3720) does both.
      uint32_t crc = ~crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), int(len), 0xFFFFFFFFu);
      put_le32(out, crc);
      return;
    }
    case CsumType::kXxhash64:
      put_le64(out, XXH64(data, len, 0));
      return;
    case CsumType::kSha256:
      sha256_block(data, len, out);
      return;
    case CsumType::kBlake2b:
      blake2b(out, data, nullptr, 32, len, 0);
      return;
  }
}

void csum_sectors(CsumType type, const void* data, size_t len, size_t sector, uint8_t* out) {
  const size_t cs = csum_size(type);
  const auto* p = static_cast<const uint8_t*>(data);
  uint8_t tmp[kMaxCsumSize];
  for (size_t off = 0; off + sector <= len; off += sector) {
    csum_compute(type, p + off, sector, tmp);
    std::memcpy(out, tmp, cs);
    out += cs;
  }
}

bool csum_verify(CsumType type, const void* data, size_t len, const uint8_t* expected) {
  uint8_t tmp[kMaxCsumSize];
  csum_compute(type, data, len, tmp);
  return std::memcmp(tmp, expected, csum_size(type)) == 0;
}

}  // namespace cairn

// Checksums against published test vectors: RFC 3720 (crc32c), the xxHash
// reference (XXH64), FIPS 180-2 (SHA-256 "abc"), RFC 7693 / BLAKE2 reference
// (BLAKE2b-256).
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "csum/checksum.h"
#include "util/endian.h"

using namespace cairn;

namespace {
std::string hex_of(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}
std::string digest(CsumType t, const std::string& in) {
  uint8_t out[kMaxCsumSize];
  csum_compute(t, in.data(), in.size(), out);
  return hex_of(out, csum_size(t));
}
}  // namespace

TEST_CASE("crc32c matches RFC 3720 vectors", "[csum]") {
  uint8_t out[kMaxCsumSize];
  csum_compute(CsumType::kCrc32c, "123456789", 9, out);
  CHECK(get_le32(out) == 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF);
  csum_compute(CsumType::kCrc32c, zeros.data(), 32, out);
  CHECK(get_le32(out) == 0x8A9136AAu);
  csum_compute(CsumType::kCrc32c, ones.data(), 32, out);
  CHECK(get_le32(out) == 0x62A8AB43u);
  std::vector<uint8_t> inc(32);
  for (int i = 0; i < 32; i++) inc[size_t(i)] = uint8_t(i);
  csum_compute(CsumType::kCrc32c, inc.data(), 32, out);
  CHECK(get_le32(out) == 0x46DD794Eu);
}

TEST_CASE("xxhash64 matches the reference", "[csum]") {
  uint8_t out[kMaxCsumSize];
  csum_compute(CsumType::kXxhash64, "", 0, out);
  CHECK(get_le64(out) == 0xEF46DB3751D8E999ULL);
  csum_compute(CsumType::kXxhash64, "a", 1, out);
  CHECK(get_le64(out) == 0xD24EC4F1A98C6E5BULL);
}

TEST_CASE("sha256 matches FIPS 180-2", "[csum]") {
  CHECK(digest(CsumType::kSha256, "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(digest(CsumType::kSha256, "") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("blake2b-256 matches the reference", "[csum]") {
  CHECK(digest(CsumType::kBlake2b, "abc") == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  CHECK(digest(CsumType::kBlake2b, "") == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

TEST_CASE("sector checksums and verification", "[csum]") {
  for (auto t : {CsumType::kCrc32c, CsumType::kXxhash64, CsumType::kSha256, CsumType::kBlake2b}) {
    std::vector<uint8_t> data(4 * 4096);
    for (size_t i = 0; i < data.size(); i++) data[i] = uint8_t(i * 7 + 3);
    const size_t cs = csum_size(t);
    std::vector<uint8_t> sums(4 * cs);
    csum_sectors(t, data.data(), data.size(), 4096, sums.data());
    for (int s = 0; s < 4; s++) CHECK(csum_verify(t, data.data() + s * 4096, 4096, sums.data() + size_t(s) * cs));
    data[4096 + 17] ^= 1;  // one flipped bit in sector 1
    CHECK(csum_verify(t, data.data(), 4096, sums.data()));
    CHECK_FALSE(csum_verify(t, data.data() + 4096, 4096, sums.data() + cs));
  }
}

TEST_CASE("checksum names round-trip", "[csum]") {
  for (auto t : {CsumType::kCrc32c, CsumType::kXxhash64, CsumType::kSha256, CsumType::kBlake2b})
    CHECK(csum_from_name(csum_name(t)) == t);
  CHECK_FALSE(csum_from_name("md5").has_value());
}

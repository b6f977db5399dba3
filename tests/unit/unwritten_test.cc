// Writes into preallocated (unwritten) space, against a model of the
// file's bytes and of which blocks hold disk space: fallocate, writes,
// punched holes, truncates and remounts in random order. A write into
// space only this file range references uses it in place, so after every
// fsync the file's allocation (nbytes) is exactly the model's blocks; the
// bytes always match; fsck is clean at the end (reference counts, the
// checksums of the written pieces, and no checksum over unwritten space).
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "test_helpers.h"
#include "vfs/filesystem.h"

using namespace cairn;
using cairn::test::TempImage;
using cairn::test::check_clean;
using cairn::test::pattern;

namespace {
constexpr uint64_t kB = 4096;

struct Model {
  std::vector<char> bytes;
  std::set<uint64_t> allocated;  // block numbers with disk space (written or preallocated)

  void write(uint64_t at, const std::vector<char>& d) {
    if (bytes.size() < at + d.size()) bytes.resize(at + d.size(), 0);
    std::copy(d.begin(), d.end(), bytes.begin() + long(at));
    for (uint64_t b = at / kB; b <= (at + d.size() - 1) / kB; b++) allocated.insert(b);
  }
  void preallocate(uint64_t at, uint64_t len, bool keep_size) {
    for (uint64_t b = at / kB; b <= (at + len - 1) / kB; b++) allocated.insert(b);
    if (!keep_size && bytes.size() < at + len) bytes.resize(at + len, 0);
  }
  void punch(uint64_t at, uint64_t len) {
    const uint64_t end = std::min<uint64_t>(at + len, (bytes.size() + kB - 1) / kB * kB);
    if (at >= end) return;
    std::fill(bytes.begin() + long(std::min<uint64_t>(at, bytes.size())),
              bytes.begin() + long(std::min<uint64_t>(end, bytes.size())), 0);
    // Whole blocks inside lose their space; partial ones keep it.
    for (uint64_t b = (at + kB - 1) / kB; (b + 1) * kB <= end; b++) allocated.erase(b);
  }
  void truncate(uint64_t size) {
    if (size < bytes.size())
      for (auto it = allocated.lower_bound((size + kB - 1) / kB); it != allocated.end();) it = allocated.erase(it);
    bytes.resize(size, 0);
  }
};

void expect_model(Filesystem& fs, uint64_t ino, const Model& m) {
  std::vector<char> out(m.bytes.size() + 1);
  auto r = fs.read(ino, 0, out.size(), out.data());
  REQUIRE(r.ok());
  REQUIRE(r.value() == m.bytes.size());
  if (!m.bytes.empty()) REQUIRE(std::memcmp(out.data(), m.bytes.data(), m.bytes.size()) == 0);
}
}  // namespace

TEST_CASE("Writes into preallocated space use it: allocation and bytes match a model", "[unwritten]") {
  for (uint32_t seed : {11u, 12u, 13u}) {
    DYNAMIC_SECTION("seed " << seed) {
      std::mt19937 rng(seed);
      TempImage img(256ULL << 20);
      auto fs = img.mount();
      auto ent = fs->mknod(kFirstInode, "f", S_IFREG | 0644, 0, Caller{});
      REQUIRE(ent.ok());
      const uint64_t ino = ent->ino;
      Model m;
      for (int step = 0; step < 120; step++) {
        const unsigned op = rng() % 12;
        const uint64_t span = std::max<uint64_t>(m.bytes.size(), 1u << 20);
        if (op < 3) {
          const uint64_t at = rng() % span, len = 1 + rng() % (512u << 10);
          const bool keep = rng() % 2;
          REQUIRE(fs->fallocate(ino, keep ? FALLOC_FL_KEEP_SIZE : 0, at, len).ok());
          m.preallocate(at, len, keep);
        } else if (op < 8) {
          // Small and large writes, many of them inside preallocated space.
          const uint64_t at = rng() % span;
          auto d = pattern(rng() % 3 ? 1 + rng() % 9000 : 1 + rng() % (700u << 10), seed * 1000 + unsigned(step));
          REQUIRE(fs->write(ino, at, d.data(), d.size()).ok());
          m.write(at, d);
        } else if (op == 8 && !m.bytes.empty()) {
          const uint64_t at = rng() % m.bytes.size(), len = 1 + rng() % (300u << 10);
          REQUIRE(fs->fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, len).ok());
          m.punch(at, len);
        } else if (op == 9) {
          const uint64_t size = rng() % (m.bytes.size() + (256u << 10));
          SetAttr sa;
          sa.size = true;
          sa.new_size = size;
          REQUIRE(fs->setattr(ino, sa).ok());
          m.truncate(size);
        } else if (op == 10) {
          REQUIRE(fs->unmount().ok());
          fs.reset();
          check_clean(img.path);
          fs = img.mount();
        }
        // Every page on disk: the allocation is the model's, to the block.
        REQUIRE(fs->fsync(ino, false).ok());
        auto a = fs->getattr(ino);
        REQUIRE(a.ok());
        REQUIRE(a->nbytes == m.allocated.size() * kB);
        if (step % 10 == 0) expect_model(*fs, ino, m);
      }
      expect_model(*fs, ino, m);
      REQUIRE(fs->unmount().ok());
      fs.reset();
      check_clean(img.path);
    }
  }
}

namespace {
uint64_t data_available(Filesystem& fs) {
  std::lock_guard lk(fs.engine().mutex());
  return fs.engine().allocator().data_available();
}
}  // namespace

TEST_CASE("A write inside preallocated space allocates nothing and st_blocks stays", "[unwritten]") {
  TempImage img(256ULL << 20);
  auto fs = img.mount();
  const uint64_t ino = cairn::test::new_file(*fs, "f", {});
  REQUIRE(fs->fallocate(ino, 0, 0, 8192).ok());
  REQUIRE(fs->fallocate(ino, FALLOC_FL_KEEP_SIZE, 65536, 1 << 20).ok());
  REQUIRE(fs->fsync(ino, false).ok());
  const uint64_t before = data_available(*fs);

  // Two bytes across no block boundary, then whole blocks here and there.
  REQUIRE(fs->write(ino, 3000, "ab", 2).ok());
  auto a = fs->getattr(ino);
  REQUIRE(a.ok());
  CHECK(a->nbytes <= 8192 + (1 << 20));  // dirty pages over preallocated space are counted already
  const auto block = pattern(4096, 7);
  for (uint64_t b : {16u, 20u, 31u, 200u})
    REQUIRE(fs->write(ino, 65536 + b * 4096, block.data(), block.size()).ok());
  REQUIRE(fs->fsync(ino, false).ok());
  a = fs->getattr(ino);
  REQUIRE(a.ok());
  CHECK(a->nbytes == 8192 + (1 << 20));
  CHECK(data_available(*fs) == before);

  // The bytes, and zeros around them, also after a remount.
  for (int round = 0; round < 2; round++) {
    std::vector<char> out(4096);
    REQUIRE(fs->read(ino, 0, 4096, out.data()).ok());
    CHECK(out[2999] == 0);
    CHECK(out[3000] == 'a');
    CHECK(out[3001] == 'b');
    CHECK(out[3002] == 0);
    REQUIRE(fs->read(ino, 65536 + 20 * 4096, 4096, out.data()).ok());
    CHECK(std::memcmp(out.data(), block.data(), 4096) == 0);
    REQUIRE(fs->read(ino, 65536 + 21 * 4096, 4096, out.data()).ok());
    CHECK(std::all_of(out.begin(), out.end(), [](char c) { return c == 0; }));
    REQUIRE(fs->unmount().ok());
    fs.reset();
    check_clean(img.path);
    fs = img.mount();
  }
  REQUIRE(fs->unmount().ok());
}

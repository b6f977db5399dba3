// The read path against a model: any offset and length, over holes,
// preallocated ranges, pages still dirty in the cache, extents on disk, and
// the end of the file, gives the model's bytes, through both read() (a copy)
// and read_span() (whole blocks placed in the caller's buffer, sent from
// off % 4096).
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <vector>

#include "test_helpers.h"
#include "util/aligned_buffer.h"
#include "vfs/filesystem.h"

using namespace cairn;
using cairn::test::TempImage;
using cairn::test::check_clean;
using cairn::test::pattern;

namespace {

// Compare both read APIs with the model at [off, off + len).
void expect_reads(Filesystem& fs, uint64_t ino, const std::vector<char>& model, uint64_t off, size_t len) {
  const size_t want = off >= model.size() ? 0 : std::min<size_t>(len, model.size() - off);
  std::vector<char> out(len + 1, '\x5a');
  auto r = fs.read(ino, off, len, out.data());
  REQUIRE(r.ok());
  REQUIRE(r.value() == want);
  if (want) CHECK(std::memcmp(out.data(), model.data() + off, want) == 0);
  CHECK(out[want] == '\x5a');  // nothing written past what was returned

  AlignedBuffer span;
  auto s = fs.read_span(ino, off, len, span);
  REQUIRE(s.ok());
  REQUIRE(s.value() == want);
  if (want) {
    REQUIRE(span.size() >= off % 4096 + want);
    CHECK(std::memcmp(span.data() + off % 4096, model.data() + off, want) == 0);
  }
}

}  // namespace

TEST_CASE("Reads at any offset give the model's bytes: holes, cache, disk, end of file", "[read]") {
  for (uint32_t seed : {1u, 2u, 3u}) {
    DYNAMIC_SECTION("seed " << seed) {
      std::mt19937 rng(seed);
      TempImage img(256ULL << 20);
      auto fs = img.mount();
      Caller c;
      auto ent = fs->mknod(kFirstInode, "f", S_IFREG | 0644, 0, c);
      REQUIRE(ent.ok());
      const uint64_t ino = ent->ino;
      std::vector<char> model;
      for (int step = 0; step < 60; step++) {
        const unsigned op = rng() % 10;
        if (op < 5) {
          // A write anywhere up to 2 MiB past the end: holes appear.
          const uint64_t at = rng() % (model.size() + (2u << 20));
          auto data = pattern(1 + rng() % (600u << 10), seed * 1000 + unsigned(step));
          REQUIRE(fs->write(ino, at, data.data(), data.size()).ok());
          if (model.size() < at + data.size()) model.resize(at + data.size(), 0);
          std::copy(data.begin(), data.end(), model.begin() + long(at));
        } else if (op == 5) {
          // Truncate down or up (a tail of zeros).
          const uint64_t size = rng() % (model.size() + (1u << 20));
          SetAttr sa;
          sa.size = true;
          sa.new_size = size;
          REQUIRE(fs->setattr(ino, sa).ok());
          model.resize(size, 0);
        } else if (op == 6 && !model.empty()) {
          // Punch a hole: zeros without changing the size.
          const uint64_t at = rng() % model.size(), len = 1 + rng() % (300u << 10);
          REQUIRE(fs->fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, len).ok());
          std::fill(model.begin() + long(at), model.begin() + long(std::min<uint64_t>(at + len, model.size())), 0);
        } else if (op == 7) {
          // Preallocate past the end, keeping the size: reads stay zeros.
          REQUIRE(fs->fallocate(ino, FALLOC_FL_KEEP_SIZE, model.size(), 1 + rng() % (1u << 20)).ok());
        } else {
          // Extents reach the disk: the next reads mix disk and cache.
          REQUIRE(fs->fsync(ino, false).ok());
        }
        for (int k = 0; k < 6; k++) {
          const uint64_t off = rng() % (model.size() + 8192);
          const size_t len = 1 + rng() % (1u << 20);
          expect_reads(*fs, ino, model, off, len);
        }
        // Block-aligned reads of whole FUSE-sized requests, as readahead sends them.
        const uint64_t aligned = (rng() % (model.size() / 4096 + 1)) * 4096;
        expect_reads(*fs, ino, model, aligned, 1u << 20);
      }
      REQUIRE(fs->unmount().ok());
      check_clean(img.path);
    }
  }
}

namespace {
// The physical addresses of the copies of the disk extent behind `ino`'s
// first byte.
std::vector<uint64_t> physical_copies(Filesystem& fs, uint64_t ino) {
  Engine& e = fs.engine();
  std::lock_guard lk(e.mutex());
  BTree tree = e.tree(kFsTreeId);  // the cursor refers to it
  Cursor c = tree.cursor();
  REQUIRE(c.seek(Key{ino, kExtentData, 0}).ok());
  REQUIRE(c.valid());
  REQUIRE(c.key().objectid == ino);
  auto fe = FileExtent::decode(c.data());
  REQUIRE(fe.ok());
  auto m = e.chunk_map().map(fe->disk_bytenr + fe->offset, 4096);
  REQUIRE(m.ok());
  return m.value();
}
}  // namespace

// A read whose extent is freed and reused before it reaches the disk maps
// again: no EIO, no error counted, and no "repair" of the new owner's bytes
// with the old ones (DUP: the other copy still holds them).
TEST_CASE("A read maps again when its extent is reused mid-read", "[read]") {
  for (bool dup : {false, true}) {
    DYNAMIC_SECTION((dup ? "DUP" : "single") << " data") {
      MkfsParams mp;
      mp.data_profile = dup ? kProfileDup : kProfileSingle;
      TempImage img(128ULL << 20, mp);
      auto fs = img.mount();
      Caller c;
      auto a = fs->mknod(kFirstInode, "a", S_IFREG | 0644, 0, c);
      REQUIRE(a.ok());
      const auto old_a = pattern(1u << 20, 1), new_a = pattern(1u << 20, 2), other = pattern(4096, 3);
      REQUIRE(fs->write(a->ino, 0, old_a.data(), old_a.size()).ok());
      REQUIRE(fs->fsync(a->ino, false).ok());
      const auto copies = physical_copies(*fs, a->ino);
      // Between mapping a's extent and reading it: a is rewritten (the old
      // extent is freed at the commit) and the freed block gets a new owner's
      // bytes, as another file's writeback would write them.
      int rounds = 0;
      fs->data().set_read_hook_for_tests([&] {
        if (rounds++ > 0) return;
        REQUIRE(fs->write(a->ino, 0, new_a.data(), new_a.size()).ok());
        REQUIRE(fs->fsync(a->ino, false).ok());
        REQUIRE(fs->engine().device().write(copies[0], other.data(), other.size()).ok());
      });
      std::vector<char> got(1u << 20);
      auto r = fs->read(a->ino, 0, got.size(), got.data());
      fs->data().set_read_hook_for_tests(nullptr);
      REQUIRE(r.ok());
      INFO("first block is the new owner's: " << std::equal(got.begin(), got.begin() + 4096, other.begin()));
      CHECK(rounds == 2);  // the first round found its extent gone and mapped again
      CHECK(std::equal(got.begin(), got.end(), new_a.begin(), new_a.end()));
      const auto& st = fs->data().stats();
      CHECK(st.csum_errors.load() == 0);
      CHECK(st.uncorrectable.load() == 0);
      CHECK(st.corrected.load() == 0);
      // The new owner's bytes are still there.
      std::vector<char> block(4096);
      REQUIRE(fs->engine().device().read(copies[0], block.data(), block.size()).ok());
      CHECK(std::equal(block.begin(), block.end(), other.begin(), other.end()));
      REQUIRE(fs->unmount().ok());
      fs.reset();
      check_clean(img.path);
    }
  }
}

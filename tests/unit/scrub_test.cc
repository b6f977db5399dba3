// Scrub against a model: files written through the filesystem, random data
// sectors and tree nodes damaged in the unmounted image (either copy), then
// the scrub must find exactly the damage injected — no more, no less —
// repair all of it when a second copy exists, and otherwise name the files
// and ranges, which then read as EIO while every other byte reads right.
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>

#include "format/constants.h"
#include "io/io_engine.h"
#include "scrub/scrubber.h"
#include "test_helpers.h"
#include "vfs/filesystem.h"

using namespace cairn;
using cairn::test::TempImage;

namespace {

using Damage = std::set<std::pair<uint64_t, int>>;  // (logical sector, copy)

// Flip one byte of `len` bytes at physical `phys`.
void flip(BlockDevice& dev, uint64_t phys, uint64_t len, std::mt19937& rng) {
  std::vector<uint8_t> b(len);
  REQUIRE(dev.read(phys, b.data(), len).ok());
  b[rng() % len] ^= uint8_t(1 + rng() % 255);
  REQUIRE(dev.write(phys, b.data(), len).ok());
}

struct Scrubbed {
  ScrubProgress progress;
  std::vector<ScrubError> errors;
};

Scrubbed scrub(TempImage& img, bool read_only = false) {
  auto e = cairn::test::open_engine(img.open_device(read_only), read_only);
  auto io = IoEngine::open(img.path, read_only, IoEngineOptions{});
  REQUIRE(io.ok());
  Scrubber s(*e, *io.value(), ScrubOptions{});
  REQUIRE(s.run_all().ok());
  std::lock_guard lk(e->mutex());
  REQUIRE(e->commit().ok());
  return {s.progress(), s.errors()};
}

}  // namespace

TEST_CASE("Scrub finds exactly the injected damage and repairs it from DUP copies", "[scrub]") {
  for (uint32_t seed = 1; seed <= 4; seed++) {
    const bool dup = seed % 2;
    DYNAMIC_SECTION("seed " << seed << (dup ? " dup" : " single")) {
      std::mt19937 rng(seed);
      MkfsParams mp;
      mp.data_profile = dup ? kProfileDup : kProfileSingle;
      mp.metadata_profile = kProfileDup;  // metadata damage stays repairable: the data checks are the point
      TempImage img(256ULL << 20, mp);
      std::map<std::string, std::vector<char>> model;
      {
        auto fs = img.mount();
        for (int f = 0; f < 12; f++) {
          const std::string name = "f" + std::to_string(f);
          auto data = cairn::test::pattern(4096 + rng() % (3 << 20), seed * 100 + f);
          const uint64_t ino = cairn::test::new_file(*fs, name, data);
          REQUIRE(fs->fsync(ino, false).ok());
          // Overwrite a piece: partly shared extents, freed ones.
          auto patch = cairn::test::pattern(1 + rng() % 50000, seed * 1000 + f);
          const size_t at = rng() % data.size();
          REQUIRE(fs->write(ino, at, patch.data(), patch.size()).ok());
          if (data.size() < at + patch.size()) data.resize(at + patch.size());
          std::copy(patch.begin(), patch.end(), data.begin() + long(at));
          REQUIRE(fs->fsync(ino, false).ok());
          model[name] = std::move(data);
        }
        REQUIRE(fs->unmount().ok());
      }
      // Damage: random checksummed data sectors, either copy; one node copy.
      Damage injected;
      {
        auto dev = img.open_device();
        auto e = cairn::test::open_engine(dev, true);
        std::lock_guard lk(e->mutex());
        std::vector<std::pair<uint64_t, uint64_t>> extents;
        BTree t = e->tree(kExtentTreeId);
        Cursor cur = t.cursor();
        REQUIRE(cur.seek(Key::Min()).ok());
        for (; cur.valid(); cur.advance())
          if (cur.key().type == kExtentItem) extents.emplace_back(cur.key().objectid, cur.key().offset);
        REQUIRE(extents.size() >= 12);
        while (injected.size() < 10) {
          auto [b, len] = extents[rng() % extents.size()];
          const uint64_t sector = b + (rng() % (len / kSectorSize)) * kSectorSize;
          auto copies = e->chunk_map().map(sector, kSectorSize);
          REQUIRE(copies.ok());
          const int copy = int(rng() % copies->size());
          if (!injected.insert({sector, copy}).second) continue;
          // Never both copies of one sector with DUP: that one would be unrecoverable.
          if (dup && injected.count({sector, 1 - copy})) {
            injected.erase({sector, copy});
            continue;
          }
          flip(*dev, (*copies)[size_t(copy)], kSectorSize, rng);
        }
      }
      {
        // A read-only scrub repairs nothing, and a bad copy with a good twin
        // is "repairable", not uncorrectable (cairnctl scrub --readonly
        // printed UNCORRECTABLE for those and then counted 0 uncorrectable).
        Scrubbed ro = scrub(img, true);
        CHECK(ro.progress.data_errors == injected.size());
        CHECK(ro.progress.data_corrected == 0);
        CHECK(ro.progress.data_uncorrectable == (dup ? 0 : injected.size()));
        for (const auto& err : ro.errors) {
          CHECK_FALSE(err.corrected);
          if (!err.metadata) CHECK(err.repairable == dup);
        }
      }
      Scrubbed r = scrub(img);
      Damage found;
      for (const auto& err : r.errors)
        if (!err.metadata) found.insert({err.logical, err.copy});
      CHECK(found == injected);
      CHECK(r.progress.data_errors == injected.size());
      CHECK(r.progress.data_bytes > 0);
      if (dup) {
        CHECK(r.progress.data_corrected == injected.size());
        CHECK(r.progress.data_uncorrectable == 0);
        Scrubbed again = scrub(img);
        CHECK(again.progress.data_errors == 0);
        auto fs = img.mount();
        cairn::test::check_files(*fs, model);
        REQUIRE(fs->unmount().ok());
      } else {
        CHECK(r.progress.data_uncorrectable == injected.size());
        // The named ranges, by file: exactly those read as EIO.
        std::map<std::string, std::set<uint64_t>> named;
        for (const auto& err : r.errors)
          for (const auto& f : err.files) {
            REQUIRE(!f.paths.empty());
            for (uint64_t o = f.offset; o < f.offset + f.length; o += kSectorSize) named[f.paths[0].substr(1)].insert(o / kSectorSize);
          }
        auto fs = img.mount();
        for (auto& [name, want] : model) {
          auto ent = fs->lookup(kFirstInode, name);
          REQUIRE(ent.ok());
          std::set<uint64_t> eio;
          std::vector<char> got(kSectorSize);
          for (uint64_t off = 0; off < want.size(); off += kSectorSize) {
            const size_t n = std::min<size_t>(kSectorSize, want.size() - off);
            auto rd = fs->read(ent->ino, off, n, got.data());
            if (!rd.ok()) {
              eio.insert(off / kSectorSize);
              continue;
            }
            CHECK(std::equal(got.begin(), got.begin() + long(n), want.begin() + long(off)));
          }
          CHECK(eio == named[name]);
        }
        REQUIRE(fs->unmount().ok());
      }
    }
  }
}

TEST_CASE("Scrub verifies the chunk tree's nodes and repairs them from DUP", "[scrub][chunks]") {
  for (uint32_t profile : {kProfileSingle, kProfileDup}) {
    DYNAMIC_SECTION((profile == kProfileDup ? "DUP" : "single") << " metadata") {
      MkfsParams mp;
      mp.metadata_profile = profile;  // system chunks follow the metadata profile
      TempImage img(256ULL << 20, mp);
      {
        auto fs = img.mount();
        cairn::test::new_file(*fs, "f", cairn::test::pattern(100000, 3));
        REQUIRE(fs->unmount().ok());
      }
      uint64_t root = 0;
      std::vector<uint64_t> copies;
      {
        auto e = cairn::test::open_engine(img.open_device(), true);
        std::lock_guard lk(e->mutex());
        root = e->super().chunk_root;
        auto m = e->chunk_map().map(root, e->node_size());
        REQUIRE(m.ok());
        copies = m.value();
      }
      REQUIRE(copies.size() == (profile == kProfileDup ? 2u : 1u));
      {
        std::mt19937 rng(5);
        auto dev = img.open_device();
        flip(*dev, copies.back(), 4096, rng);  // the node's first sector (header, items)
      }
      if (profile == kProfileSingle) {
        // The only copy of the chunk tree's root: nothing past the
        // superblock can be mapped. A clear refusal, and fsck says why.
        auto e = Engine::open(img.open_device(true), EngineOptions{true, 1 << 20});
        REQUIRE_FALSE(e.ok());
        CHECK(e.status().message().find("chunk tree") != std::string::npos);
        auto rep = cairn::test::check_report(img.path);
        CHECK_FALSE(rep.clean());
        bool named = false;
        for (auto& p : rep.problems) named |= p.message.find("chunk tree") != std::string::npos;
        CHECK(named);
        continue;
      }
      Scrubbed r = scrub(img);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].metadata);
      CHECK(r.errors[0].logical == root);
      CHECK(r.errors[0].physical == copies.back());
      CHECK(r.errors[0].corrected);
      CHECK(r.progress.meta_errors == 1);
      CHECK(scrub(img).progress.meta_errors == 0);
      cairn::test::check_clean(img.path);
    }
  }
}

// Space reports and the promise behind df's Avail (docs/design.md, "Space
// reports"): the account's parts add up to the device at every step, and
// every byte data_available() offers can be allocated — for single and DUP
// metadata and data, device-sized and 1 MiB chunks — and through the write
// path, writers that filled the device until ENOSPC lose nothing at
// writeback.
#include <catch2/catch.hpp>
#include <random>
#include <thread>

#include "alloc/space_usage.h"
#include "engine_model.h"
#include "test_helpers.h"

using namespace cairn;
using namespace cairn::test;

namespace {


SpaceUsage usage_of(Engine& e, uint64_t dirty = 0) {
  const Superblock& sb = e.super();
  return space_usage(e.chunk_map(), e.allocator(), sb.data_profile, sb.metadata_profile, dirty);
}

void require_adds_up(const SpaceUsage& u) {
  REQUIRE(u.superblock_reserve + u.device_allocated + u.device_unallocated == u.device_size);
  uint64_t device = 0, used = 0;
  for (const auto& t : u.types) {
    REQUIRE(t.used + t.pinned + t.free() == t.size);
    device += t.size * t.copies();
    used += t.used * t.copies();
  }
  REQUIRE(device == u.device_allocated);
  REQUIRE(used == u.device_used);
  // df: Used and Avail never claim more than the device.
  REQUIRE(u.df_used() + u.df_available() <= u.df_size());
}

}  // namespace

TEST_CASE("Space: every byte data_available offers can be allocated, and the account adds up", "[space]") {
  std::mt19937_64 rng(7);
  for (uint32_t meta : {kProfileSingle, kProfileDup})
    for (uint32_t data : {kProfileSingle, kProfileDup})
      for (uint64_t max_chunk : {uint64_t(0), kMiB}) {
        DYNAMIC_SECTION("metadata " << meta << " data " << data << " max chunk " << max_chunk) {
          MkfsParams p;
          p.node_size = 4096;
          p.metadata_profile = meta;
          p.data_profile = data;
          p.max_chunk_size = max_chunk;
          const uint64_t size = 320 * kMiB;
          auto dev = make_formatted_memory(p, size);
          add_kv_tree(dev, kTestTree);
          EngineOptions eo;
          eo.node_cache_bytes = 8 << 20;
          eo.max_chunk_size = max_chunk;
          auto e = open_engine_with(dev, eo);
          std::unique_lock lk(e->mutex());
          const uint64_t offered_at_start = e->allocator().data_available();
          ExtentModel extents;
          uint64_t taken = 0;
          for (int step = 0;; step++) {
            const SpaceUsage u = usage_of(*e);
            require_adds_up(u);
            const uint64_t avail = e->allocator().data_available() + e->allocator().pinned_data_bytes();
            REQUIRE(u.free_estimate == avail);
            if (avail < 4096) break;
            // Take a random share of what is offered, in pieces as the
            // allocator hands them out; each must succeed (the promise).
            uint64_t want = std::min<uint64_t>(avail, (1 + rng() % 64) * 64 * 1024) / 4096 * 4096;
            while (want) {
              REQUIRE(e->reserve_metadata(8).ok());
              auto ext = e->alloc_data(4096, want);
              // Pinned space is offered too: the write path commits to free it
              // (FileData::alloc_extent_locked), and so does this.
              if (!ext.ok() && e->allocator().pinned_bytes() > 0) {
                REQUIRE(e->commit().ok());
                ext = e->alloc_data(4096, want);
              }
              INFO("step " << step << ": " << want << " of " << avail << " offered bytes");
              REQUIRE(ext.ok());
              REQUIRE(e->add_data_extent(ext->first, ext->second, kTestTree, 1, ext->first).ok());
              extents[ext->first] = ext->second;
              taken += ext->second;
              want -= ext->second;
            }
            if (step % 16 == 15) REQUIRE(e->commit().ok());
            // Now and then give some back: pinned, then free after a commit.
            if (step % 7 == 6 && extents.size() > 4) drop_extent(*e, extents, std::next(extents.begin(), long(rng() % extents.size())));
          }
          REQUIRE(e->commit().ok());
          // What a writer was offered at the start is what it got, less
          // what the metadata the extents themselves need took (their items,
          // every copy).
          const double got = double(taken) / double(offered_at_start);
          INFO("taken " << taken << " of " << offered_at_start << " offered at the start");
          CHECK(got >= 0.97);
          require_adds_up(usage_of(*e));
          lk.unlock();
          e.reset();
          require_clean(*dev);
        }
      }
}

// Six writers of 1 MiB blocks until ENOSPC, then fsync: every fsync
// succeeds, no more than statfs offered was taken, and every byte reads back
// after a remount. With `fragment`, the free space is first cut into 64 KiB
// holes, so nearly every ordered extent is split (split_tail) while the
// others are reserving.
static void fill_with_writers(bool fragment) {
  // DUP metadata (mkfs's default) and 16 MiB chunks, the case where df
  // offered 12 MiB that no chunk could take, and where a split ordered
  // extent let a writer take space promised to another.
  MkfsParams p;
  p.metadata_profile = kProfileDup;
  TempImage img(256 * kMiB, p);
  auto fs = img.mount();
  if (fragment) {
    const uint64_t a = new_file(*fs, "frag-a", {}), b = new_file(*fs, "frag-b", {});
    std::vector<char> piece = pattern(64 * 1024, 99);
    for (uint64_t k = 0; k < 512; k++)
      for (uint64_t ino : {a, b}) {
        REQUIRE(fs->write(ino, k * piece.size(), piece.data(), piece.size()).ok());
        REQUIRE(fs->fsync(ino, true).ok());
      }
    REQUIRE(fs->unlink(fs->root_ino(), "frag-b").ok());
    fs->forget(b, 1);
    REQUIRE(fs->sync().ok());
    REQUIRE(fs->sync().ok());  // the freed extents unpinned
  }
  const uint64_t offered = fs->statfs().avail_bytes;
  constexpr int kWriters = 6;
  std::vector<uint64_t> inos, written(kWriters, 0);
  for (int i = 0; i < kWriters; i++) inos.push_back(new_file(*fs, "w" + std::to_string(i), {}));
  std::vector<std::thread> threads;
  std::vector<int> fsync_err(kWriters, 0);
  for (int i = 0; i < kWriters; i++)
    threads.emplace_back([&, i] {
      std::vector<char> block = pattern(kMiB, uint32_t(i));
      for (;;) {
        auto r = fs->write(inos[size_t(i)], written[size_t(i)], block.data(), block.size());
        if (!r.ok()) break;
        written[size_t(i)] += r.value();
      }
      Status st = fs->fsync(inos[size_t(i)], false);
      fsync_err[size_t(i)] = st.ok() ? 0 : st.code();
    });
  for (auto& t : threads) t.join();
  uint64_t total = 0;
  for (int i = 0; i < kWriters; i++) {
    INFO("writer " << i);
    CHECK(fsync_err[size_t(i)] == 0);
    total += written[size_t(i)];
  }
  INFO("written " << total << " of " << offered << " offered");
  CHECK(total <= offered);
  CHECK(double(total) >= 0.97 * double(offered));
  // Every byte write() took reads back after a remount.
  REQUIRE(fs->unmount().ok());
  fs.reset();
  auto again = img.mount();
  for (int i = 0; i < kWriters; i++) {
    std::vector<char> block = pattern(kMiB, uint32_t(i)), got(kMiB);
    for (uint64_t off = 0; off < written[size_t(i)]; off += kMiB) {
      auto r = again->read(inos[size_t(i)], off, kMiB, got.data());
      REQUIRE(r.ok());
      const size_t n = size_t(std::min<uint64_t>(kMiB, written[size_t(i)] - off));
      REQUIRE(r.value() == n);
      REQUIRE(std::equal(got.begin(), got.begin() + long(n), block.begin()));
    }
  }
  REQUIRE(again->unmount().ok());
  again.reset();
  check_clean(img.path);
}

TEST_CASE("Space: writers filling the device to ENOSPC lose nothing at writeback", "[space]") {
  SECTION("free space in one piece") { fill_with_writers(false); }
  SECTION("free space in 64 KiB holes") { fill_with_writers(true); }
}

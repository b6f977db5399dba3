// The free-space cache (docs/design.md, "Space"; docs/format.md, "Free
// space cache"): a clean close saves the allocator's map, the next open
// loads it, and what it loads is exactly what a scan of the extent tree
// gives; a crash at any flush point, a stale cache, or a cache that lies
// (valid checksums, wrong ranges) never hands out space in use.
#include <catch2/catch.hpp>
#include <functional>
#include <set>
#include <random>

#include "alloc/space_cache.h"
#include "check/checker.h"
#include "check/repair.h"
#include "engine_model.h"
#include "test_helpers.h"

using namespace cairn;
using namespace cairn::test;

namespace {

std::unique_ptr<Engine> open_with(std::shared_ptr<BlockDevice> dev, bool space_cache, bool read_only = false) {
  EngineOptions eo;
  eo.read_only = read_only;
  eo.node_cache_bytes = 8 << 20;
  eo.max_chunk_size = 4 * kMiB;
  eo.space_cache = space_cache;
  return open_engine_with(std::move(dev), eo);
}

struct FreeView {
  FreeRanges ranges;
  uint64_t data = 0, meta = 0, system = 0;
  bool operator==(const FreeView&) const = default;
};

// The free space once the next commit is durable: the cache's own blocks
// (in use until then; a scan never sees them) counted as free.
FreeView free_view(Engine& e) {
  std::lock_guard lk(e.mutex());
  FreeView v{e.allocator().free_after_commit(), e.allocator().free_in_chunks(kChunkData),
             e.allocator().free_in_chunks(kChunkMetadata), e.allocator().free_in_chunks(kChunkSystem)};
  for (uint64_t b : e.space_cache_blocks()) {
    v.ranges.emplace_back(b, e.node_size());
    v.meta += e.node_size();
  }
  std::sort(v.ranges.begin(), v.ranges.end());
  FreeRanges merged;
  for (auto [s, l] : v.ranges) {
    if (!merged.empty() && merged.back().first + merged.back().second == s) merged.back().second += l;
    else merged.emplace_back(s, l);
  }
  v.ranges = std::move(merged);
  return v;
}

// The map an open from the extent tree gives, for the image as it is.
FreeView scanned(std::shared_ptr<BlockDevice> dev) {
  auto e = open_with(std::move(dev), false, true);
  return free_view(*e);
}

// Small extents, then every other one dropped: free space in many pieces,
// so the cache spans several blocks. Key/value churn moves tree nodes.
void fragment(Engine& e, KvModel& kv, ExtentModel& extents, std::mt19937_64& rng, uint64_t& id, int n) {
  std::lock_guard lk(e.mutex());
  for (int i = 0; i < n; i++) add_extent(e, extents, (1 + rng() % 4) * 4096);
  bool drop = false;
  for (auto it = extents.begin(); it != extents.end();) {
    auto next = std::next(it);
    if ((drop = !drop) && rng() % 4) drop_extent(e, extents, it);
    it = next;
  }
  for (int i = 0; i < n / 4; i++) {
    if (rng() % 3 == 0 && !kv.empty()) {
      auto it = kv.begin();
      std::advance(it, long(rng() % kv.size()));
      REQUIRE(e.tree(kTestTree).remove(it->first).ok());
      kv.erase(it);
    } else {
      add_kv(e, kv, id++, 100 + rng() % 900);
    }
  }
}

std::shared_ptr<MemoryDevice> small_node_image(uint64_t size = 160 * kMiB) {
  MkfsParams p;
  p.node_size = 4096;
  p.max_chunk_size = 4 * kMiB;
  auto dev = make_formatted_memory(p, size);
  add_kv_tree(dev, kTestTree);
  return dev;
}

// A fresh image with free space in pieces and a cache saved by a clean close.
std::shared_ptr<MemoryDevice> image_with_cache(uint64_t seed, int extents) {
  auto dev = small_node_image();
  std::mt19937_64 rng(seed);
  KvModel kv;
  ExtentModel ext;
  uint64_t id = 1;
  auto e = open_with(dev, true);
  fragment(*e, kv, ext, rng, id, extents);
  std::lock_guard lk(e->mutex());
  REQUIRE(e->commit_saving_free_space().ok());
  return dev;
}

uint64_t cache_ranges(BlockDevice& dev) {
  auto rep = check_filesystem(dev);
  REQUIRE(rep.ok());
  return rep->stats.space_cache_ranges;
}

bool has_problem(BlockDevice& dev, const std::string& code) {
  auto rep = check_filesystem(dev);
  REQUIRE(rep.ok());
  for (auto& p : rep->problems)
    if (p.code == code) return true;
  return false;
}

}  // namespace

TEST_CASE("Free-space cache: saved by a clean close, loaded exactly as a scan would build it", "[space_cache]") {
  auto dev = small_node_image();
  std::mt19937_64 rng(3);
  KvModel kv;
  ExtentModel extents;
  uint64_t id = 1;
  uint64_t most_ranges = 0, loads = 0;
  bool saved = false;
  for (int round = 0; round < 12; round++) {
    auto e = open_with(dev, true);
    if (saved) {
      // The map loaded is the one the extent tree gives, to the byte.
      CHECK(e->free_space_source() == "cache");
      REQUIRE(free_view(*e) == scanned(dev));
      loads++;
    } else {
      CHECK(e->free_space_source().rfind("extent tree (no cache saved", 0) == 0);
    }
    {
      std::lock_guard lk(e->mutex());
      REQUIRE(dump_kv(*e) == kv);
      REQUIRE(dump_extents(*e) == extents);
    }
    // Allocations after a load land only in free space: fsck finds no
    // overlap, and every extent of the model is where it was.
    for (int txn = 0; txn < 3; txn++) {
      fragment(*e, kv, extents, rng, id, 400);
      std::lock_guard lk(e->mutex());
      REQUIRE(e->commit().ok());
    }
    // Two closes in three save the cache; the third ends with a plain
    // commit, as a crash after the last commit would.
    saved = round % 3 != 1;
    {
      std::lock_guard lk(e->mutex());
      REQUIRE((saved ? e->commit_saving_free_space() : e->commit()).ok());
    }
    e.reset();
    require_clean(*dev);  // compares a saved cache with the extent tree
    if (saved) most_ranges = std::max(most_ranges, cache_ranges(*dev));
  }
  CHECK(loads == 7);
  // More ranges than one 4 KiB block holds: the chain is exercised.
  CHECK(most_ranges > SpaceCacheBlock::capacity(4096));
}

TEST_CASE("Free-space cache: the first commit after a load frees its blocks, and a second open scans", "[space_cache]") {
  auto dev = image_with_cache(5, 400);
  auto sb = Engine::read_superblock(*dev);
  REQUIRE(sb.ok());
  REQUIRE(sb->space_cache_valid());
  {
    auto e = open_with(dev, true);
    REQUIRE(e->free_space_source() == "cache");
    const FreeView loaded = free_view(*e);
    {
      std::lock_guard lk(e->mutex());
      e->force_commit();
      REQUIRE(e->commit().ok());
    }
    // The cache's blocks came back as free space with that commit (which
    // also gave the new generation its fsync log region).
    CHECK(e->space_cache_blocks().empty());
    const uint64_t log_region = e->super().log_valid() ? Engine::kLogRegionBytes : 0;
    CHECK(free_view(*e).meta + log_region >= loaded.meta);
  }
  sb = Engine::read_superblock(*dev);
  REQUIRE(sb.ok());
  CHECK_FALSE(sb->space_cache_valid());
  CHECK(sb->space_cache == 0);
  auto e = open_with(dev, true, true);
  CHECK(e->free_space_source().rfind("extent tree", 0) == 0);
  CHECK(free_view(*e) == scanned(dev));
  e.reset();
  require_clean(*dev);
}

TEST_CASE("Free-space cache: a crash at every flush point of saving it and of the commit that drops it", "[space_cache][crash]") {
  auto base = small_node_image(kMinDeviceSize + 32 * kMiB);
  auto rec = std::make_shared<RecordingDevice>(base->snapshot());
  struct State {
    KvModel kv;
    ExtentModel extents;
  };
  std::map<uint64_t, State> at_gen;
  std::map<uint64_t, size_t> durable_after;
  std::mt19937_64 rng(13);
  uint64_t id = 1;
  State s;
  auto note = [&](Engine& e) {
    at_gen[e.last_committed()] = s;
    durable_after[e.last_committed()] = rec->ops().size();
  };
  for (int mount = 0; mount < 3; mount++) {
    auto e = open_with(rec, true);
    if (mount == 0) {
      std::lock_guard lk(e->mutex());
      at_gen[e->last_committed()] = s;
      durable_after[e->last_committed()] = 0;
    }
    for (int txn = 0; txn < 3; txn++) {
      fragment(*e, s.kv, s.extents, rng, id, 60);
      std::lock_guard lk(e->mutex());
      REQUIRE(e->commit().ok());
      note(*e);
    }
    fragment(*e, s.kv, s.extents, rng, id, 60);
    std::lock_guard lk(e->mutex());
    REQUIRE(e->commit_saving_free_space().ok());
    note(*e);
  }
  size_t from_cache = 0;
  const size_t images = for_each_crash_image(*rec, durable_after, rng, [&](auto dev, uint64_t durable, const std::string& what) {
    INFO(what);
    require_clean(*dev);
    auto e = open_with(dev, true, true);
    if (e->free_space_source() == "cache") from_cache++;
    REQUIRE(free_view(*e) == scanned(dev));
    std::lock_guard lk(e->mutex());
    const uint64_t gen = e->last_committed();
    REQUIRE(gen >= durable);
    REQUIRE(at_gen.count(gen));
    REQUIRE(dump_kv(*e) == at_gen[gen].kv);
    REQUIRE(dump_extents(*e) == at_gen[gen].extents);
  });
  CHECK(images >= 60);
  CHECK(from_cache >= 3);
}

namespace {

// Rewrite the first cache block (from `index` on) that `change` changes,
// with a valid checksum, in every copy: a lie only a check of the content
// can catch.
void rewrite_block(MemoryDevice& dev, uint32_t index, const std::function<bool(SpaceCacheBlock&)>& change) {
  auto sb = Engine::read_superblock(dev);
  REQUIRE(sb.ok());
  ChunkMap chunks(sb->total_bytes, sb->chunks, sb->next_chunk_logical);
  {
    auto e = open_with(std::shared_ptr<BlockDevice>(&dev, [](BlockDevice*) {}), false, true);
    for (const Chunk& c : e->chunk_map().chunks())
      if (c.type != kChunkSystem) chunks.load(c);
  }
  uint64_t at = sb->space_cache;
  std::vector<uint8_t> buf(sb->node_size);
  for (uint32_t i = 0;; i++) {
    auto copies = chunks.map(at, sb->node_size);
    REQUIRE(copies.ok());
    REQUIRE(dev.read(copies->front(), buf.data(), buf.size()).ok());
    auto b = SpaceCacheBlock::decode(*sb, buf.data(), at);
    REQUIRE(b.ok());
    if (i >= index && change(*b)) {
      b->encode(*sb, buf.data());
      for (uint64_t phys : *copies) REQUIRE(dev.write(phys, buf.data(), buf.size()).ok());
      return;
    }
    REQUIRE(b->next != 0);
    at = b->next;
  }
}

}  // namespace

TEST_CASE("Free-space cache: a damaged or lying cache is never used, and fsck names it", "[space_cache][hostile]") {
  auto good = image_with_cache(17, 2000);
  require_clean(*good);
  REQUIRE(cache_ranges(*good) > SpaceCacheBlock::capacity(4096));
  const FreeView truth = scanned(good);

  struct Lie {
    const char* what;
    const char* message;  // in the reason the open gives
    std::function<void(MemoryDevice&)> make;
  };
  const std::vector<Lie> lies = {
      {"a flipped byte", "checksum mismatch",
       [](MemoryDevice& d) {
         auto sb = Engine::read_superblock(d);
         auto e = open_with(std::shared_ptr<BlockDevice>(&d, [](BlockDevice*) {}), false, true);
         auto copies = e->chunk_map().map(sb->space_cache, sb->node_size);
         for (uint64_t phys : *copies) {
           uint8_t x;
           REQUIRE(d.read(phys + 700, &x, 1).ok());
           x ^= 0x40;
           REQUIRE(d.write(phys + 700, &x, 1).ok());
         }
       }},
      {"two ranges overlapping", "after the last",
       [](MemoryDevice& d) { rewrite_block(d, 0, [](SpaceCacheBlock& b) { b.ranges[1].first = b.ranges[0].first; return true; }); }},
      {"a range outside every chunk", "after the last",
       [](MemoryDevice& d) { rewrite_block(d, 1, [](SpaceCacheBlock& b) { b.ranges.back().second += 1ULL << 40; return true; }); }},
      {"a range cut short (space in use it does not account for)", "bytes in use",
       [](MemoryDevice& d) { rewrite_block(d, 0, [](SpaceCacheBlock& b) { b.ranges[0].second -= 4096; return true; }); }},
      {"a block pointing at itself", "out of place",
       [](MemoryDevice& d) { rewrite_block(d, 1, [](SpaceCacheBlock& b) { b.next = b.bytenr; return true; }); }},
      {"a chain cut short", "ends early", [](MemoryDevice& d) { rewrite_block(d, 1, [](SpaceCacheBlock& b) { b.next = 0; return true; }); }},
      {"its own block called free", "lies in a range",
       [](MemoryDevice& d) {
         // The free range right after one of the cache's blocks grows back
         // over it; another range gives up as much: same count, same total.
         std::set<uint64_t> blocks;
         {
           auto e = open_with(std::shared_ptr<BlockDevice>(&d, [](BlockDevice*) {}), true, true);
           blocks.insert(e->space_cache_blocks().begin(), e->space_cache_blocks().end());
         }
         rewrite_block(d, 0, [&](SpaceCacheBlock& b) {
           for (size_t i = 0; i < b.ranges.size(); i++) {
             if (!blocks.count(b.ranges[i].first - 4096)) continue;
             for (size_t j = 0; j < b.ranges.size(); j++) {
               if (j == i || b.ranges[j].second < 8192) continue;
               b.ranges[i].first -= 4096;
               b.ranges[i].second += 4096;
               b.ranges[j].second -= 4096;
               return true;
             }
           }
           return false;
         });
       }},
  };
  for (const Lie& lie : lies) {
    SECTION(lie.what) {
      auto dev = std::make_shared<MemoryDevice>(good->snapshot());
      lie.make(*dev);
      auto e = open_with(dev, true, true);
      INFO(e->free_space_source());
      CHECK(e->free_space_source().find(lie.message) != std::string::npos);
      CHECK(free_view(*e) == truth);
      e.reset();
      CHECK(has_problem(*dev, "space-cache"));
    }
  }

  SECTION("a plausible lie: space in use called free, as much free space called in use") {
    // Passes every check an open can afford; fsck's comparison with the
    // extent tree finds it, and a repair drops the cache.
    auto dev = std::make_shared<MemoryDevice>(good->snapshot());
    ExtentModel extents;
    {
      auto e = open_with(dev, false, true);
      std::lock_guard lk(e->mutex());
      extents = dump_extents(*e);
    }
    rewrite_block(*dev, 0, [&](SpaceCacheBlock& b) {
      // A free range of 4 KiB moves onto the first 4 KiB of an extent that
      // touches no free range: as many ranges and bytes as before.
      for (auto& r : b.ranges) {
        if (r.second != 4096) continue;
        for (auto& [s, l] : extents) {
          if (s <= b.ranges.front().first || s >= b.ranges.back().first) continue;
          bool touches = false;
          for (auto [fs, fl] : b.ranges) touches |= fs != r.first && s + 4096 >= fs && s <= fs + fl;
          if (touches) continue;
          r.first = s;
          std::sort(b.ranges.begin(), b.ranges.end());
          return true;
        }
      }
      return false;
    });
    auto e = open_with(dev, true, true);
    CHECK(e->free_space_source() == "cache");  // the documented limit of the cheap checks
    e.reset();
    REQUIRE(has_problem(*dev, "space-cache"));
    auto rep = check_filesystem(*dev);
    REQUIRE(rep.ok());
    std::vector<std::string> changes;
    {
      EngineOptions eo;
      eo.space_cache = false;
      auto re = Engine::open(dev, eo);
      REQUIRE(re.ok());
      std::lock_guard lk((*re)->mutex());
      REQUIRE(repair_structures(**re, *rep, &changes).ok());
      REQUIRE((*re)->commit().ok());
    }
    CHECK_FALSE(has_problem(*dev, "space-cache"));
    auto after = open_with(dev, true, true);
    CHECK(after->free_space_source().rfind("extent tree", 0) == 0);
    CHECK(free_view(*after) == scanned(dev));
  }
}

TEST_CASE("Free-space map: a read-only open hands its map to the next open of the same superblock only", "[space_cache]") {
  // The mount's probe (fuse/main.cc) reads the extent tree or the cache
  // once; the mount takes that map over instead of reading it again.
  for (bool with_cache : {false, true}) {
    INFO("image " << (with_cache ? "with" : "without") << " a saved cache");
    auto dev = image_with_cache(11, 300);
    if (!with_cache) {
      auto e = open_with(dev, true);
      std::lock_guard lk(e->mutex());
      e->force_commit();
      REQUIRE(e->commit().ok());  // the cache is stale from here
    }
    auto probe = open_with(dev, true, true);
    const FreeView probed = free_view(*probe);
    auto snap = probe->free_space_snapshot();
    probe.reset();
    if (with_cache) CHECK(snap->source == "cache");
    else CHECK(snap->source.rfind("extent tree", 0) == 0);

    EngineOptions eo;
    eo.node_cache_bytes = 8 << 20;
    eo.max_chunk_size = 4 * kMiB;
    // A snapshot that lies about one range is taken as it is: proof that
    // the open used it rather than reading the tree (an open of another
    // superblock must not).
    auto lying = std::make_shared<FreeSpaceSnapshot>(*snap);
    REQUIRE(lying->free.size() > 2);
    lying->free.erase(lying->free.begin() + 1);
    eo.free_space = lying;
    {
      auto e = open_engine_with(dev, eo);
      CHECK(free_view(*e) != probed);
      CHECK(e->free_space_source() == snap->source);
    }
    // The true snapshot: the map is the probe's, and writes after it land
    // in free space only (fsck finds no overlap).
    eo.free_space = snap;
    {
      auto e = open_engine_with(dev, eo);
      REQUIRE(free_view(*e) == probed);
      std::mt19937_64 rng(12);
      KvModel kv;
      ExtentModel ext;
      uint64_t id = 1000000;
      fragment(*e, kv, ext, rng, id, 200);
      std::lock_guard lk(e->mutex());
      REQUIRE(e->commit().ok());
    }
    require_clean(*dev);
    // That commit made the snapshots another generation's: even the lying
    // one is ignored.
    eo.free_space = lying;
    {
      auto e = open_engine_with(dev, eo);
      CHECK(free_view(*e) == scanned(dev));
    }
    require_clean(*dev);
  }
}

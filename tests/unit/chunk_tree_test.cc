// The chunk tree and chunk reclaim (docs/design.md, "Chunks"): hundreds of
// small chunks (the max_chunk_size test knob) created and given back as
// data and metadata take turns filling the device, checked against a model
// after every reopen, at ENOSPC, and at every flush point of a crash.
#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "check/checker.h"
#include "engine_model.h"
#include "test_helpers.h"

using namespace cairn;
using namespace cairn::test;

namespace {

std::unique_ptr<Engine> open_small_chunks(std::shared_ptr<BlockDevice> dev, uint64_t max_chunk, bool read_only = false) {
  EngineOptions eo;
  eo.read_only = read_only;
  eo.node_cache_bytes = 8 << 20;
  eo.max_chunk_size = max_chunk;
  return open_engine_with(std::move(dev), eo);
}

uint64_t chunk_bytes(Engine& e, uint32_t type) { return e.chunk_map().bytes_of(type); }

// The chunks of the last commit: the chunk tree changes only at commit (the
// map in memory may already have given back chunks emptied by it).
std::vector<Chunk> committed_chunks(Engine& e) {
  std::vector<Chunk> out;
  BTree t = e.tree(kChunkTreeId);
  Cursor c = t.cursor();
  REQUIRE(c.seek(Key::Min()).ok());
  for (; c.valid(); c.advance()) out.push_back(Chunk::decode(c.data().data()));
  REQUIRE(c.status().ok());
  return out;
}

}  // namespace

TEST_CASE("Chunks: data and metadata take turns filling the device, against a model", "[chunks]") {
  MkfsParams p;
  p.node_size = 4096;
  p.max_chunk_size = kMiB;
  auto dev = make_formatted_memory(p, 160 * kMiB);
  add_kv_tree(dev, kTestTree);
  std::mt19937_64 rng(7);
  KvModel kv;
  ExtentModel extents;
  uint64_t next_id = 1;
  size_t most_chunks = 0, reclaimed = 0;
  uint64_t most_data = 0, most_meta = 0;
  auto e = open_small_chunks(dev, kMiB);
  for (int round = 0; round < 48; round++) {
    // Phases of 8 rounds: data grows while metadata shrinks, then the other way.
    const bool data_phase = (round / 8) % 2 == 0;
    {
      std::lock_guard lk(e->mutex());
      for (int i = 0; i < (data_phase ? 200 : 2000); i++) {
        const bool grow = rng() % 4 != 0;
        if (data_phase == grow) {
          if (grow) {
            if (!add_extent(*e, extents, (1 + rng() % 16) * 64 * 1024)) break;
          } else if (!extents.empty()) {
            // Drop in runs, so whole chunks empty out.
            auto it = extents.lower_bound(rng() % (e->chunk_map().next_logical() + 1));
            for (int n = 0; n < 8 && !extents.empty(); n++) {
              if (it == extents.end()) it = extents.begin();
              auto next = std::next(it);
              drop_extent(*e, extents, it);
              it = next;
            }
          }
        } else {
          if (grow) {
            if (!add_kv(*e, kv, next_id++, 1000 + rng() % 2500)) break;
          } else if (!kv.empty()) {
            for (int n = 0; n < 16 && !kv.empty(); n++) {
              auto it = kv.lower_bound(Key{rng() % next_id, 0, 0});
              if (it == kv.end()) it = kv.begin();
              REQUIRE(e->tree(kTestTree).remove(it->first).ok());
              kv.erase(it);
            }
          }
        }
      }
      Status cs = e->commit();
      INFO(cs.message());
      REQUIRE(cs.ok());
      most_chunks = std::max(most_chunks, e->chunk_map().count());
      most_data = std::max(most_data, chunk_bytes(*e, kChunkData));
      most_meta = std::max(most_meta, chunk_bytes(*e, kChunkMetadata));
    }
    if (round % 4 == 3) {
      // Reopen: the chunk tree gives back the same map, every tree the model.
      std::vector<Chunk> before;
      {
        std::lock_guard lk(e->mutex());
        before = committed_chunks(*e);
      }
      reclaimed += e->allocator().chunks_reclaimed();
      e.reset();
      require_clean(*dev);
      e = open_small_chunks(dev, kMiB);
      std::lock_guard lk(e->mutex());
      REQUIRE(e->chunk_map().chunks() == before);
      REQUIRE(dump_kv(*e) == kv);
      REQUIRE(dump_extents(*e) == extents);
    }
  }
  reclaimed += e->allocator().chunks_reclaimed();
  INFO("most chunks " << most_chunks << ", reclaimed " << reclaimed << ", most data " << (most_data >> 20)
                      << " MiB, most metadata " << (most_meta >> 20) << " MiB");
  CHECK(most_chunks >= 100);
  CHECK(reclaimed >= 50);
  // Each type held most of the device at some point: the space moved.
  CHECK(most_data >= 100 * kMiB);
  CHECK(most_meta >= 40 * kMiB);
}

TEST_CASE("Chunks: ENOSPC only when the device is full, and the space goes to the other type after", "[chunks]") {
  for (uint32_t meta : {kProfileSingle, kProfileDup}) {
    DYNAMIC_SECTION((meta == kProfileDup ? "DUP" : "single") << " metadata") {
      MkfsParams p;
      p.node_size = 4096;
      p.metadata_profile = meta;
      p.max_chunk_size = kMiB;
      const uint64_t size = 192 * kMiB;
      auto dev = make_formatted_memory(p, size);
      add_kv_tree(dev, kTestTree);
      auto e = open_small_chunks(dev, kMiB);
      ExtentModel extents;
      KvModel kv;
      std::unique_lock lk(e->mutex());
      for (int n = 0; add_extent(*e, extents, 256 * 1024); n++)
        if (n % 64 == 63) REQUIRE(e->commit().ok());
      REQUIRE(e->commit().ok());
      uint64_t data = 0;
      for (auto& [b, l] : extents) data += l;
      // What never holds data here: the superblock reserves (2 MiB), the
      // system chunk, and the metadata chunks (twice for DUP).
      const double full = double(data) / double(size);
      INFO("data " << (data >> 20) << " MiB of " << (size >> 20) << " MiB; " << e->chunk_map().count() << " chunks");
      CHECK(full >= (meta == kProfileDup ? 0.95 : 0.97));
      WARN((meta == kProfileDup ? "DUP" : "single") << " metadata, 192 MiB in 1 MiB chunks: ENOSPC with " << full * 100
                                                     << " % of the device in data, " << e->chunk_map().count() << " chunks");
      CHECK(e->chunk_map().count() >= 150);

      // Empty it: the data chunks go back, and metadata can take their place.
      while (!extents.empty()) drop_extent(*e, extents, extents.begin());
      REQUIRE(e->commit().ok());
      REQUIRE(e->commit(true).ok());  // the chunks emptied by the last commit
      CHECK(chunk_bytes(*e, kChunkData) <= 2 * kMiB);
      uint64_t id = 1;
      while (add_kv(*e, kv, id++, 3000))
        if (id % 1024 == 0) REQUIRE(e->commit().ok());
      REQUIRE(e->commit().ok());
      const uint64_t meta_bytes = chunk_bytes(*e, kChunkMetadata) * (meta == kProfileDup ? 2 : 1);
      INFO("metadata chunks " << (meta_bytes >> 20) << " MiB of the device");
      CHECK(double(meta_bytes) / double(size) >= 0.9);
      // And back again.
      for (auto it = kv.begin(); it != kv.end();) {
        REQUIRE(e->tree(kTestTree).remove(it->first).ok());
        it = kv.erase(it);
      }
      REQUIRE(e->commit().ok());
      REQUIRE(e->commit(true).ok());
      for (int n = 0; add_extent(*e, extents, 256 * 1024); n++)
        if (n % 64 == 63) REQUIRE(e->commit().ok());
      REQUIRE(e->commit().ok());
      data = 0;
      for (auto& [b, l] : extents) data += l;
      CHECK(double(data) / double(size) >= 0.9);
      lk.unlock();
      e.reset();
      require_clean(*dev);
    }
  }
}

TEST_CASE("Chunks: a sparse 64 TiB device fills to ENOSPC at 99 %", "[chunks]") {
  // No data is written (extents are only allocated and recorded), so the
  // image stays sparse; the chunk tree maps some 16,000 chunks at the end.
  // /tmp may not hold a 64 TiB file (ext4 stops at 16 TiB): try /dev/shm.
  std::string path = "/dev/shm/cairn-64t-XXXXXX";
  int fd = mkstemp(path.data());
  REQUIRE(fd >= 0);
  const uint64_t size = 64ULL << 40;
  if (ftruncate(fd, off_t(size)) != 0) {
    close(fd);
    unlink(path.c_str());
    WARN("no filesystem here holds a 64 TiB sparse file; skipped");
    return;
  }
  close(fd);
  struct Unlink {
    std::string p;
    ~Unlink() { unlink(p.c_str()); }
  } cleanup{path};
  auto open_dev = [&] {
    auto d = FileDevice::open(path, FileDeviceOptions{false, false});
    REQUIRE(d.ok());
    return std::shared_ptr<BlockDevice>(std::move(d).value());
  };
  REQUIRE(Engine::format(open_dev(), MkfsParams{}).ok());
  add_kv_tree(open_dev(), kTestTree);
  ExtentModel extents;
  {
    auto e = open_small_chunks(open_dev(), 0);
    std::lock_guard lk(e->mutex());
    // Extents of 1 GiB (the size is the caller's; the allocator gives what fits).
    for (int n = 0; add_extent(*e, extents, 1ULL << 30); n++)
      if (n % 4096 == 4095) REQUIRE(e->commit().ok());
    REQUIRE(e->commit().ok());
    uint64_t data = 0;
    for (auto& [b, l] : extents) data += l;
    INFO("data " << (data >> 30) << " GiB of " << (size >> 30) << " GiB; " << e->chunk_map().count() << " chunks");
    CHECK(double(data) / double(size) >= 0.99);
    CHECK(e->chunk_map().count() >= 10000);
    WARN("64 TiB: ENOSPC with " << double(data) * 100 / double(size) << " % of the device in data extents, "
                                << e->chunk_map().count() << " chunks");
  }
  auto e = open_small_chunks(open_dev(), 0, true);
  std::lock_guard lk(e->mutex());
  CHECK(dump_extents(*e) == extents);
}

TEST_CASE("Chunks: a crash at every flush point of chunk allocation and reclaim", "[chunks][crash]") {
  MkfsParams p;
  p.node_size = 4096;
  p.max_chunk_size = kMiB;
  auto base = make_formatted_memory(p, kMinDeviceSize);
  add_kv_tree(base, kTestTree);
  auto rec = std::make_shared<RecordingDevice>(base->snapshot());
  struct State {
    KvModel kv;
    ExtentModel extents;
    size_t chunks = 0;
  };
  std::map<uint64_t, State> at_gen;
  std::map<uint64_t, size_t> durable_after;
  std::mt19937_64 rng(11);
  size_t reclaimed = 0;
  {
    auto e = open_small_chunks(rec, kMiB);
    State s;
    {
      std::lock_guard lk(e->mutex());
      s.kv = dump_kv(*e);
      s.chunks = committed_chunks(*e).size();
    }
    at_gen[e->last_committed()] = s;
    durable_after[e->last_committed()] = 0;
    uint64_t id = 1;
    for (int txn = 0; txn < 30; txn++) {
      std::lock_guard lk(e->mutex());
      // Grow data for a few transactions (new chunks), then empty it
      // (chunks given back at the next commit), with metadata churn.
      if (txn % 6 < 3) {
        for (int i = 0; i < 12; i++) add_extent(*e, s.extents, 512 * 1024);
      } else {
        while (!s.extents.empty() && rng() % 8) drop_extent(*e, s.extents, s.extents.begin());
      }
      for (int i = 0; i < 40; i++) {
        if (rng() % 3 == 0 && !s.kv.empty()) {
          auto it = s.kv.begin();
          std::advance(it, long(rng() % s.kv.size()));
          REQUIRE(e->tree(kTestTree).remove(it->first).ok());
          s.kv.erase(it);
        } else {
          add_kv(*e, s.kv, id++, 200 + rng() % 1500);
        }
      }
      REQUIRE(e->commit().ok());
      s.chunks = committed_chunks(*e).size();
      at_gen[e->last_committed()] = s;
      durable_after[e->last_committed()] = rec->ops().size();
    }
    reclaimed = e->allocator().chunks_reclaimed();
  }
  CHECK(reclaimed >= 10);
  const size_t images = for_each_crash_image(*rec, durable_after, rng, [&](auto dev, uint64_t durable, const std::string& what) {
    INFO(what);
    require_clean(*dev);
    auto e = open_small_chunks(dev, kMiB, true);
    std::lock_guard lk(e->mutex());
    const uint64_t gen = e->last_committed();
    REQUIRE(gen >= durable);
    REQUIRE(at_gen.count(gen));
    REQUIRE(dump_kv(*e) == at_gen[gen].kv);
    REQUIRE(dump_extents(*e) == at_gen[gen].extents);
    REQUIRE(committed_chunks(*e).size() == at_gen[gen].chunks);
    REQUIRE(e->chunk_map().count() == at_gen[gen].chunks);
  });
  CHECK(images >= 180);
}

TEST_CASE("Chunks: an image made before the chunk tree opens, and its first commit upgrades it", "[chunks]") {
  MkfsParams p;
  p.node_size = 4096;
  p.max_chunk_size = 4 * kMiB;
  auto dev = make_formatted_memory(p, 160 * kMiB);
  add_kv_tree(dev, kTestTree);
  KvModel kv;
  ExtentModel extents;
  {
    auto e = open_small_chunks(dev, 4 * kMiB);
    std::lock_guard lk(e->mutex());
    for (uint64_t id = 1; id <= 300; id++) add_kv(*e, kv, id, 300);
    for (int i = 0; i < 20; i++) REQUIRE(add_extent(*e, extents, 512 * 1024));
    REQUIRE(e->commit().ok());
  }
  // What such an image looks like: every chunk in the superblock's array,
  // no system chunk, no chunk tree, no CHUNK_TREE bit.
  std::vector<Chunk> legacy;
  {
    auto e = open_small_chunks(dev, 4 * kMiB, true);
    for (const Chunk& c : e->chunk_map().chunks())
      if (c.type != kChunkSystem) legacy.push_back(c);
  }
  REQUIRE(legacy.size() >= 3);
  auto sb = Engine::read_superblock(*dev);
  REQUIRE(sb.ok());
  sb->chunks = legacy;
  sb->incompat_flags &= ~kIncompatChunkTree;
  sb->chunk_root = sb->chunk_root_generation = 0;
  sb->chunk_root_level = 0;
  sb->space_cache = sb->space_cache_generation = 0;
  write_superblocks(*dev, *sb);
  REQUIRE_FALSE(Engine::read_superblock(*dev)->has_chunk_tree());
  require_clean(*dev);
  {
    auto e = open_small_chunks(dev, 4 * kMiB);
    std::lock_guard lk(e->mutex());
    REQUIRE(dump_kv(*e) == kv);
    REQUIRE(dump_extents(*e) == extents);
    // Enough new data for new chunks, then the first commit.
    for (int i = 0; i < 40; i++) REQUIRE(add_extent(*e, extents, 512 * 1024));
    REQUIRE(e->commit().ok());
  }
  auto after = Engine::read_superblock(*dev);
  REQUIRE(after.ok());
  CHECK(after->has_chunk_tree());
  CHECK(after->chunks.size() >= 1);
  for (const Chunk& c : after->chunks) CHECK(c.type == kChunkSystem);
  require_clean(*dev);
  auto e = open_small_chunks(dev, 4 * kMiB, true);
  std::lock_guard lk(e->mutex());
  CHECK(dump_kv(*e) == kv);
  CHECK(dump_extents(*e) == extents);
  // The chunk tree lists every chunk the map holds.
  CHECK(committed_chunks(*e).size() == e->chunk_map().count());
  CHECK(e->chunk_map().count() > legacy.size());
}

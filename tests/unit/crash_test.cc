// Crash simulation (BRIEF "How we prove it"): run random transactions on a
// recording device, then rebuild the image as it was at every flush, and
// with a random subset of the writes issued after that flush (a crash with
// writes landing out of order). Each image must open, check clean, and hold
// exactly the model's contents at the generation its superblock names,
// which is never older than the last durable commit.
#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "check/checker.h"
#include "test_helpers.h"

using namespace cairn;
using namespace cairn::test;

namespace {
constexpr uint64_t kTestTree = 300;
}

namespace {
using Model = std::map<Key, Bytes>;

Model dump(Engine& e) {
  Model m;
  BTree t = e.tree(kTestTree);
  Cursor c = t.cursor();
  REQUIRE(c.seek(Key::Min()).ok());
  for (; c.valid(); c.advance()) m[c.key()] = c.data();
  REQUIRE(c.status().ok());
  return m;
}
}  // namespace

TEST_CASE("Crash at every flush point leaves the last committed state", "[crash]") {
  for (uint32_t profile : {kProfileSingle, kProfileDup}) {
    MkfsParams p;
    p.node_size = 4096;
    p.metadata_profile = profile;
    auto base = make_formatted_memory(p, kMinDeviceSize);
    add_kv_tree(base, kTestTree);
    auto rec = std::make_shared<RecordingDevice>(base->snapshot());
    std::map<uint64_t, Model> at_gen;        // generation -> fs tree contents
    std::map<uint64_t, size_t> durable_after;  // generation -> op count once durable
    std::mt19937_64 rng(profile * 1000 + 99);
    {
      auto e = open_engine(rec);
      at_gen[e->last_committed()] = dump(*e);
      durable_after[e->last_committed()] = 0;
      Model model = at_gen[e->last_committed()];
      for (int txn = 0; txn < 25; txn++) {
        std::lock_guard lk(e->mutex());
        BTree t = e->tree(kTestTree);
        int n = 20 + int(rng() % 200);
        for (int i = 0; i < n; i++) {
          Key k{1000 + rng() % 2000, 1, 0};
          if (model.count(k) && rng() % 2) {
            REQUIRE(t.remove(k).ok());
            model.erase(k);
          } else {
            Bytes v(size_t(rng() % 300), uint8_t(rng()));
            REQUIRE(t.upsert(k, v).ok());
            model[k] = v;
          }
        }
        // Data extents too, so the extent tree churns with the fs tree.
        auto ext = e->alloc_data(4096, 65536);
        REQUIRE(ext.ok());
        REQUIRE(e->add_data_extent(ext->first, ext->second, kTestTree, 1, ext->first).ok());
        REQUIRE(e->drop_data_ref(ext->first, ext->second, kTestTree, 1, ext->first).ok());
        REQUIRE(e->commit().ok());
        at_gen[e->last_committed()] = model;
        durable_after[e->last_committed()] = rec->ops().size();
      }
    }
    const size_t images = for_each_crash_image(*rec, durable_after, rng, [&](auto dev, uint64_t durable, const std::string& what) {
      auto rep = check_filesystem(*dev);
      REQUIRE(rep.ok());
      for (auto& pr : rep->problems) UNSCOPED_INFO(pr.message);
      INFO(what);
      REQUIRE(rep->clean());
      auto e = open_engine(dev, true);
      const uint64_t gen = e->last_committed();
      REQUIRE(gen >= durable);
      REQUIRE(at_gen.count(gen));
      REQUIRE(dump(*e) == at_gen[gen]);
    });
    CHECK(images >= 150);
  }
}

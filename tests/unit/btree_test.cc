// The CoW B-tree against a std::map model: randomized inserts, deletes,
// updates and lookups with periodic commits and reopens; forward and
// backward iteration; fsck clean after every reopen.
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

Model dump_tree(Engine& e, uint64_t id) {
  Model m;
  BTree t = e.tree(id);
  Cursor c = t.cursor();
  REQUIRE(c.seek(Key::Min()).ok());
  for (; c.valid(); c.advance()) m[c.key()] = c.data();
  REQUIRE(c.status().ok());
  return m;
}

void verify_backward(Engine& e, uint64_t id, const Model& model) {
  BTree t = e.tree(id);
  Cursor c = t.cursor();
  REQUIRE(c.seek_last_le(Key::Max()).ok());
  auto it = model.rbegin();
  for (; c.valid(); c.retreat(), ++it) {
    REQUIRE(it != model.rend());
    REQUIRE(c.key() == it->first);
    REQUIRE(c.data() == it->second);
  }
  REQUIRE(it == model.rend());
}

Bytes random_bytes(std::mt19937_64& rng, size_t n) {
  Bytes b(n);
  for (auto& x : b) x = uint8_t(rng());
  return b;
}

}  // namespace

TEST_CASE("B-tree: 200000 random operations match a std::map", "[btree]") {
  MkfsParams p;
  p.node_size = 4096;  // small nodes: deep trees, many splits and merges
  std::shared_ptr<BlockDevice> dev = make_formatted_memory(p, 256ULL << 20);
  add_kv_tree(dev, kTestTree);
  auto e = open_engine(dev);
  Model model = dump_tree(*e, kTestTree);
  std::mt19937_64 rng(12345);
  const size_t max_item = e->tree(kTestTree).max_item_size();
  auto random_key = [&] { return Key{1000 + rng() % 3000, uint8_t(1 + rng() % 3), rng() % 4}; };
  auto random_size = [&] { return rng() % 50 == 0 ? size_t(rng() % max_item) : size_t(rng() % 200); };
  auto existing_key = [&]() -> std::optional<Key> {
    if (model.empty()) return std::nullopt;
    auto it = model.lower_bound(random_key());
    if (it == model.end()) it = model.begin();
    return it->first;
  };

  const int kOps = 200000;
  int inserts = 0, removes = 0;
  for (int op = 1; op <= kOps; op++) {
    std::unique_lock lk(e->mutex());
    BTree t = e->tree(kTestTree);
    int r = int(rng() % 100);
    // Phases: grow for a while, then shrink, so merges and root collapse happen too.
    bool shrinking = (op / 25000) % 2 == 1;
    if (r < (shrinking ? 25 : 50)) {
      Key k = random_key();
      Bytes v = random_bytes(rng, random_size());
      Status st = t.insert(k, v);
      if (model.count(k)) {
        REQUIRE(st.code() == EEXIST);
      } else {
        INFO(st.to_string());
        REQUIRE(st.ok());
        model[k] = v;
        inserts++;
      }
    } else if (r < (shrinking ? 80 : 70)) {
      auto k = existing_key();
      if (!k) continue;
      REQUIRE(t.remove(*k).ok());
      model.erase(*k);
      removes++;
      REQUIRE(t.remove(*k).code() == ENOENT);
    } else if (r < 85) {
      auto k = existing_key();
      if (!k) continue;
      Bytes v = random_bytes(rng, random_size());
      REQUIRE(t.update(*k, v).ok());
      model[*k] = v;
    } else {
      Key k = random_key();
      auto got = t.lookup(k);
      if (model.count(k)) {
        REQUIRE(got.ok());
        REQUIRE(got.value() == model[k]);
      } else {
        REQUIRE(got.status().code() == ENOENT);
      }
    }
    if (op % 1000 == 0) REQUIRE(e->commit().ok());
    lk.unlock();
    if (op % 20000 == 0) {
      e.reset();
      e = open_engine(dev);
      REQUIRE(dump_tree(*e, kTestTree) == model);
      verify_backward(*e, kTestTree, model);
      auto rep = check_filesystem(*dev);
      REQUIRE(rep.ok());
      for (auto& pr : rep->problems) UNSCOPED_INFO(pr.message);
      REQUIRE(rep->clean());
    }
  }
  CHECK(inserts > 40000);
  CHECK(removes > 20000);
}

TEST_CASE("B-tree: seek and seek_last_le find neighbours", "[btree]") {
  auto dev = make_formatted_memory();
  add_kv_tree(dev, kTestTree);
  auto e = open_engine(dev);
  std::lock_guard lk(e->mutex());
  BTree t = e->tree(kTestTree);
  for (uint64_t i = 0; i < 5000; i++) REQUIRE(t.insert(Key{7, 1, i * 10}, Bytes(40, uint8_t(i))).ok());
  Cursor c = t.cursor();
  REQUIRE(c.seek(Key{7, 1, 15}).ok());
  REQUIRE(c.valid());
  CHECK(c.key().offset == 20);
  REQUIRE(c.seek_last_le(Key{7, 1, 15}).ok());
  REQUIRE(c.valid());
  CHECK(c.key().offset == 10);
  REQUIRE(c.seek_last_le(Key{7, 1, 0}).ok());
  CHECK(c.key().offset == 0);
  REQUIRE(c.seek_last_le(Key{6, 0, 0}).ok());
  CHECK_FALSE(c.valid());
  REQUIRE(c.seek(Key{8, 0, 0}).ok());
  CHECK_FALSE(c.valid());
  CHECK(t.remove_range(Key{7, 1, 100}, Key{7, 1, 49990}).value() == 4990);
  REQUIRE(e->commit().ok());
}

TEST_CASE("B-tree: oversized items are refused", "[btree]") {
  auto dev = make_formatted_memory();
  add_kv_tree(dev, kTestTree);
  auto e = open_engine(dev);
  std::lock_guard lk(e->mutex());
  BTree t = e->tree(kTestTree);
  CHECK(t.insert(Key{9999, 1, 0}, Bytes(t.max_item_size() + 1)).code() == E2BIG);
  CHECK(t.insert(Key{9999, 1, 0}, Bytes(t.max_item_size())).ok());
  REQUIRE(e->commit().ok());
}

TEST_CASE("Checksum items: insert, lookup across items, delete ranges", "[btree][csum]") {
  auto dev = make_formatted_memory();
  auto e = open_engine(dev);
  std::lock_guard lk(e->mutex());
  const size_t cs = e->csum_size();
  std::map<uint64_t, Bytes> model;  // sector address -> checksum
  std::mt19937_64 rng(3);
  const uint64_t base = 1ULL << 30;
  for (int run = 0; run < 50; run++) {
    uint64_t start = base + (rng() % 20000) * 4096, n = 1 + rng() % 3000;
    bool overlap = false;
    for (uint64_t s = 0; s < n; s++) overlap |= model.count(start + s * 4096) != 0;
    if (overlap) continue;
    Bytes sums(n * cs);
    for (auto& b : sums) b = uint8_t(rng());
    REQUIRE(e->insert_csums(start, sums.data(), n).ok());
    for (uint64_t s = 0; s < n; s++) model[start + s * 4096] = Bytes(sums.begin() + long(s * cs), sums.begin() + long((s + 1) * cs));
    if (run % 3 == 0) {
      uint64_t ds = base + (rng() % 20000) * 4096, dn = 1 + rng() % 2000;
      REQUIRE(e->delete_csums(ds, dn * 4096).ok());
      for (uint64_t s = 0; s < dn; s++) model.erase(ds + s * 4096);
    }
  }
  std::vector<uint8_t> out;
  std::vector<bool> present;
  const uint64_t total = 21000;
  REQUIRE(e->lookup_csums(base, total, &out, &present).ok());
  for (uint64_t s = 0; s < total; s++) {
    auto it = model.find(base + s * 4096);
    REQUIRE(present[s] == (it != model.end()));
    if (present[s]) REQUIRE(Bytes(out.begin() + long(s * cs), out.begin() + long((s + 1) * cs)) == it->second);
  }
}

TEST_CASE("Engine: freed space is pinned until the commit is durable", "[btree][alloc]") {
  auto dev = make_formatted_memory();
  auto e = open_engine(dev);
  std::lock_guard lk(e->mutex());
  auto ext = e->alloc_data(1 << 20, 1 << 20);
  REQUIRE(ext.ok());
  REQUIRE(e->add_data_extent(ext->first, ext->second, kTestTree, 300, 0).ok());
  REQUIRE(e->commit().ok());
  REQUIRE(e->drop_data_ref(ext->first, ext->second, kTestTree, 300, 0).ok());
  CHECK(e->allocator().pinned_bytes() >= ext->second);
  // While pinned, no allocation may hand out the old extent.
  for (int i = 0; i < 20; i++) {
    auto a = e->alloc_data(1 << 20, 1 << 20);
    REQUIRE(a.ok());
    CHECK((a->first + a->second <= ext->first || a->first >= ext->first + ext->second));
    e->release_unused_data(a->first, a->second);
  }
  REQUIRE(e->commit().ok());
  CHECK(e->allocator().pinned_bytes() == 0);
}

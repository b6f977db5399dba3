// Snapshots at the engine level (docs/design.md, "Snapshots"): trees that
// share blocks. Random changes to several trees, snapshots of random trees
// (each O(1): one root reference) and deletions of random trees, dropped a
// few steps at a time across commits, against a model of every tree's
// items. fsck after every commit counts every pointer to every node against
// its METADATA_ITEM, so a reference gained or lost anywhere fails the test;
// at the end, with one tree left, no node of a dropped tree remains. Then
// an fs tree with files: snapshot, change the original through the daemon's
// data path (shared leaves copied with their data references), the snapshot
// reads as before, fsck checks the data references of both trees, and
// deleting the snapshot frees exactly what only it held. And a crash at
// every flush point of snapshots and drops.
#include <dirent.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "check/checker.h"
#include "data/file_data.h"
#include "io/io_engine.h"
#include "scrub/scrubber.h"
#include "engine_model.h"
#include "test_helpers.h"
#include "vfs/filesystem.h"

using namespace cairn;
using namespace cairn::test;

namespace {

using Trees = std::map<uint64_t, KvModel>;

void require_fsck_clean(BlockDevice& dev) {
  auto rep = check_filesystem(dev);
  REQUIRE(rep.ok());
  for (auto& p : rep->problems) UNSCOPED_INFO(p.code << ": " << p.message);
  REQUIRE(rep->clean());
}

uint64_t metadata_items(Engine& e) {
  uint64_t n = 0;
  BTree t = e.tree(kExtentTreeId);
  Cursor c = t.cursor();
  REQUIRE(c.seek(Key::Min()).ok());
  for (; c.valid(); c.advance()) n += c.key().type == kMetadataItem;
  return n;
}

// Random changes to the live trees, snapshots and deletions, drops; one
// transaction. Returns the ids of trees still being dropped.
// `committed`: told of the commit a snapshot makes first (its generation,
// and the trees it holds).
void churn(Engine& e, Trees& trees, std::set<uint64_t>& dead, uint64_t& next_id, std::mt19937_64& rng, int ops,
           const std::function<void(uint64_t, const Trees&)>& committed = {}) {
  std::lock_guard lk(e.mutex());
  auto pick = [&]() {
    auto it = trees.begin();
    std::advance(it, long(rng() % trees.size()));
    return it->first;
  };
  for (int i = 0; i < ops; i++) {
    const unsigned op = unsigned(rng() % 100);
    if (op < 3 && trees.size() < 12) {
      const uint64_t src = pick(), dst = next_id++;
      REQUIRE(e.snapshot_tree(src, dst).ok());
      if (committed) committed(e.last_committed(), trees);
      trees[dst] = trees[src];
    } else if (op < 5 && trees.size() > 1) {
      const uint64_t id = pick();
      REQUIRE(e.delete_tree(id).ok());
      trees.erase(id);
      dead.insert(id);
    } else if (op < 15 && !dead.empty()) {
      const uint64_t id = *dead.begin();
      auto gone = e.drop_tree_steps(id, 1 + rng() % 8);
      REQUIRE(gone.ok());
      if (gone.value()) dead.erase(id);
    } else {
      const uint64_t id = pick();
      BTree t = e.tree(id);
      KvModel& m = trees[id];
      Key k{1000 + rng() % 3000, 1, 0};
      if (m.count(k) && rng() % 3 == 0) {
        REQUIRE(t.remove(k).ok());
        m.erase(k);
      } else {
        Bytes v(size_t(20 + rng() % 200), uint8_t(rng()));
        REQUIRE(t.upsert(k, v).ok());
        m[k] = v;
      }
    }
  }
}

}  // namespace

TEST_CASE("Snapshots share blocks: random changes, snapshots and drops against a model, fsck after every commit",
          "[snapshot]") {
  for (uint64_t seed : {1u, 2u}) {
    DYNAMIC_SECTION("seed " << seed) {
      MkfsParams p;
      p.node_size = 4096;  // deep trees with little data
      auto dev = make_formatted_memory(p, 128ULL << 20);
      add_kv_tree(dev, kTestTree);
      std::mt19937_64 rng(seed);
      Trees trees{{kTestTree, {}}};
      std::set<uint64_t> dead;
      uint64_t next_id = kTestTree + 1;
      auto e = open_engine(dev);
      const uint64_t empty_nodes = [&] {
        std::lock_guard lk(e->mutex());
        return metadata_items(*e);
      }();
      for (int txn = 0; txn < 40; txn++) {
        churn(*e, trees, dead, next_id, rng, 300);
        std::lock_guard lk(e->mutex());
        REQUIRE(e->commit().ok());
        INFO("transaction " << txn << ", " << trees.size() << " trees, " << dead.size() << " dead");
        require_fsck_clean(*dev);
        for (auto& [id, m] : trees) REQUIRE(dump_kv(*e, id) == m);
      }
      CHECK(next_id - kTestTree > 5);
      // Everything but one tree deleted and dropped: the nodes left are
      // that tree's and the fixed trees', as after mkfs plus its growth.
      {
        std::lock_guard lk(e->mutex());
        const uint64_t keep = trees.begin()->first;
        for (auto it = std::next(trees.begin()); it != trees.end(); it = trees.erase(it)) {
          REQUIRE(e->delete_tree(it->first).ok());
          dead.insert(it->first);
        }
        for (uint64_t id : dead) {
          for (;;) {
            auto gone = e->drop_tree_steps(id, 16);
            REQUIRE(gone.ok());
            if (gone.value()) break;
            REQUIRE(e->commit().ok());
          }
        }
        REQUIRE(e->commit().ok());
        REQUIRE(e->dead_trees().empty());
        REQUIRE(dump_kv(*e, keep) == trees[keep]);
        CHECK(metadata_items(*e) > empty_nodes);
      }
      require_fsck_clean(*dev);
      // The survivor reopens and still matches.
      e.reset();
      auto e2 = open_engine(dev);
      std::lock_guard lk(e2->mutex());
      REQUIRE(dump_kv(*e2, trees.begin()->first) == trees.begin()->second);
    }
  }
}

TEST_CASE("Snapshots: a crash at every flush point of snapshots and drops leaves a committed state", "[snapshot][crash]") {
  MkfsParams p;
  p.node_size = 4096;
  auto base = make_formatted_memory(p, kMinDeviceSize);
  add_kv_tree(base, kTestTree);
  auto rec = std::make_shared<RecordingDevice>(base->snapshot());
  std::map<uint64_t, Trees> at_gen;
  std::map<uint64_t, size_t> durable_after;
  std::mt19937_64 rng(5);
  Trees trees{{kTestTree, {}}};
  std::set<uint64_t> dead;
  uint64_t next_id = kTestTree + 1;
  {
    auto e = open_engine(rec);
    {
      std::lock_guard lk(e->mutex());
      at_gen[e->last_committed()] = trees;
      durable_after[e->last_committed()] = 0;
    }
    for (int txn = 0; txn < 14; txn++) {
      churn(*e, trees, dead, next_id, rng, 120, [&](uint64_t gen, const Trees& t) {
        at_gen[gen] = t;
        durable_after[gen] = rec->ops().size();
      });
      std::lock_guard lk(e->mutex());
      REQUIRE(e->commit().ok());
      at_gen[e->last_committed()] = trees;
      durable_after[e->last_committed()] = rec->ops().size();
    }
  }
  size_t matched = 0;
  const size_t images = for_each_crash_image(*rec, durable_after, rng, [&](auto dev, uint64_t durable, const std::string& what) {
    INFO(what);
    require_fsck_clean(*dev);
    auto e = open_engine(dev, true);
    std::lock_guard lk(e->mutex());
    const uint64_t gen = e->last_committed();
    REQUIRE(gen >= durable);
    REQUIRE(at_gen.count(gen));
    for (auto& [id, m] : at_gen[gen]) REQUIRE(dump_kv(*e, id) == m);
    matched++;
  });
  CHECK(images >= 40);
  CHECK(matched == images);
}

TEST_CASE("A snapshot of the fs tree: the original changes, the snapshot does not, and deleting it frees what only it held",
          "[snapshot]") {
  TempImage img(256ULL << 20);
  std::map<std::string, std::vector<char>> before;
  std::map<std::string, uint64_t> inos;
  auto fs = img.mount();
  for (int i = 0; i < 40; i++) {
    const std::string name = "f" + std::to_string(i);
    before[name] = pattern(size_t(4096 * (1 + i % 7) + 100 * i), uint32_t(i));
    inos[name] = new_file(*fs, name, before[name]);
  }
  REQUIRE(fs->sync().ok());
  uint64_t data_before = 0;
  {
    std::lock_guard lk(fs->engine().mutex());
    REQUIRE(fs->engine().snapshot_tree(kFsTreeId, 256).ok());
    REQUIRE(fs->engine().commit().ok());
    data_before = fs->engine().allocator().data_available();
  }
  // The original changes through the data path: overwrites, a truncate, deletes.
  auto& writeable = before;
  std::map<std::string, std::vector<char>> now = writeable;
  for (int i = 0; i < 40; i += 3) {
    const std::string name = "f" + std::to_string(i);
    auto d = pattern(4096, 1000u + uint32_t(i));
    REQUIRE(fs->write(inos[name], 0, d.data(), d.size()).ok());
    std::copy(d.begin(), d.end(), now[name].begin());
  }
  for (int i = 1; i < 40; i += 5) {
    const std::string name = "f" + std::to_string(i);
    fs->forget(inos[name], 1);
    REQUIRE(fs->unlink(kFirstInode, name).ok());
    now.erase(name);
  }
  check_files(*fs, now);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);  // both trees' namespaces, every reference

  // The snapshot still holds every file as it was.
  {
    auto e = open_engine(img.open_device(true), true);
    FileData data(*e);
    for (auto& [name, bytes] : before) {
      FileState f(inos[name], 256);
      {
        std::lock_guard lk(e->mutex());
        auto raw = e->tree(256).lookup(Key{f.ino, kInodeItem, 0});
        REQUIRE(raw.ok());
        f.item = InodeItem::decode(raw.value()).value();
      }
      std::vector<char> out(bytes.size() + 10);
      auto r = data.read(f, 0, out.size(), out.data());
      REQUIRE(r.ok());
      REQUIRE(r.value() == bytes.size());
      REQUIRE(std::memcmp(out.data(), bytes.data(), bytes.size()) == 0);
    }
  }

  // Damage in a block both trees read (f2 was not changed): scrub names
  // the file in the original and in the snapshot.
  {
    auto dev = img.open_device(false);
    uint64_t logical = 0;
    {
      auto e = open_engine(dev, true);
      std::lock_guard lk(e->mutex());
      auto raw = e->tree(kFsTreeId).lookup(Key{inos["f2"], kExtentData, 0});
      REQUIRE(raw.ok());
      auto fe = FileExtent::decode(raw.value());
      REQUIRE(fe.ok());
      logical = fe->disk_bytenr + fe->offset;
      auto phys = e->chunk_map().map(logical, kSectorSize);
      REQUIRE(phys.ok());
      std::vector<uint8_t> junk(kSectorSize, 0x5a);
      REQUIRE(dev->write((*phys)[0], junk.data(), junk.size()).ok());
    }
    auto e = open_engine(dev, true);
    auto io = IoEngine::open(img.path, true, IoEngineOptions{});
    REQUIRE(io.ok());
    ScrubOptions so;
    so.repair = false;
    Scrubber s(*e, *io.value(), so);
    REQUIRE(s.run_all().ok());
    std::set<uint64_t> trees_named;
    for (const auto& err : s.errors())
      for (const auto& f : err.files)
        if (f.ino == inos["f2"] && !f.paths.empty() && f.paths[0] == "/f2") trees_named.insert(f.root);
    CHECK(trees_named == std::set<uint64_t>{kFsTreeId, 256});
    // Put the block back for what follows.
    std::lock_guard lk(e->mutex());
    auto phys = e->chunk_map().map(logical, kSectorSize);
    REQUIRE(phys.ok());
    REQUIRE(dev->write((*phys)[0], before["f2"].data(), kSectorSize).ok());
  }

  // Deleting the snapshot gives back what only it held: the old blocks of
  // the overwritten files and the deleted files' data.
  fs = img.mount();
  {
    std::lock_guard lk(fs->engine().mutex());
    REQUIRE(fs->engine().delete_tree(256).ok());
    for (;;) {
      auto gone = fs->engine().drop_tree_steps(256, 4);
      REQUIRE(gone.ok());
      if (gone.value()) break;
      REQUIRE(fs->engine().commit().ok());
    }
    REQUIRE(fs->engine().commit().ok());
    REQUIRE(fs->engine().commit().ok());  // the freed space unpinned
    CHECK(fs->engine().allocator().data_available() > data_before);
  }
  check_files(*fs, now);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
  // Deleting every file now frees all data: nothing is left referenced.
  fs = img.mount();
  for (auto& [name, bytes] : now) REQUIRE(fs->unlink(kFirstInode, name).ok());
  REQUIRE(fs->unmount().ok());
  fs.reset();
  auto rep = check_report(img.path);
  REQUIRE(rep.clean());
  CHECK(rep.stats.data_extents == 0);
}

namespace {
// Files by subvolume (its name in the top level; "" is the top level).
using Volumes = std::map<std::string, std::map<std::string, std::vector<char>>>;

uint64_t dir_of(Filesystem& fs, const std::string& vol) {
  if (vol.empty()) return kFirstInode;
  auto e = fs.lookup(kFirstInode, vol);
  REQUIRE(e.ok());
  fs.forget(e->ino, 1);
  return e->ino;
}

void check_volumes(Filesystem& fs, const Volumes& vols) {
  for (auto& [vol, files] : vols) {
    INFO("subvolume " << (vol.empty() ? "(top)" : vol));
    const uint64_t dir = dir_of(fs, vol);
    size_t regular = 0;
    REQUIRE(fs.readdir(dir, 0, false, [&](const DirEntryOut& d) {
                if (d.type == DT_REG) regular++;
                return true;
              }).ok());
    REQUIRE(regular == files.size());
    for (auto& [name, bytes] : files) {
      auto e = fs.lookup(dir, name);
      REQUIRE(e.ok());
      std::vector<char> out(bytes.size() + 10);
      auto r = fs.read(e->ino, 0, out.size(), out.data());
      fs.forget(e->ino, 1);
      REQUIRE(r.ok());
      REQUIRE(r.value() == bytes.size());
      REQUIRE(std::memcmp(out.data(), bytes.data(), bytes.size()) == 0);
    }
  }
}
}  // namespace

TEST_CASE("Subvolumes against a model: files, snapshots, deletions, remounts, fsck clean, space all returned",
          "[snapshot][subvolume]") {
  for (uint32_t seed : {3u, 4u}) {
    DYNAMIC_SECTION("seed " << seed) {
      std::mt19937 rng(seed);
      TempImage img(256ULL << 20);
      auto fs = img.mount();
      Volumes vols{{"", {}}};
      std::set<std::string> read_only;
      int next = 0;
      size_t refused = 0;
      auto pick = [&]() {
        auto it = vols.begin();
        std::advance(it, long(rng() % vols.size()));
        return it->first;
      };
      for (int step = 0; step < 150; step++) {
        const unsigned op = rng() % 20;
        const std::string vol = pick();
        INFO("step " << step << " op " << op << " in " << (vol.empty() ? "(top)" : vol));
        if (op < 11 && read_only.count(vol)) {
          // A read-only snapshot refuses, and nothing else breaks.
          auto e = fs->mknod(dir_of(*fs, vol), "new", S_IFREG | 0644, 0, Caller{});
          REQUIRE(e.status().code() == EROFS);
          refused++;
          continue;
        }
        if (op < 9) {
          const std::string name = "f" + std::to_string(rng() % 12);
          auto& files = vols[vol];
          const uint64_t dir = dir_of(*fs, vol);
          auto data = pattern(size_t(1 + rng() % 60000), seed * 1000 + unsigned(step));
          auto e = fs->lookup(dir, name);
          if (!e.ok()) e = fs->mknod(dir, name, S_IFREG | 0644, 0, Caller{});
          REQUIRE(e.ok());
          const uint64_t at = files.count(name) && rng() % 2 ? rng() % (files[name].size() + 1) : 0;
          REQUIRE(fs->write(e->ino, at, data.data(), data.size()).ok());
          fs->forget(e->ino, 1);
          auto& f = files[name];
          if (f.size() < at + data.size()) f.resize(at + data.size());
          std::copy(data.begin(), data.end(), f.begin() + long(at));
        } else if (op < 11) {
          auto& files = vols[vol];
          if (files.empty()) continue;
          auto it = files.begin();
          std::advance(it, long(rng() % files.size()));
          REQUIRE(fs->unlink(dir_of(*fs, vol), it->first).ok());
          files.erase(it);
        } else if (op < 13) {
          const std::string name = "v" + std::to_string(next++);
          REQUIRE(fs->create_subvolume(kFirstInode, name).ok());
          fs->forget(dir_of(*fs, name), 1);
          vols[name] = {};
        } else if (op < 16) {
          const std::string name = "s" + std::to_string(next++);
          const bool ro = rng() % 4 == 0;
          auto r = fs->snapshot_subvolume(dir_of(*fs, vol), kFirstInode, name, ro);
          REQUIRE(r.ok());
          fs->forget(r->ino, 1);
          if (ro) read_only.insert(name);
          // The top level's snapshot holds no other subvolume.
          vols[name] = vols[vol];
        } else if (op < 18 && !vol.empty()) {
          REQUIRE(fs->delete_subvolume(kFirstInode, vol).ok());
          vols.erase(vol);
          read_only.erase(vol);
        } else if (op == 19) {
          REQUIRE(fs->unmount().ok());
          fs.reset();
          check_clean(img.path);
          fs = img.mount();
        }
        if (step % 10 == 0) check_volumes(*fs, vols);
      }
      check_volumes(*fs, vols);
      CHECK(refused > 0);
      REQUIRE(fs->unmount().ok());
      fs.reset();
      check_clean(img.path);
      // Everything deleted: every subvolume dropped, every extent gone.
      fs = img.mount();
      for (auto& [vol, files] : vols) {
        if (vol.empty()) continue;
        REQUIRE(fs->delete_subvolume(kFirstInode, vol).ok());
      }
      for (auto& [name, bytes] : vols[""]) REQUIRE(fs->unlink(kFirstInode, name).ok());
      REQUIRE(fs->wait_subvolumes_dropped().ok());
      REQUIRE(fs->unmount().ok());
      fs.reset();
      auto rep = check_report(img.path);
      REQUIRE(rep.clean());
      CHECK(rep.stats.data_extents == 0);
      CHECK(rep.stats.trees == 5);  // root, chunk, extent, fs, checksum
    }
  }
}

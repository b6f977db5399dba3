// The inode table under memory pressure: the kernel forgets an inode
// whenever it likes (drop_caches, reclaim, remount), and nothing that is not
// yet in the tree may be lost with it (BRIEF invariant 7; docs/design.md,
// "Inode table"). Each test plays the kernel: it counts the lookups it was
// given and forgets them all at the worst moments.
#include <atomic>
#include <catch2/catch.hpp>
#include <latch>
#include <map>
#include <random>
#include <set>

#include "test_helpers.h"
#include "vfs/filesystem.h"

using namespace cairn;
using cairn::test::TempImage;
using cairn::test::check_clean;
using cairn::test::check_files;
using cairn::test::pattern;

namespace {

// The kernel's side of the lookup counts: every reference the filesystem
// handed out, so that all of them can be forgotten at once.
struct Kernel {
  Filesystem& fs;
  std::map<uint64_t, uint64_t> refs;
  explicit Kernel(Filesystem& f) : fs(f) {}
  uint64_t create(const std::string& name) {
    auto e = fs.mknod(kFirstInode, name, S_IFREG | 0644, 0, Caller{});
    REQUIRE(e.ok());
    refs[e->ino]++;
    return e->ino;
  }
  Result<uint64_t> lookup(const std::string& name) {
    auto e = fs.lookup(kFirstInode, name);
    if (!e.ok()) return e.status();
    refs[e->ino]++;
    return e->ino;
  }
  // echo 2 > /proc/sys/vm/drop_caches
  void forget_all() {
    for (auto& [ino, n] : refs) fs.forget(ino, n);
    refs.clear();
  }
  void write(uint64_t ino, uint64_t off, const std::vector<char>& d) {
    REQUIRE(fs.open(ino, false).ok());
    REQUIRE(fs.write(ino, off, d.data(), d.size()).value() == d.size());
    REQUIRE(fs.flush(ino).ok());
    fs.release(ino);
  }
};

std::vector<char> read_all(Filesystem& fs, uint64_t ino) {
  auto attr = fs.getattr(ino);
  REQUIRE(attr.ok());
  std::vector<char> out(attr->size);
  if (!out.empty()) REQUIRE(fs.read(ino, 0, out.size(), out.data()).value() == out.size());
  return out;
}

}  // namespace

TEST_CASE("A forgotten inode with dirty pages keeps its data and size", "[inodes]") {
  TempImage img;
  auto data = pattern(3 << 20, 1);
  {
    auto fs = img.mount();
    Kernel k(*fs);
    const uint64_t ino = k.create("y");
    k.write(ino, 0, data);
    const uint64_t before = fs->inode_table_stats().resident;
    k.forget_all();
    // Still resident: its pages are not on disk yet.
    CHECK(fs->inode_table_stats().resident == before);
    CHECK(fs->inode_table_stats().unused >= 1);
    auto again = k.lookup("y");
    REQUIRE(again.ok());
    CHECK(again.value() == ino);
    CHECK(read_all(*fs, ino) == data);
    k.forget_all();
    // A commit writes the item; then the inode is clean and leaves the table.
    REQUIRE(fs->sync().ok());
    CHECK(fs->inode_table_stats().unused == 0);
    CHECK(fs->inode_table_stats().evicted >= 1);
    REQUIRE(k.lookup("y").ok());
    CHECK(read_all(*fs, ino) == data);
    REQUIRE(fs->unmount().ok());
  }
  check_clean(img.path);
  auto fs = img.mount();
  auto e = fs->lookup(kFirstInode, "y");
  REQUIRE(e.ok());
  CHECK(read_all(*fs, e->ino) == data);
  REQUIRE(fs->unmount().ok());
}

TEST_CASE("A forgotten inode with writeback in flight is the same object when looked up again", "[inodes]") {
  TempImage img;
  MountOptions o;
  o.writeback.csum_mode = CsumMode::kAsync;
  o.writeback.csum_threads = 1;
  auto data = pattern(1 << 20, 2);
  {
    auto fs = img.mount(o);
    Kernel k(*fs);
    const uint64_t ino = k.create("f");
    k.write(ino, 0, data);
    // Hold the only checksum thread: the ordered extent stays in flight
    // (its count of two cannot reach zero) until the latch opens.
    std::latch gate(1);
    fs->writeback().pool().submit([&gate] { gate.wait(); });
    std::weak_ptr<Inode> first;
    {
      auto in = fs->inode_ref(ino);
      REQUIRE(in.ok());
      REQUIRE(fs->writeback().flush_inode(in.value(), false).ok());
      first = in.value();
    }
    k.forget_all();
    REQUIRE(fs->group_commit().ok());  // a commit while the extent is in flight
    REQUIRE(k.lookup("f").ok());
    {
      auto again = fs->inode_ref(ino);
      REQUIRE(again.ok());
      CHECK(again.value() == first.lock());  // never a second object
    }
    CHECK(read_all(*fs, ino) == data);  // from the frozen pages in flight
    k.forget_all();
    gate.count_down();
    REQUIRE(fs->sync().ok());
    CHECK(first.expired());  // clean and unreferenced: evicted after the commit
    REQUIRE(k.lookup("f").ok());
    CHECK(read_all(*fs, ino) == data);
    REQUIRE(fs->unmount().ok());
  }
  check_clean(img.path);
}

TEST_CASE("A writeback error of a forgotten inode reaches a later fsync", "[inodes][io]") {
  TempImage img;
  auto good = pattern(100000, 3), bad = pattern(100000, 4);
  {
    auto fs = img.mount();
    Kernel k(*fs);
    const uint64_t ino = k.create("f");
    k.write(ino, 0, good);
    REQUIRE(fs->fsync(ino, false).ok());
    fs->io().inject_write_errors(true);
    k.write(ino, 0, bad);
    k.forget_all();
    // Background writeback fails and the commit after it leaves the inode
    // clean: it is evicted, and its error is kept for whoever asks.
    (void)fs->writeback().flush_all(true);
    fs->io().inject_write_errors(false);
    REQUIRE(fs->sync().ok());
    auto st = fs->inode_table_stats();
    CHECK(st.errors_kept == 1);
    REQUIRE(k.lookup("f").ok());
    REQUIRE(fs->open(ino, false).ok());
    CHECK(fs->fsync(ino, false).code() == EIO);
    CHECK(fs->fsync(ino, false).ok());  // reported once, as Linux does
    fs->release(ino);
    CHECK(fs->inode_table_stats().errors_kept == 0);
    CHECK(read_all(*fs, ino) == good);  // the committed bytes
    REQUIRE(fs->unmount().ok());
  }
  check_clean(img.path);
}

TEST_CASE("Unlink after the kernel forgot a dirty inode leaves a clean image", "[inodes]") {
  TempImage img;
  {
    auto fs = img.mount();
    Kernel k(*fs);
    const uint64_t ino = k.create("x");
    k.write(ino, 0, pattern(5000, 5));
    k.forget_all();
    REQUIRE(k.lookup("x").ok());
    REQUIRE(fs->unlink(kFirstInode, "x").ok());
    k.forget_all();  // the last reference: the inode is deleted now
    REQUIRE(fs->unmount().ok());
  }
  check_clean(img.path);
}

TEST_CASE("Random operations with the kernel forgetting everything between them match a model", "[inodes]") {
  TempImage img(512ULL << 20);
  MountOptions o;
  o.writeback.dirty_limit = 4 << 20;  // writers meet the memory bound too
  o.unused_inode_bound = 64;
  std::mt19937 rng(GENERATE(11u, 12u, 13u));
  std::map<std::string, std::vector<char>> model;
  {
    auto fs = img.mount(o);
    Kernel k(*fs);
    for (int step = 0; step < 400; step++) {
      const std::string name = "f" + std::to_string(rng() % 24);
      const int op = int(rng() % 10);
      auto found = k.lookup(name);
      if (!found.ok()) {
        REQUIRE(found.status().is_not_found());
        model[name] = {};
        k.create(name);
        continue;
      }
      const uint64_t ino = found.value();
      std::vector<char>& m = model[name];
      if (op <= 4) {  // write somewhere, often past the end
        const uint64_t off = rng() % (600 * 1024);
        auto d = pattern(1 + rng() % (300 * 1024), uint32_t(rng()));
        k.write(ino, off, d);
        if (m.size() < off + d.size()) m.resize(off + d.size(), 0);
        std::copy(d.begin(), d.end(), m.begin() + long(off));
      } else if (op == 5) {  // truncate
        SetAttr sa;
        sa.size = true;
        sa.new_size = rng() % (700 * 1024);
        REQUIRE(fs->setattr(ino, sa).ok());
        m.resize(sa.new_size, 0);
      } else if (op == 6) {
        REQUIRE(fs->unlink(kFirstInode, name).ok());
        model.erase(name);
      } else if (op == 7) {
        REQUIRE(fs->sync().ok());
      } else if (op == 8) {
        (void)fs->writeback().flush_all(false);  // writeback in flight when the kernel forgets
      } else {
        CHECK(read_all(*fs, ino) == m);
      }
      k.forget_all();
    }
    for (auto& [name, m] : model) {
      auto e = k.lookup(name);
      REQUIRE(e.ok());
      CHECK(read_all(*fs, e.value()) == m);
    }
    k.forget_all();
    REQUIRE(fs->unmount().ok());
  }
  check_clean(img.path);
  auto fs = img.mount(o);
  check_files(*fs, model);
  REQUIRE(fs->unmount().ok());
}

TEST_CASE("The inode table stays bounded: unused inodes ask for a commit and leave after it", "[inodes]") {
  TempImage img;
  MountOptions o;
  o.unused_inode_bound = 64;
  auto fs = img.mount(o);
  std::atomic<int> requests{0};
  fs->set_commit_request_hook([&requests] { requests++; });
  Kernel k(*fs);
  for (int i = 0; i < 300; i++) {
    const uint64_t ino = k.create("f" + std::to_string(i));
    k.write(ino, 0, pattern(5000, uint32_t(i)));
  }
  k.forget_all();
  // Dirty (items and pages): they stay, and the table asked once for a commit.
  CHECK(fs->inode_table_stats().unused >= 300);
  CHECK(requests.load() == 1);
  REQUIRE(fs->sync().ok());
  auto st = fs->inode_table_stats();
  CHECK(st.unused == 0);
  CHECK(st.resident == 1);  // the root
  // Loaded only for a moment (no lookup reference): gone at the next sweep.
  for (int i = 0; i < 300; i++) REQUIRE(fs->getattr(k.lookup("f" + std::to_string(i)).value()).ok());
  k.forget_all();  // clean: evicted at once
  CHECK(fs->inode_table_stats().resident == 1);
  REQUIRE(fs->unmount().ok());
}

TEST_CASE("Idle inodes the kernel holds are parked as a lookup count, and come back whole", "[inodes]") {
  TempImage img;
  MountOptions o;
  o.resident_inode_bound = 64;
  auto fs = img.mount(o);
  Kernel k(*fs);
  std::map<std::string, std::vector<char>> model;
  std::vector<uint64_t> inos;
  for (int i = 0; i < 400; i++) {
    const std::string name = "f" + std::to_string(i);
    const uint64_t ino = k.create(name);
    model[name] = pattern(3000 + i, uint32_t(i));
    k.write(ino, 0, model[name]);
    inos.push_back(ino);
  }
  REQUIRE(fs->sync().ok());
  // Every file looked up twice more (the kernel holds three references
  // each): the table parks the idle ones and stays near its bound.
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 400; i++) REQUIRE(k.lookup("f" + std::to_string(i)).value() == inos[size_t(i)]);
  auto st = fs->inode_table_stats();
  INFO("resident " << st.resident << " parked " << st.parked);
  CHECK(st.resident <= 64 + 64 / 4 + 2);
  CHECK(st.parked + st.resident >= 400);
  CHECK(st.parked_total >= 336);
  // A parked inode loads again with its attributes and data, and with the
  // kernel's references: unlinking one the kernel holds makes an orphan,
  // which is deleted only when the kernel forgets it.
  check_files(*fs, model);
  for (int i = 0; i < 400; i += 2) {
    const std::string name = "f" + std::to_string(i);
    if (i % 4 == 0) {
      REQUIRE(fs->unlink(kFirstInode, name).ok());
      model.erase(name);
      auto a = fs->getattr(inos[size_t(i)]);
      REQUIRE(a.ok());  // still referenced: an orphan, not gone
      CHECK(a->nlink == 0);
    } else {
      // Writes to a file that was parked, then parked again.
      model[name] = pattern(9000, uint32_t(i) + 7);
      k.write(inos[size_t(i)], 0, model[name]);
    }
    for (int j = 1; j < 400; j += 2) REQUIRE(k.lookup("f" + std::to_string(j)).ok());
  }
  REQUIRE(fs->sync().ok());
  check_files(*fs, model);
  // The kernel lets go of everything: parked counts drop to nothing, the
  // orphans are deleted.
  k.forget_all();
  st = fs->inode_table_stats();
  CHECK(st.parked == 0);
  REQUIRE(fs->sync().ok());
  CHECK(fs->inode_table_stats().resident == 1);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
}

TEST_CASE("Dirty tree nodes past half the node cache ask for a commit", "[inodes]") {
  // Renames spread over a directory dirty a leaf each; the node cache
  // bounds clean nodes only, so the dirty ones must end with a commit
  // before the period does.
  for (bool small_cache : {true, false}) {
    INFO((small_cache ? "node cache 256 KiB (bound: 64 nodes)" : "node cache 64 MiB (bound: 2048 nodes)"));
    TempImage img;
    MountOptions o;
    if (small_cache) o.node_cache_bytes = 256 << 10;
    auto fs = img.mount(o);
    Kernel k(*fs);
    const std::string pad(120, 'n');
    for (int i = 0; i < 3000; i++) k.create(pad + std::to_string(i));
    k.forget_all();
    REQUIRE(fs->sync().ok());
    std::atomic<int> requests{0};
    fs->set_commit_request_hook([&requests] { requests++; });
    for (int round = 0; round < 2; round++) {
      for (int i = round; i < 3000; i += 10)
        REQUIRE(fs->rename(kFirstInode, pad + std::to_string(i), kFirstInode, "r" + std::to_string(i), 0).ok());
      if (small_cache) CHECK(requests.load() == round + 1);  // once until the commit, then again
      else CHECK(requests.load() == 0);
      REQUIRE(fs->sync().ok());
    }
    REQUIRE(fs->unmount().ok());
    check_clean(img.path);
  }
}

TEST_CASE("Ordered extents that dirty tree nodes past the bound ask for a commit", "[inodes]") {
  // Random writes over a large file reach the tree from the completion
  // workers, not through modify(): writeback alone must also end with a
  // commit request before the period does.
  for (bool small_cache : {true, false}) {
    INFO((small_cache ? "node cache 256 KiB (bound: 64 nodes)" : "node cache 64 MiB (bound: 2048 nodes)"));
    TempImage img;
    MountOptions o;
    if (small_cache) o.node_cache_bytes = 256 << 10;
    // No background writeback tick during the test (a slow build, ASan,
    // would otherwise write some extents back before the flush below;
    // either way only completions put them in the tree).
    o.writeback.interval_seconds = 3600;
    auto fs = img.mount(o);
    Kernel k(*fs);
    const uint64_t ino = k.create("f");
    REQUIRE(fs->sync().ok());
    std::atomic<int> requests{0};
    fs->set_commit_request_hook([&requests] { requests++; });
    // Every other block: 12,000 extents that cannot merge, each with its
    // own EXTENT_DATA and checksum items: some 200 dirty 16 KiB nodes, three
    // times the small cache's bound of 64 (4,000 extents came too close
    // to it: how leaves split depends on the order completions arrive).
    const std::vector<char> block = pattern(4096, 7);
    REQUIRE(fs->open(ino, false).ok());
    for (uint64_t i = 0; i < 12000; i++) REQUIRE(fs->write(ino, 2 * i * 4096, block.data(), block.size()).value() == 4096);
    REQUIRE(fs->writeback().flush_all(true).ok());
    if (small_cache) CHECK(requests.load() == 1);  // once until the commit
    else CHECK(requests.load() == 0);
    REQUIRE(fs->sync().ok());
    fs->release(ino);
    k.forget_all();
    REQUIRE(fs->unmount().ok());
    check_clean(img.path);
  }
}

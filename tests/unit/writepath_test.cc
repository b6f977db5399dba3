// The write path's machinery: completion workers (order kept, nothing lost,
// drain), the checksum pool, io_uring I/O, the ordered extent's count of
// two, csum=sync and csum=async agreeing, and I/O errors reaching fsync
// without touching the committed state.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <latch>
#include <map>
#include <random>
#include <thread>

#include "check/checker.h"
#include "csum/checksum_pool.h"
#include "io/completion_workers.h"
#include "io/io_engine.h"
#include "util/aligned_buffer.h"
#include "test_helpers.h"
#include "vfs/filesystem.h"

using namespace cairn;
using cairn::test::TempImage;
using cairn::test::check_clean;
using cairn::test::pattern;

namespace {

struct SeqItem : CompletionItem {
  int producer, seq;
  std::vector<std::vector<int>>* seen;
  SeqItem(int p, int s, std::vector<std::vector<int>>* v) : producer(p), seq(s), seen(v) {}
  void complete() override {
    (*seen)[size_t(producer)].push_back(seq);
    delete this;
  }
};

}  // namespace

TEST_CASE("Completion workers keep order per queue, lose nothing, drain", "[writepath]") {
  constexpr int kProducers = 4, kEach = 50000;
  std::vector<std::vector<int>> seen(kProducers);
  {
    CompletionWorkers w(2);
    std::vector<std::thread> ts;
    // All producers feed worker 0: its single thread runs items serially,
    // and each producer's items must come out in the order queued.
    for (int p = 0; p < kProducers; p++)
      ts.emplace_back([&, p] {
        for (int i = 0; i < kEach; i++) w.queue(new SeqItem(p, i, &seen), 0);
      });
    for (auto& t : ts) t.join();
    w.drain();
    CHECK(w.completed() == uint64_t(kProducers * kEach));
    // Wake-ups happen only on empty -> non-empty: far fewer than items.
    CHECK(w.wakeups() < uint64_t(kProducers * kEach));
  }
  for (int p = 0; p < kProducers; p++) {
    REQUIRE(seen[size_t(p)].size() == size_t(kEach));
    for (int i = 0; i < kEach; i++) REQUIRE(seen[size_t(p)][size_t(i)] == i);
  }
}

TEST_CASE("Completion workers drain at shutdown", "[writepath]") {
  std::atomic<int> ran{0};
  struct Slow : CompletionItem {
    std::atomic<int>* n;
    explicit Slow(std::atomic<int>* c) : n(c) {}
    void complete() override {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      (*n)++;
      delete this;
    }
  };
  {
    CompletionWorkers w(3);
    for (int i = 0; i < 3000; i++) w.queue(new Slow(&ran), uint64_t(i));
  }  // destructor drains
  CHECK(ran.load() == 3000);
}

TEST_CASE("Checksum pool runs every job, including those queued at shutdown", "[writepath]") {
  std::atomic<int> n{0};
  {
    ChecksumPool pool(2);
    for (int i = 0; i < 5000; i++) pool.submit([&n] { n++; });
  }
  CHECK(n.load() == 5000);
}

TEST_CASE("io_uring engine writes and reads, and injected errors complete with EIO", "[writepath][io]") {
  char tmpl[] = "/tmp/cairn-io-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, 16 << 20) == 0);
  close(fd);
  auto io = IoEngine::open(tmpl, false, IoEngineOptions{});
  REQUIRE(io.ok());
  AlignedBuffer a(1 << 20), b(1 << 20);
  for (size_t i = 0; i < a.size(); i++) a.data()[i] = uint8_t(i * 13);
  REQUIRE(io.value()->write_sync(4 << 20, a.data(), a.size()).ok());
  REQUIRE(io.value()->read_sync(4 << 20, b.data(), b.size()).ok());
  CHECK(std::memcmp(a.data(), b.data(), a.size()) == 0);
  io.value()->inject_write_errors(true);
  CHECK(io.value()->write_sync(0, a.data(), 4096).code() == EIO);
  io.value()->inject_write_errors(false);
  CHECK(io.value()->write_sync(0, a.data(), 4096).ok());
  io.value().reset();
  unlink(tmpl);
}

TEST_CASE("An ordered extent finishes only when both I/O and checksums are done", "[writepath]") {
  TempImage img;
  MountOptions o;
  o.writeback.csum_mode = CsumMode::kAsync;
  o.writeback.csum_threads = 1;
  auto fs = img.mount(o);
  Caller c;
  auto e = fs->mknod(kFirstInode, "f", S_IFREG | 0644, 0, c);
  REQUIRE(e.ok());
  REQUIRE(fs->open(e->ino, false).ok());
  auto data = pattern(1 << 20, 1);
  REQUIRE(fs->write(e->ino, 0, data.data(), data.size()).ok());
  // Occupy the only checksum thread, so the checksum half cannot finish.
  std::latch hold(1), started(1);
  fs->writeback().pool().submit([&] {
    started.count_down();
    hold.wait();
  });
  started.wait();
  auto in = fs->inode_ref(e->ino);
  REQUIRE(in.ok());
  const uint64_t io_before = fs->io().completions();
  REQUIRE(fs->writeback().flush_inode(in.value(), false).ok());
  for (int i = 0; i < 500 && fs->io().completions() == io_before; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(fs->io().completions() > io_before);  // the data write is done...
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    std::lock_guard lk(fs->engine().mutex());  // ...but nothing is recorded without checksums
    CHECK(fs->engine().tree(kFsTreeId).lookup(Key{e->ino, kExtentData, 0}).status().is_not_found());
  }
  {
    std::lock_guard ck(in.value()->cache.mu);
    CHECK(in.value()->cache.inflight_extents == 1);
  }
  hold.count_down();
  REQUIRE(fs->writeback().flush_inode(in.value(), true).ok());
  {
    std::lock_guard lk(fs->engine().mutex());
    CHECK(fs->engine().tree(kFsTreeId).lookup(Key{e->ino, kExtentData, 0}).ok());
  }
  std::vector<char> back(data.size());
  REQUIRE(fs->read(e->ino, 0, back.size(), back.data()).value() == back.size());
  CHECK(back == data);
  fs->release(e->ino);
  REQUIRE(fs->unmount().ok());
}

namespace {
// File extents (without generations) and checksum items: what must not
// depend on when checksums were computed.
std::map<Key, Bytes> layout(Filesystem& fs) {
  std::map<Key, Bytes> out;
  std::lock_guard lk(fs.engine().mutex());
  for (uint64_t id : {kFsTreeId, kCsumTreeId}) {
    BTree t = fs.engine().tree(id);
    Cursor c = t.cursor();
    REQUIRE(c.seek(Key::Min()).ok());
    for (; c.valid(); c.advance()) {
      if (id == kFsTreeId && c.key().type != kExtentData) continue;
      Bytes b = c.data();
      if (id == kFsTreeId) std::fill(b.begin(), b.begin() + 8, 0);  // generation
      out[c.key()] = b;
    }
    REQUIRE(c.status().ok());
  }
  return out;
}
}  // namespace

TEST_CASE("csum=sync and csum=async give identical extents and checksums", "[writepath]") {
  std::map<Key, Bytes> results[2];
  int i = 0;
  for (CsumMode m : {CsumMode::kSync, CsumMode::kAsync}) {
    TempImage img;
    MountOptions o;
    o.writeback.csum_mode = m;
    auto fs = img.mount(o);
    Caller c;
    for (int f = 0; f < 4; f++) {
      auto e = fs->mknod(kFirstInode, "f" + std::to_string(f), S_IFREG | 0644, 0, c);
      REQUIRE(e.ok());
      auto data = pattern(size_t(300000 + f * 777777), uint32_t(f));
      for (size_t off = 0; off < data.size(); off += 131072)
        REQUIRE(fs->write(e->ino, off, data.data() + off, std::min<size_t>(131072, data.size() - off)).ok());
      REQUIRE(fs->fsync(e->ino, false).ok());
    }
    results[i++] = layout(*fs);
    REQUIRE(fs->unmount().ok());
    fs.reset();
    check_clean(img.path);
  }
  CHECK(results[0].size() > 4);
  CHECK(results[0] == results[1]);
}

TEST_CASE("csum=auto checksums awaited extents on the pool and background writeback in the flushing thread",
          "[writepath]") {
  TempImage img;
  auto fs = img.mount();  // csum=auto
  Caller c;
  auto e = fs->mknod(kFirstInode, "f", S_IFREG | 0644, 0, c);
  REQUIRE(e.ok());
  auto in = fs->inode_ref(e->ino);
  REQUIRE(in.ok());
  const auto data = pattern(8u << 20, 7);
  auto& st = fs->writeback().stats();

  // Background writeback (nobody waits): checksums before the write.
  REQUIRE(fs->write(e->ino, 0, data.data(), data.size()).ok());
  REQUIRE(fs->writeback().flush_inode(in.value(), false).ok());
  fs->writeback().workers().drain();
  REQUIRE(fs->writeback().flush_inode(in.value(), true).ok());  // (nothing left to write)
  CHECK(st.sync_csums.load() >= 2);
  CHECK(st.async_csums.load() == 0);

  // fsync waits: checksums beside the write (the background tick may
  // still take a part of it first).
  REQUIRE(fs->write(e->ino, 8u << 20, data.data(), data.size()).ok());
  REQUIRE(fs->fsync(e->ino, false).ok());
  CHECK(st.async_csums.load() >= 1);

  std::vector<char> back(16u << 20);
  REQUIRE(fs->read(e->ino, 0, back.size(), back.data()).value() == back.size());
  CHECK(std::equal(data.begin(), data.end(), back.begin()));
  CHECK(std::equal(data.begin(), data.end(), back.begin() + (8 << 20)));
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
}

TEST_CASE("A failed data write reaches fsync as EIO and the committed state stays intact", "[writepath][io]") {
  TempImage img;
  Caller c;
  auto good = pattern(200000, 7);
  uint64_t ino;
  {
    auto fs = img.mount();
    auto e = fs->mknod(kFirstInode, "f", S_IFREG | 0644, 0, c);
    REQUIRE(e.ok());
    ino = e->ino;
    REQUIRE(fs->write(ino, 0, good.data(), good.size()).ok());
    REQUIRE(fs->fsync(ino, false).ok());
    fs->io().inject_write_errors(true);
    auto bad = pattern(200000, 8);
    REQUIRE(fs->write(ino, 0, bad.data(), bad.size()).ok());  // cached: the error comes later
    CHECK(fs->fsync(ino, false).code() == EIO);
    fs->io().inject_write_errors(false);
    REQUIRE(fs->unmount().ok());
  }
  auto fs = img.mount();
  std::vector<char> back(good.size());
  REQUIRE(fs->read(ino, 0, back.size(), back.data()).value() == back.size());
  CHECK(back == good);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
}

// Reflinks (copy_file_range sharing blocks, `cairnctl clone`): random
// writes, clones within and between files, overwrites, truncates, punched
// holes, deletions and remounts against a model of every file's bytes;
// fsck after each remount checks the reference counts exactly (every
// EXTENT_ITEM's count and back references against the file extent items of
// every file, and every file's nbytes against its items), and at the end,
// with every file deleted, no data extent is left. Plus the space a clone
// takes (none), what a write to a clone takes (its blocks), what deleting
// one side gives back (nothing until the last), and an extent that runs
// out of room for references.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <vector>

#include "check/checker.h"
#include "data/file_data.h"
#include "test_helpers.h"
#include "vfs/filesystem.h"

using namespace cairn;
using cairn::test::TempImage;
using cairn::test::check_clean;
using cairn::test::check_report;
using cairn::test::pattern;
using cairn::test::load_file;
using CopyMode = Filesystem::CopyMode;

namespace {
constexpr uint64_t kB = 4096;

struct File {
  std::string name;
  uint64_t ino = 0;
  std::vector<char> bytes;
};

uint64_t data_available(Filesystem& fs) {
  std::lock_guard lk(fs.engine().mutex());
  return fs.engine().allocator().data_available();
}

uint64_t nbytes(Filesystem& fs, uint64_t ino) {
  auto a = fs.getattr(ino);
  REQUIRE(a.ok());
  return a->nbytes;
}

void expect_bytes(Filesystem& fs, const File& f) {
  INFO(f.name);
  std::vector<char> out(f.bytes.size() + kB);
  auto r = fs.read(f.ino, 0, out.size(), out.data());
  REQUIRE(r.ok());
  REQUIRE(r.value() == f.bytes.size());
  if (!f.bytes.empty()) REQUIRE(std::memcmp(out.data(), f.bytes.data(), f.bytes.size()) == 0);
}

void create(Filesystem& fs, File& f) {
  auto e = fs.mknod(kFirstInode, f.name, S_IFREG | 0644, 0, Caller{});
  REQUIRE(e.ok());
  f.ino = e->ino;
  f.bytes.clear();
}

void model_copy(const File& src, uint64_t off_in, File& dst, uint64_t off_out, size_t n) {
  if (n == 0) return;  // nothing to copy changes nothing, not even the size
  std::vector<char> piece(src.bytes.begin() + long(off_in), src.bytes.begin() + long(off_in + n));
  if (dst.bytes.size() < off_out + n) dst.bytes.resize(off_out + n, 0);
  std::copy(piece.begin(), piece.end(), dst.bytes.begin() + long(off_out));
}
}  // namespace

TEST_CASE("Reflinks against a model: clones, writes, truncates, punches, deletions and remounts", "[reflink]") {
  for (uint32_t seed : {21u, 22u, 23u}) {
    DYNAMIC_SECTION("seed " << seed) {
      std::mt19937 rng(seed);
      TempImage img(384ULL << 20);
      auto fs = img.mount();
      std::vector<File> files(4);
      for (size_t i = 0; i < files.size(); i++) {
        files[i].name = "f" + std::to_string(i);
        create(*fs, files[i]);
      }
      uint64_t shared_calls = 0, rejected = 0;
      // An offset in a file of `size` bytes: block-aligned most of the time.
      auto offset = [&](uint64_t size) {
        const uint64_t at = rng() % (size + 1);
        return rng() % 4 ? at / kB * kB : at;
      };
      std::string history;  // the last steps, for a failure's message
      for (int step = 0; step < 160; step++) {
        const unsigned op = rng() % 16;
        File& a = files[rng() % files.size()];
        File& b = files[rng() % files.size()];
        history = history.substr(history.size() > 600 ? history.size() - 600 : 0) + " | " + std::to_string(step) + ": op " +
                  std::to_string(op) + " " + a.name + " " + b.name + " sizes " + std::to_string(a.bytes.size()) + "," +
                  std::to_string(b.bytes.size());
        INFO(history);
        if (op < 4) {
          const uint64_t at = offset(std::max<uint64_t>(a.bytes.size(), 1u << 20));
          auto d = pattern(rng() % 3 ? 1 + rng() % 20000 : 1 + rng() % (1u << 20), seed * 1000 + unsigned(step));
          REQUIRE(fs->write(a.ino, at, d.data(), d.size()).ok());
          if (a.bytes.size() < at + d.size()) a.bytes.resize(at + d.size(), 0);
          std::copy(d.begin(), d.end(), a.bytes.begin() + long(at));
        } else if (op < 10) {
          // copy_file_range: shares what lines up, copies the rest.
          const bool share_only = op >= 8;
          const uint64_t off_in = share_only ? offset(a.bytes.size()) / kB * kB : offset(a.bytes.size());
          uint64_t off_out = offset(b.bytes.size() + (256u << 10));
          if (share_only || rng() % 2) off_out = off_out / kB * kB + off_in % kB;
          if (share_only) off_out = off_out / kB * kB;
          uint64_t len = 1 + rng() % (3u << 20);
          if (share_only && rng() % 2) len = (len + kB - 1) / kB * kB;
          const size_t n = off_in >= a.bytes.size() ? 0 : size_t(std::min<uint64_t>(len, a.bytes.size() - off_in));
          const bool overlap = a.ino == b.ino && n && off_in < off_out + n && off_out < off_in + n;
          const bool unaligned_len = share_only && n % kB && !(off_in + n == a.bytes.size() && off_out + n >= b.bytes.size());
          if (share_only) {
            // Everything in the tree first: then a clone allocates nothing.
            REQUIRE(fs->fsync(a.ino, false).ok());
            REQUIRE(fs->fsync(b.ino, false).ok());
          }
          const uint64_t avail = data_available(*fs);
          auto r = fs->copy_file_range(a.ino, off_in, b.ino, off_out, len, Caller{},
                                       share_only ? CopyMode::kShareOnly : CopyMode::kShareOrCopy);
          INFO("step " << step << ": " << a.name << "@" << off_in << " -> " << b.name << "@" << off_out << " len " << len
                       << (share_only ? " (clone)" : ""));
          if (n && (overlap || unaligned_len)) {
            REQUIRE(r.status().code() == EINVAL);
            rejected++;
          } else {
            REQUIRE(r.ok());
            REQUIRE(r.value() == n);
            model_copy(a, off_in, b, off_out, n);
            if (share_only) {
              CHECK(data_available(*fs) >= avail);
              shared_calls += n > 0;
            }
          }
        } else if (op < 12 && !a.bytes.empty()) {
          const uint64_t at = rng() % a.bytes.size(), len = 1 + rng() % (600u << 10);
          REQUIRE(fs->fallocate(a.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, len).ok());
          std::fill(a.bytes.begin() + long(at), a.bytes.begin() + long(std::min<uint64_t>(at + len, a.bytes.size())), 0);
        } else if (op == 12) {
          const uint64_t size = rng() % (a.bytes.size() + (256u << 10));
          SetAttr sa;
          sa.size = true;
          sa.new_size = size;
          REQUIRE(fs->setattr(a.ino, sa).ok());
          a.bytes.resize(size, 0);
        } else if (op == 13) {
          REQUIRE(fs->unlink(kFirstInode, a.name).ok());
          fs->forget(a.ino, 1);
          create(*fs, a);
        } else if (op == 15) {
          // Preallocated space: cloned as preallocated (it reads zeros in
          // both), and a write into it in either file is copy-on-write now.
          const uint64_t at = offset(a.bytes.size() + (512u << 10)), len = 1 + rng() % (1u << 20);
          const bool keep = rng() % 2;
          REQUIRE(fs->fallocate(a.ino, keep ? FALLOC_FL_KEEP_SIZE : 0, at, len).ok());
          if (!keep && a.bytes.size() < at + len) a.bytes.resize(at + len, 0);
        } else if (op == 14) {
          for (auto& f : files) fs->forget(f.ino, 1);
          REQUIRE(fs->unmount().ok());
          fs.reset();
          check_clean(img.path);
          fs = img.mount();
          for (auto& f : files) {
            auto e = fs->lookup(kFirstInode, f.name);
            REQUIRE(e.ok());
            REQUIRE(e->ino == f.ino);
          }
        }
        if (step % 8 == 0)
          for (auto& f : files) expect_bytes(*fs, f);
      }
      for (auto& f : files) expect_bytes(*fs, f);
      CHECK(shared_calls >= 5);
      CHECK(rejected >= 1);
      for (auto& f : files) fs->forget(f.ino, 1);
      REQUIRE(fs->unmount().ok());
      fs.reset();
      check_clean(img.path);
      // Every file deleted: every reference goes, and with the last one of
      // each extent, the extent.
      fs = img.mount();
      for (auto& f : files) REQUIRE(fs->unlink(kFirstInode, f.name).ok());
      REQUIRE(fs->unmount().ok());
      fs.reset();
      auto rep = check_report(img.path);
      REQUIRE(rep.clean());
      CHECK(rep.stats.data_extents == 0);
      CHECK(rep.stats.data_bytes == 0);
    }
  }
}

TEST_CASE("A clone takes no data space, a write to it takes its blocks, space returns with the last reference",
          "[reflink]") {
  TempImage img(256ULL << 20);
  auto fs = img.mount();
  auto data = pattern((8u << 20) + 1000, 7);  // ends inside a block
  auto src = fs->mknod(kFirstInode, "src", S_IFREG | 0644, 0, Caller{});
  REQUIRE(src.ok());
  REQUIRE(fs->write(src->ino, 0, data.data(), data.size()).ok());
  REQUIRE(fs->fsync(src->ino, false).ok());
  const uint64_t empty = data_available(*fs) + 8 * kB * 256 + kB;  // what the file holds: 8 MiB + one block
  const uint64_t before = data_available(*fs);
  auto dst = fs->mknod(kFirstInode, "dst", S_IFREG | 0644, 0, Caller{});
  REQUIRE(dst.ok());
  auto r = fs->copy_file_range(src->ino, 0, dst->ino, 0, data.size(), Caller{}, CopyMode::kShareOnly);
  REQUIRE(r.ok());
  REQUIRE(r.value() == data.size());
  CHECK(data_available(*fs) == before);
  // st_blocks counts a shared block in every file that holds it, as btrfs.
  CHECK(nbytes(*fs, dst->ino) == nbytes(*fs, src->ino));
  CHECK(nbytes(*fs, dst->ino) == 8 * kB * 256 + kB);
  File d{"dst", dst->ino, data};
  expect_bytes(*fs, d);

  // One block written in the copy: one block more in use; the source keeps its bytes.
  auto block = pattern(kB, 8);
  REQUIRE(fs->write(dst->ino, 5 * kB, block.data(), kB).ok());
  REQUIRE(fs->fsync(dst->ino, false).ok());
  CHECK(before - data_available(*fs) == kB);
  File s{"src", src->ino, data};
  expect_bytes(*fs, s);
  std::copy(block.begin(), block.end(), d.bytes.begin() + 5 * kB);
  expect_bytes(*fs, d);

  // Deleting the source frees nothing: the copy references every extent
  // (a disk extent stays whole while any part of it is referenced).
  fs->forget(src->ino, 1);
  REQUIRE(fs->unlink(kFirstInode, "src").ok());
  REQUIRE(fs->sync().ok());
  REQUIRE(fs->sync().ok());  // the first commit's frees become usable
  CHECK(before - data_available(*fs) == kB);
  expect_bytes(*fs, d);
  fs->forget(dst->ino, 1);
  REQUIRE(fs->unlink(kFirstInode, "dst").ok());
  REQUIRE(fs->sync().ok());
  REQUIRE(fs->sync().ok());
  CHECK(data_available(*fs) == empty);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
}

TEST_CASE("An extent full of references: copy_file_range copies, a clone refuses with EMLINK, nothing breaks",
          "[reflink]") {
  MkfsParams p;
  p.node_size = 4096;  // about 135 references fit in one extent item
  TempImage img(256ULL << 20, p);
  auto fs = img.mount();
  auto data = pattern(2 * kB, 9);
  const uint64_t src = cairn::test::new_file(*fs, "src", data);
  REQUIRE(fs->fsync(src, false).ok());
  int clones = 0;
  Status last;
  for (int i = 0; i < 400 && last.ok(); i++) {
    auto e = fs->mknod(kFirstInode, "c" + std::to_string(i), S_IFREG | 0644, 0, Caller{});
    REQUIRE(e.ok());
    auto r = fs->copy_file_range(src, 0, e->ino, 0, data.size(), Caller{}, CopyMode::kShareOnly);
    if (r.ok()) {
      REQUIRE(r.value() == data.size());
      clones++;
    } else {
      last = r.status();
    }
    fs->forget(e->ino, 1);
  }
  REQUIRE(last.code() == EMLINK);
  CHECK(clones >= 100);
  // copy_file_range still works: it copies what it cannot share.
  auto e = fs->mknod(kFirstInode, "copy", S_IFREG | 0644, 0, Caller{});
  REQUIRE(e.ok());
  const uint64_t before = data_available(*fs);
  auto r = fs->copy_file_range(src, 0, e->ino, 0, data.size(), Caller{}, CopyMode::kShareOrCopy);
  REQUIRE(r.ok());
  REQUIRE(r.value() == data.size());
  REQUIRE(fs->fsync(e->ino, false).ok());
  CHECK(before - data_available(*fs) == 2 * kB);
  File c{"copy", e->ino, data};
  expect_bytes(*fs, c);
  fs->forget(e->ino, 1);
  fs->forget(src, 1);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
}

namespace {

std::vector<char> read_all(Engine& e, FileState& f) {
  FileData data(e);
  std::vector<char> out(f.item.size + kB);
  auto r = data.read(f, 0, out.size(), out.data());
  REQUIRE(r.ok());
  out.resize(r.value());
  return out;
}
}  // namespace

TEST_CASE("Reflinks: a crash at every flush point leaves an fsck-clean image holding a committed state", "[reflink][crash]") {
  // Files with several extents each, made by the daemon's data path.
  MkfsParams p;
  p.node_size = 4096;  // more nodes per transaction, more flush points that matter
  TempImage img(96ULL << 20, p);
  std::vector<uint64_t> inos;
  std::vector<std::vector<char>> bytes;
  {
    auto fs = img.mount();
    for (int i = 0; i < 4; i++) {
      auto d = pattern(size_t(300000 + 250000 * i), 40u + unsigned(i));
      inos.push_back(cairn::test::new_file(*fs, "f" + std::to_string(i), d));
      REQUIRE(fs->fsync(inos.back(), false).ok());
      // A second extent in the middle, so files have several.
      auto mid = pattern(3 * kB, 50u + unsigned(i));
      REQUIRE(fs->write(inos.back(), 16 * kB, mid.data(), mid.size()).ok());
      std::copy(mid.begin(), mid.end(), d.begin() + 16 * kB);
      bytes.push_back(d);
      fs->forget(inos.back(), 1);
    }
    REQUIRE(fs->unmount().ok());
  }
  auto rec = std::make_shared<RecordingDevice>(img.contents());
  std::map<uint64_t, std::vector<std::vector<char>>> at_gen;
  std::map<uint64_t, size_t> durable_after;
  std::mt19937_64 rng(77);
  size_t clones = 0;
  {
    auto e = cairn::test::open_engine(rec);
    FileData data(*e);
    std::vector<std::unique_ptr<FileState>> files;
    for (uint64_t ino : inos) files.push_back(load_file(*e, ino));
    at_gen[e->last_committed()] = bytes;
    durable_after[e->last_committed()] = 0;
    for (int txn = 0; txn < 12; txn++) {
      for (int k = 0; k < 3; k++) {
        const size_t a = rng() % files.size(), b = rng() % files.size();
        FileState& src = *files[a];
        FileState& dst = *files[b];
        const uint64_t src_blocks = src.item.size / kB;
        if (src_blocks < 2) continue;
        const uint64_t off_in = (rng() % (src_blocks - 1)) * kB;
        const uint64_t len = (1 + rng() % std::min<uint64_t>(src_blocks - off_in / kB, 64)) * kB;
        const uint64_t off_out = (rng() % (dst.item.size / kB + 8)) * kB;
        if (a == b && off_in < off_out + len && off_out < off_in + len) continue;
        uint64_t done = 0;
        REQUIRE(data.clone_range(src, off_in, dst, off_out, len, &done).ok());
        REQUIRE(done == len);
        std::lock_guard lk(e->mutex());
        if (dst.item.size < off_out + len) dst.item.size = dst.disk_size = off_out + len;
        auto& m = bytes;
        std::vector<char> piece(m[a].begin() + long(off_in), m[a].begin() + long(off_in + len));
        if (m[b].size() < off_out + len) m[b].resize(off_out + len, 0);
        std::copy(piece.begin(), piece.end(), m[b].begin() + long(off_out));
        clones++;
      }
      // And a punched hole now and then: references dropped, extents freed.
      if (txn % 3 == 2) {
        const size_t j = rng() % files.size();
        FileState& f = *files[j];
        const uint64_t at = (rng() % (f.item.size / kB + 1)) * kB, len = (1 + rng() % 40) * kB;
        REQUIRE(data.punch_hole(f, at, len).ok());
        std::fill(bytes[j].begin() + long(std::min<uint64_t>(at, bytes[j].size())),
                      bytes[j].begin() + long(std::min<uint64_t>(at + len, bytes[j].size())), 0);
      }
      std::lock_guard lk(e->mutex());
      for (auto& f : files)
        if (f->dirty) {
          REQUIRE(e->tree(kFsTreeId).update(Key{f->ino, kInodeItem, 0}, f->item.encode()).ok());
          f->dirty = false;
        }
      REQUIRE(e->commit().ok());
      at_gen[e->last_committed()] = bytes;
      durable_after[e->last_committed()] = rec->ops().size();
    }
  }
  CHECK(clones >= 25);
  const size_t images = cairn::test::for_each_crash_image(*rec, durable_after, rng, [&](auto dev, uint64_t durable,
                                                                                         const std::string& what) {
    INFO(what);
    auto rep = check_filesystem(*dev);
    REQUIRE(rep.ok());
    for (auto& pr : rep->problems) UNSCOPED_INFO(pr.message);
    REQUIRE(rep->clean());
    auto e = cairn::test::open_engine(dev, true);
    const uint64_t gen = e->last_committed();
    REQUIRE(gen >= durable);
    REQUIRE(at_gen.count(gen));
    for (size_t i = 0; i < inos.size(); i++) {
      auto f = load_file(*e, inos[i]);
      REQUIRE(read_all(*e, *f) == at_gen[gen][i]);
    }
  });
  CHECK(images >= 30);
}

TEST_CASE("Writes over preallocated space a clone shares reserve space: a full disk refuses them, never writeback",
          "[reflink]") {
  TempImage img(128ULL << 20);
  auto fs = img.mount();
  auto f = fs->mknod(kFirstInode, "f", S_IFREG | 0644, 0, Caller{});
  REQUIRE(f.ok());
  REQUIRE(fs->fallocate(f->ino, 0, 0, 32ULL << 20).ok());
  auto g = fs->mknod(kFirstInode, "g", S_IFREG | 0644, 0, Caller{});
  REQUIRE(g.ok());
  auto r = fs->copy_file_range(f->ino, 0, g->ino, 0, 32ULL << 20, Caller{}, CopyMode::kShareOnly);
  REQUIRE(r.ok());
  // Fill the rest of the disk.
  auto fill = fs->mknod(kFirstInode, "fill", S_IFREG | 0644, 0, Caller{});
  REQUIRE(fill.ok());
  auto chunk = pattern(1 << 20, 3);
  for (uint64_t at = 0;; at += chunk.size()) {
    auto w = fs->write(fill->ino, at, chunk.data(), chunk.size());
    if (!w.ok()) {
      REQUIRE(w.status().code() == ENOSPC);
      break;
    }
    REQUIRE(fs->fsync(fill->ino, false).ok());
  }
  (void)fs->fsync(fill->ino, false);
  // The shared preallocated range of g cannot be written in place: each
  // page needs new space, and once there is none, write() says so.
  auto page = pattern(kB, 4);
  Status refused;
  for (uint64_t at = 0; at < (32ULL << 20) && refused.ok(); at += kB) {
    auto w = fs->write(g->ino, at, page.data(), page.size());
    if (!w.ok()) refused = w.status();
  }
  CHECK(refused.code() == ENOSPC);
  // What write() accepted reaches the disk.
  REQUIRE(fs->fsync(g->ino, false).ok());
  // f's preallocated space still reads zeros.
  std::vector<char> out(kB), zeros(kB, 0);
  REQUIRE(fs->read(f->ino, 0, kB, out.data()).ok());
  CHECK(out == zeros);
  for (uint64_t ino : {f->ino, g->ino, fill->ino}) fs->forget(ino, 1);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
}

// The fsync log (docs/design.md, "Fsync log"): its writes round-trip and
// refuse lies; replay after a crash at every flush point (and with torn
// sets of writes after it) gives every file a state it had at one of its
// durable points, never older than its last fsync or commit that returned;
// concurrent fsyncs share writes; the daemon's fsync uses it and a crash
// (the image as the log left it) keeps every fsynced byte.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <map>
#include <random>
#include <thread>

#include "check/checker.h"
#include "csum/checksum.h"
#include "log/fsync_log.h"
#include "log/log_replay.h"
#include "test_helpers.h"

using namespace cairn;
using namespace cairn::test;

namespace {

constexpr uint64_t kB = 4096;

// The write path in miniature, through the engine's device (so a recording
// device sees the data): a new extent for [off, off + data.size()), its
// data written but not flushed, its checksums, then the finish.
void write_data(Engine& e, FileData& d, FileState& f, uint64_t off, const std::vector<char>& data) {
  std::lock_guard lk(e.mutex());
  const uint64_t n = data.size();
  auto ext = d.alloc_extent_locked(n, n);
  REQUIRE(ext.ok());
  const uint64_t disk = ext->first;
  auto copies = e.chunk_map().map(disk, n);
  REQUIRE(copies.ok());
  for (uint64_t phys : copies.value()) REQUIRE(e.device().write(phys, data.data(), n).ok());
  const size_t cs = e.csum_size();
  std::vector<uint8_t> csums(n / kB * cs);
  for (uint64_t i = 0; i < n / kB; i++) {
    uint8_t sum[kMaxCsumSize];
    csum_compute(e.csum_type(), data.data() + i * kB, kB, sum);
    std::copy(sum, sum + cs, csums.begin() + long(i * cs));
  }
  REQUIRE(d.record_extent_locked(f, off, disk, n, csums.data()).ok());
  if (off + n > f.item.size) f.item.size = off + n;
  f.disk_size = std::max(f.disk_size, f.item.size);
}

// What the daemon's commit does first: every inode item into the tree.
void commit_files(Engine& e, const std::vector<std::unique_ptr<FileState>>& files) {
  std::lock_guard lk(e.mutex());
  for (auto& f : files) {
    f->item.transid = e.transid();
    REQUIRE(e.tree(kFsTreeId).update(Key{f->ino, kInodeItem, 0}, f->item.encode()).ok());
  }
  REQUIRE(e.commit(true).ok());
}

std::vector<char> contents(FileData& data, FileState& f) {
  std::vector<char> out(f.item.size + kB);
  auto r = data.read(f, 0, out.size(), out.data());
  REQUIRE(r.ok());
  out.resize(r.value());
  return out;
}

// Files made by the daemon (so that they exist in a commit), then unmounted.
std::vector<uint64_t> make_files(TempImage& img, int n, std::vector<std::vector<char>>* bytes) {
  std::vector<uint64_t> inos;
  auto fs = img.mount();
  for (int i = 0; i < n; i++) {
    auto d = pattern(size_t(40000 + 30000 * i), 70u + unsigned(i));
    inos.push_back(new_file(*fs, "f" + std::to_string(i), d));
    bytes->push_back(d);
    fs->forget(inos.back(), 1);
  }
  REQUIRE(fs->unmount().ok());
  return inos;
}

LogRecord sample_record() {
  LogRecord r;
  r.root = kFsTreeId;
  r.ino = 257;
  r.item.generation = 3;
  r.item.transid = 4;
  r.item.mode = S_IFREG | 0644;
  r.item.nlink = 1;
  r.item.size = 3 * kB;
  r.item.nbytes = 3 * kB;
  LoggedRange rg{0, 3 * kB, {}};
  LoggedPiece p;
  p.file_off = kB;
  p.extent.generation = 4;
  p.extent.ram_bytes = 2 * kB;
  p.extent.disk_bytenr = kFirstLogical + 64 * kB;
  p.extent.disk_num_bytes = 2 * kB;
  p.extent.num_bytes = 2 * kB;
  p.csums.assign(2 * 4, 0xab);
  rg.pieces.push_back(p);
  r.ranges.push_back(rg);
  return r;
}

}  // namespace

TEST_CASE("Fsync log: a write round-trips, and lies with valid checksums are refused", "[fsync_log]") {
  Superblock sb;
  sb.fsid[0] = 7;
  sb.generation = 3;
  sb.total_bytes = 1ULL << 30;
  sb.next_chunk_logical = kFirstLogical + (1ULL << 30);
  LogWrite w;
  w.generation = 3;
  w.seq = 2;
  w.logical = kFirstLogical + kB;
  w.next = kFirstLogical + 9 * kB;
  w.records = {sample_record(), sample_record()};
  w.records[1].ino = 300;
  Bytes b = w.encode(sb);
  REQUIRE(b.size() == w.encoded_size(sb.csum_type));
  REQUIRE(b.size() % kB == 0);
  REQUIRE(LogWrite::claimed_length(sb, b.data(), w.logical, 3, 2) == b.size());
  auto d = LogWrite::decode(sb, b.data(), b.size(), w.logical, 3, 2);
  REQUIRE(d.ok());
  REQUIRE(d->records.size() == 2);
  CHECK(d->next == w.next);
  CHECK(d->records[1].ino == 300);
  CHECK(d->records[0].ranges[0].pieces[0].csums == w.records[0].ranges[0].pieces[0].csums);
  CHECK(d->records[0].item.encode() == w.records[0].item.encode());
  // Another place in the chain, generation or address: not this write.
  CHECK(LogWrite::claimed_length(sb, b.data(), w.logical, 3, 3) == 0);
  CHECK(LogWrite::claimed_length(sb, b.data(), w.logical, 4, 2) == 0);
  CHECK(LogWrite::claimed_length(sb, b.data(), w.logical + kB, 3, 2) == 0);
  // A torn write fails its checksum.
  Bytes torn = b;
  torn[LogWrite::kHeaderSize + 5] ^= 1;
  CHECK(LogWrite::decode(sb, torn.data(), torn.size(), w.logical, 3, 2).status().code() == EUCLEAN);
  // Lies the checksum cannot catch, one field at a time.
  auto lying = [&](auto change) {
    LogWrite l = w;
    change(l.records[0]);
    Bytes lb = l.encode(sb);
    return LogWrite::decode(sb, lb.data(), lb.size(), l.logical, 3, 2).status().code();
  };
  CHECK(lying([](LogRecord& r) { r.item.mode = S_IFDIR | 0755; }) == EUCLEAN);
  CHECK(lying([](LogRecord& r) { r.ino = 1; }) == EUCLEAN);
  CHECK(lying([](LogRecord& r) { r.ranges[0].pieces[0].csums.pop_back(); }) == EUCLEAN);
  CHECK(lying([](LogRecord& r) { r.ranges[0].pieces[0].file_off = 2 * kB; }) == EUCLEAN);  // past its range
  CHECK(lying([](LogRecord& r) { r.ranges[0].end = 1; }) == EUCLEAN);
  CHECK(lying([](LogRecord& r) { r.ranges.push_back(r.ranges[0]); }) == EUCLEAN);  // overlapping ranges
  CHECK(lying([](LogRecord& r) { r.ranges[0].pieces[0].extent.disk_bytenr = 4096; }) == EUCLEAN);
  CHECK(lying([](LogRecord& r) { r.ranges[0].pieces[0].extent.generation = 99; }) == EUCLEAN);
  // Random bytes with a valid checksum: refused or decoded, never a crash.
  std::mt19937_64 rng(5);
  for (int i = 0; i < 3000; i++) {
    Bytes x = b;
    for (int k = 0; k < 1 + int(rng() % 4); k++) x[kMaxCsumSize + rng() % (x.size() - kMaxCsumSize)] = uint8_t(rng());
    uint8_t sum[kMaxCsumSize] = {};
    csum_compute(sb.csum_type, x.data() + kMaxCsumSize, x.size() - kMaxCsumSize, sum);
    std::copy(sum, sum + kMaxCsumSize, x.begin());
    auto r = LogWrite::decode(sb, x.data(), x.size(), w.logical, 3, 2);
    if (!r.ok()) CHECK(r.status().code() == EUCLEAN);
  }
}

TEST_CASE("Fsync log: a crash at every flush point keeps every fsynced file and half-applies nothing", "[fsync_log][crash]") {
  for (uint32_t profile : {kProfileSingle, kProfileDup}) {
    MkfsParams p;
    p.node_size = 4096;
    p.metadata_profile = profile;
    TempImage img(64ULL << 20, p);
    std::vector<std::vector<char>> model;
    const std::vector<uint64_t> inos = make_files(img, 3, &model);
    auto rec = std::make_shared<RecordingDevice>(img.contents());
    // Per file: (event, contents) at each point that made it durable.
    std::vector<std::vector<std::pair<uint64_t, std::vector<char>>>> durable(inos.size());
    std::map<uint64_t, size_t> durable_after;  // event -> recorded ops once it returned
    std::mt19937_64 rng(profile * 31 + 7);
    uint64_t logged = 0, fallbacks = 0;
    {
      auto e = open_engine(rec);
      FileData data(*e);
      FsyncLog log(*e);
      std::vector<std::unique_ptr<FileState>> files;
      for (uint64_t ino : inos) files.push_back(load_file(*e, ino));
      uint64_t event = 0;
      for (size_t i = 0; i < files.size(); i++) durable[i].push_back({event, model[i]});
      durable_after[event] = 0;
      commit_files(*e, files);  // a mount's first commit: the generation gets a log
      for (int round = 0; round < 45; round++) {
        for (int k = 0; k < 1 + int(rng() % 3); k++) {
          const size_t i = rng() % files.size();
          const uint64_t blocks = 1 + rng() % 4;
          const uint64_t off = (rng() % (model[i].size() / kB + 3)) * kB;
          auto bytes = pattern(blocks * kB, uint32_t(rng()));
          write_data(*e, data, *files[i], off, bytes);
          if (model[i].size() < off + bytes.size()) model[i].resize(off + bytes.size(), 0);
          std::copy(bytes.begin(), bytes.end(), model[i].begin() + long(off));
        }
        ++event;
        if (rng() % 8 == 0) {
          commit_files(*e, files);
          for (size_t i = 0; i < files.size(); i++) durable[i].push_back({event, model[i]});
        } else {
          const size_t i = rng() % files.size();
          auto r = log.persist(*files[i]);
          REQUIRE(r.ok());
          if (!r.value()) {
            fallbacks++;
            commit_files(*e, files);
            for (size_t j = 0; j < files.size(); j++) durable[j].push_back({event, model[j]});
          } else {
            logged++;
            durable[i].push_back({event, model[i]});
          }
        }
        durable_after[event] = rec->ops().size();
      }
    }
    CHECK(logged > 30);
    CHECK(fallbacks == 0);
    size_t images = for_each_crash_image(*rec, durable_after, rng,
                                         [&](std::shared_ptr<MemoryDevice> dev, uint64_t upto, const std::string& what) {
      INFO(what << " (events up to " << upto << " durable)");
      {
        auto e = open_engine(dev);
        FileData data(*e);
        ReplayReport rep;
        {
          std::lock_guard lk(e->mutex());
          Status st = replay_fsync_log(*e, data, &rep);
          INFO(st.message());
          REQUIRE(st.ok());
          REQUIRE(e->commit(true).ok());
        }
        for (size_t i = 0; i < inos.size(); i++) {
          auto f = load_file(*e, inos[i]);
          const auto got = contents(data, *f);
          // The newest durable point at or before `upto`, or any later one.
          size_t first = 0;
          for (size_t k = 0; k < durable[i].size(); k++)
            if (durable[i][k].first <= upto) first = k;
          bool match = false;
          for (size_t k = first; k < durable[i].size() && !match; k++) match = got == durable[i][k].second;
          INFO("file " << i << ": " << got.size() << " bytes, replayed " << rep.writes << " writes (" << rep.end << ")");
          CHECK(match);
        }
      }
      auto report = check_filesystem(*dev);
      REQUIRE(report.ok());
      for (auto& pr : report->problems) UNSCOPED_INFO(pr.code << ": " << pr.message);
      CHECK(report->clean());
    });
    CHECK(images > 100);
  }
}

TEST_CASE("Fsync log: concurrent fsyncs share log writes, and the image keeps each file's last fsync", "[fsync_log]") {
  MkfsParams p;
  TempImage img(128ULL << 20, p);
  std::vector<std::vector<char>> model;
  const std::vector<uint64_t> inos = make_files(img, 4, &model);
  std::vector<std::vector<char>> last(inos.size());
  FsyncLogStats st;
  std::vector<uint8_t> crashed;
  {
    auto dev = img.open_device();
    auto e = open_engine(dev);
    FileData data(*e);
    FsyncLog log(*e);
    std::vector<std::unique_ptr<FileState>> files;
    for (uint64_t ino : inos) files.push_back(load_file(*e, ino));
    commit_files(*e, files);
    std::vector<std::thread> workers;
    for (size_t i = 0; i < files.size(); i++)
      workers.emplace_back([&, i] {
        std::mt19937_64 rng(i);
        std::vector<char> m = model[i];
        for (int n = 0; n < 60; n++) {
          const uint64_t off = (rng() % (m.size() / kB + 2)) * kB;
          auto bytes = pattern(kB, uint32_t(rng()));
          write_data(*e, data, *files[i], off, bytes);
          if (m.size() < off + kB) m.resize(off + kB, 0);
          std::copy(bytes.begin(), bytes.end(), m.begin() + long(off));
          auto r = log.persist(*files[i]);
          REQUIRE(r.ok());
          REQUIRE(r.value());
        }
        last[i] = m;
      });
    for (auto& t : workers) t.join();
    st = log.stats();
    // A crash now: the image as the log writes left it, no commit since.
    crashed = img.contents();
  }
  CHECK(st.fsyncs == 240);
  CHECK(st.fallbacks == 0);
  CHECK(st.writes <= st.fsyncs);
  WARN("240 fsyncs from 4 threads in " << st.writes << " log writes");
  auto dev = std::make_shared<MemoryDevice>(crashed);
  auto e = open_engine(dev);
  FileData data(*e);
  ReplayReport rep;
  {
    std::lock_guard lk(e->mutex());
    REQUIRE(replay_fsync_log(*e, data, &rep).ok());
    REQUIRE(e->commit(true).ok());
  }
  CHECK(rep.writes == st.writes);
  CHECK(rep.files == 4);
  for (size_t i = 0; i < inos.size(); i++) {
    auto f = load_file(*e, inos[i]);
    CHECK(contents(data, *f) == last[i]);
  }
  e.reset();
  auto report = check_filesystem(*dev);
  REQUIRE(report.ok());
  CHECK(report->clean());
}

TEST_CASE("Fsync log: the daemon's fsync logs, and what the log cannot carry commits", "[fsync_log]") {
  TempImage img;
  std::vector<char> a = pattern(50000, 1), b = pattern(9000, 2);
  uint64_t ia = 0, ib = 0;
  std::vector<uint8_t> crashed;
  {
    auto fs = img.mount();
    ia = new_file(*fs, "a", a);
    REQUIRE(fs->fsync(ia, false).ok());  // new in this transaction: commits
    CHECK(fs->fsync_log_stats().fsyncs == 0);
    auto more = pattern(12000, 3);
    REQUIRE(fs->write(ia, 20000, more.data(), more.size()).ok());
    std::copy(more.begin(), more.end(), a.begin() + 20000);
    REQUIRE(fs->fsync(ia, true).ok());  // committed since: logged
    CHECK(fs->fsync_log_stats().fsyncs == 1);
    // Appends, then a rename: the name is not in the log, so it commits.
    auto tail = pattern(5000, 4);
    REQUIRE(fs->write(ia, a.size(), tail.data(), tail.size()).ok());
    a.insert(a.end(), tail.begin(), tail.end());
    REQUIRE(fs->fsync(ia, false).ok());
    CHECK(fs->fsync_log_stats().fsyncs == 2);
    ib = new_file(*fs, "b", b);
    REQUIRE(fs->rename(kFirstInode, "b", kFirstInode, "c", 0).ok());
    REQUIRE(fs->fsync(ib, false).ok());
    CHECK(fs->fsync_log_stats().fsyncs == 2);
    // Written after a's last fsync and never fsynced: lost in a crash,
    // though its data reached the disk; b's next fsync is logged alone.
    auto lost = pattern(4096, 5);
    REQUIRE(fs->write(ia, 0, lost.data(), lost.size()).ok());
    REQUIRE(fs->writeback().flush_all(true).ok());
    auto bmore = pattern(6000, 6);
    REQUIRE(fs->write(ib, 4096, bmore.data(), bmore.size()).ok());
    b.resize(std::max(b.size(), size_t(4096 + bmore.size())));
    std::copy(bmore.begin(), bmore.end(), b.begin() + 4096);
    REQUIRE(fs->fsync(ib, false).ok());
    CHECK(fs->fsync_log_stats().fsyncs == 3);
    crashed = img.contents();
    fs->forget(ia, 1);
    fs->forget(ib, 1);
  }
  auto path = img.path;
  {
    FILE* f = std::fopen(path.c_str(), "r+b");
    REQUIRE(f);
    REQUIRE(std::fwrite(crashed.data(), 1, crashed.size(), f) == crashed.size());
    std::fclose(f);
  }
  auto fs = img.mount();
  CHECK(fs->log_replay().records >= 1);
  auto ra = fs->lookup(kFirstInode, "a");
  auto rc = fs->lookup(kFirstInode, "c");
  REQUIRE(ra.ok());
  REQUIRE(rc.ok());
  std::vector<char> got(a.size() + 10);
  auto n = fs->read(ra->ino, 0, got.size(), got.data(), true);
  REQUIRE(n.ok());
  got.resize(n.value());
  CHECK(got == a);
  got.assign(b.size() + 10, 0);
  n = fs->read(rc->ino, 0, got.size(), got.data(), true);
  REQUIRE(n.ok());
  got.resize(n.value());
  CHECK(got == b);
  fs->forget(ra->ino, 1);
  fs->forget(rc->ino, 1);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(path);
}

TEST_CASE("Fsync log: a generation that logs more than metadata has free gets a chunk at the next commit", "[fsync_log]") {
  // 4 KiB per fsync'd 4 KiB write; the first metadata chunk is 8 MiB. Before
  // the commit grew metadata for the log, every generation ran out of
  // regions after a few MiB and each later fsync committed.
  TempImage img;
  std::map<std::string, std::vector<char>> model;
  std::vector<char>& data = model["f"];
  data = pattern(1 << 20, 9);
  std::mt19937_64 rng(17);
  std::vector<uint8_t> crashed;
  size_t chunks_before = 0, chunks_after = 0;
  {
    auto fs = img.mount();
    const uint64_t ino = new_file(*fs, "f", data);
    REQUIRE(fs->sync().ok());
    {
      std::lock_guard lk(fs->engine().mutex());
      chunks_before = fs->engine().chunk_map().chunks_of(kChunkMetadata).size();
    }
    auto round = [&] {
      for (int i = 0; i < 3000; i++) {
        const uint64_t off = rng() % (data.size() / kB) * kB;
        auto blk = pattern(kB, uint32_t(rng()));
        REQUIRE(fs->write(ino, off, blk.data(), blk.size()).ok());
        std::copy(blk.begin(), blk.end(), data.begin() + long(off));
        REQUIRE(fs->fsync(ino, true).ok());
      }
    };
    round();  // the log runs out, and the commits it falls back to grow metadata
    REQUIRE(fs->sync().ok());
    const FsyncLogStats first = fs->fsync_log_stats();
    round();  // 12 MiB of log in one generation: all of it fits
    const FsyncLogStats second = fs->fsync_log_stats();
    CHECK(second.fallback_no_log == first.fallback_no_log);
    CHECK(second.fsyncs - first.fsyncs == 3000);
    {
      std::lock_guard lk(fs->engine().mutex());
      chunks_after = fs->engine().chunk_map().chunks_of(kChunkMetadata).size();
    }
    CHECK(chunks_after > chunks_before);
    // A crash now: the log the last commit started, in a chunk that commit
    // created, is found and replayed.
    crashed = img.contents();
    fs->forget(ino, 1);
  }
  {
    FILE* f = std::fopen(img.path.c_str(), "r+b");
    REQUIRE(f);
    REQUIRE(std::fwrite(crashed.data(), 1, crashed.size(), f) == crashed.size());
    std::fclose(f);
  }
  auto fs = img.mount();
  CHECK(fs->log_replay().records >= 1);
  check_files(*fs, model);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
}

TEST_CASE("Fsync of a directory commits only when it changed since the last commit", "[fsync_log]") {
  TempImage img;
  std::vector<uint8_t> crashed;
  {
    auto fs = img.mount();
    const uint64_t root = kFirstInode;
    auto commits = [&] { return fs->commit_stats().commits; };
    const uint64_t ia = new_file(*fs, "a", pattern(5000, 1));
    const uint64_t c0 = commits();
    REQUIRE(fs->fsync(root, false).ok());  // a new name: commits
    CHECK(commits() == c0 + 1);
    REQUIRE(fs->fsync(root, false).ok());  // nothing since: durable already
    CHECK(commits() == c0 + 1);
    bool atime_changed = false;
    auto h = fs->opendir(root, &atime_changed);
    REQUIRE(h.ok());
    CHECK(atime_changed);                  // relatime: the mtime was newer
    REQUIRE(fs->fsync(root, true).ok());   // only the atime moved: nothing to commit
    CHECK(commits() == c0 + 1);
    REQUIRE(fs->rename(root, "a", root, "b", 0).ok());
    REQUIRE(fs->fsync(root, false).ok());  // a name changed: commits
    CHECK(commits() == c0 + 2);
    SetAttr sa;
    sa.mode = true;
    sa.new_mode = 0700;
    REQUIRE(fs->setattr(root, sa).ok());
    REQUIRE(fs->fsync(root, false).ok());  // its inode item changed: commits
    CHECK(commits() == c0 + 3);
    auto made = fs->mkdir(root, "d", 0755, Caller{});
    REQUIRE(made.ok());
    REQUIRE(fs->fsync(made->ino, false).ok());  // new in this transaction: commits
    CHECK(commits() == c0 + 4);
    REQUIRE(fs->fsync(made->ino, false).ok());
    CHECK(commits() == c0 + 4);
    // A crash after the fsyncs that did not commit: every name is there.
    crashed = img.contents();
    fs->forget(ia, 1);
    fs->forget(made->ino, 1);
  }
  {
    FILE* f = std::fopen(img.path.c_str(), "r+b");
    REQUIRE(f);
    REQUIRE(std::fwrite(crashed.data(), 1, crashed.size(), f) == crashed.size());
    std::fclose(f);
  }
  auto fs = img.mount();
  auto b = fs->lookup(kFirstInode, "b");
  REQUIRE(b.ok());
  CHECK(fs->lookup(kFirstInode, "a").status().code() == ENOENT);
  auto d = fs->lookup(kFirstInode, "d");
  REQUIRE(d.ok());
  fs->forget(b->ino, 1);
  fs->forget(d->ino, 1);
  REQUIRE(fs->unmount().ok());
  fs.reset();
  check_clean(img.path);
}

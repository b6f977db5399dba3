#include "scrub/scrubber.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <thread>

#include "csum/checksum.h"
#include "format/constants.h"
#include "format/node.h"
#include "util/aligned_buffer.h"

namespace cairn {

namespace {
constexpr uint64_t kSegment = 1ULL << 20;       // largest piece of an extent read as one unit
constexpr uint64_t kBatchBytes = 16ULL << 20;   // bytes read per batch, all copies counted (unthrottled)
constexpr uint64_t kMaxRead = 4ULL << 20;       // coalesced reads stop growing here
constexpr size_t kPipeline = 6;                 // batches being read at once
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

struct Scrubber::Unit {
  bool metadata = false;
  uint64_t logical = 0, len = 0;
  uint64_t ext_bytenr = 0, ext_len = 0;  // data: the extent item holding this piece
  uint8_t level = 0;                     // metadata: expected level and owner
  uint64_t owner = 0;
  std::vector<uint64_t> phys;            // one per copy
  std::vector<size_t> buf_off;           // where each copy lands in the batch buffer
  Bytes csums;
  std::vector<bool> present;
  std::vector<std::vector<uint32_t>> bad;  // per copy: bad sectors (metadata: {0} when bad)
  std::vector<bool> read_failed;           // per copy
};

struct Scrubber::Batch {
  struct Read {
    uint64_t phys = 0;
    size_t off = 0, len = 0;
    int copy = 0;
    size_t first_unit = 0, last_unit = 0;
    iovec iov{};
    IoRequest req;
    int64_t res = 0;
  };
  std::vector<Unit> units;
  std::deque<Read> reads;  // deque: addresses stay put while I/O is in flight
  AlignedBuffer buf;
  size_t used = 0;
  uint64_t end_position = 0;
  std::atomic<uint32_t> pending{0};
  void clear() {
    units.clear();
    reads.clear();
    used = 0;
  }
};

Scrubber::Scrubber(Engine& e, IoEngine& io, ScrubOptions opts, ScrubProgress resume_from)
    : e_(e), io_(io), opts_(std::move(opts)), position_(opts_.start), collect_pos_(opts_.start),
      progress_(resume_from) {
  progress_.position = position_;
  progress_.state = kScrubRunning;
  // Throttled: small batches, so the rate holds over short stretches too
  // (one batch is always in flight ahead of the throttle).
  if (opts_.limit_bytes_per_sec)
    batch_budget_ = std::clamp<uint64_t>(opts_.limit_bytes_per_sec / 8, kSegment, kBatchBytes);
  progress_.limit_bytes_per_sec = opts_.limit_bytes_per_sec;
  if (!progress_.started) progress_.started = int64_t(std::time(nullptr));
}

ScrubProgress Scrubber::progress() const {
  std::lock_guard lk(mu_);
  return progress_;
}

std::vector<ScrubError> Scrubber::errors() const {
  std::lock_guard lk(mu_);
  return errors_;
}

Status Scrubber::run_all() {
  return run([this](Batch& b) { return collect_extents(b); });
}

Status Scrubber::run_inode(uint64_t root, uint64_t ino) {
  return run([this, root, ino](Batch& b) { return collect_inode(b, root, ino); });
}

// ---- Collection (under the engine mutex) ----

Status Scrubber::add_data_unit(Batch& b, uint64_t ext_bytenr, uint64_t ext_len, uint64_t logical, uint64_t len) {
  Unit u;
  u.logical = logical;
  u.len = len;
  u.ext_bytenr = ext_bytenr;
  u.ext_len = ext_len;
  RETURN_IF_ERROR(e_.lookup_csums(logical, len / kSectorSize, &u.csums, &u.present));
  // Blocks without checksums (preallocated, never written) cannot be verified.
  if (std::none_of(u.present.begin(), u.present.end(), [](bool p) { return p; })) return Status::Ok();
  ASSIGN_OR_RETURN(u.phys, e_.chunk_map().map(logical, len));
  b.units.push_back(std::move(u));
  return Status::Ok();
}

Status Scrubber::collect_extents(Batch& b) {
  std::lock_guard lk(e_.mutex());
  drain_node_store_log();
  uint64_t bytes = 0;
  if (!chunk_tree_collected_) {
    // The chunk tree's nodes are not in the extent tree: verify them first
    // (a few dozen at most, so a resumed scrub simply does them again).
    chunk_tree_collected_ = true;
    ASSIGN_OR_RETURN(auto blocks, e_.chunk_tree_blocks());
    for (auto [addr, level] : blocks) {
      Unit u;
      u.metadata = true;
      u.logical = addr;
      u.len = e_.node_size();
      u.level = level;
      u.owner = kChunkTreeId;
      ASSIGN_OR_RETURN(u.phys, e_.chunk_map().map(u.logical, u.len));
      bytes += u.len * u.phys.size();
      b.units.push_back(std::move(u));
    }
  }
  BTree t = e_.tree(kExtentTreeId);
  Cursor c = t.cursor();
  // The extent covering collect_pos_, if any, is the last one starting at or below it.
  RETURN_IF_ERROR(c.seek_last_le(Key{collect_pos_, 0xFF, ~0ULL}));
  if (!c.valid()) RETURN_IF_ERROR(c.seek(Key::Min()));
  for (; c.valid(); c.advance()) {
    const Key k = c.key();
    if (k.type == kMetadataItem) {
      if (k.objectid < collect_pos_) continue;
      if (bytes >= batch_budget_) break;
      auto ei = ExtentItem::decode(c.data());
      Unit u;
      u.metadata = true;
      u.logical = k.objectid;
      u.len = e_.node_size();
      u.level = uint8_t(k.offset);
      u.owner = ei.ok() && !ei->backrefs.empty() ? ei->backrefs[0].root : 0;
      ASSIGN_OR_RETURN(u.phys, e_.chunk_map().map(u.logical, u.len));
      bytes += u.len * u.phys.size();
      b.units.push_back(std::move(u));
      collect_pos_ = k.objectid + e_.node_size();
    } else if (k.type == kExtentItem) {
      const uint64_t end = k.objectid + k.offset;
      if (end <= collect_pos_) continue;
      uint64_t seg = std::max(collect_pos_, k.objectid);
      while (seg < end && bytes < batch_budget_) {
        const uint64_t len = std::min(kSegment, end - seg);
        const size_t before = b.units.size();
        RETURN_IF_ERROR(add_data_unit(b, k.objectid, k.offset, seg, len));
        if (b.units.size() > before) bytes += len * b.units.back().phys.size();
        seg += len;
        collect_pos_ = seg;
      }
      if (seg < end) break;
    }
  }
  RETURN_IF_ERROR(c.status());
  if (!c.valid()) done_collecting_ = true;
  b.end_position = collect_pos_;
  return Status::Ok();
}

Status Scrubber::collect_inode(Batch& b, uint64_t root, uint64_t ino) {
  std::lock_guard lk(e_.mutex());
  if (!e_.has_tree(root)) return Status::NotFound("no such tree");
  uint64_t bytes = 0;
  BTree t = e_.tree(root);
  Cursor c = t.cursor();
  RETURN_IF_ERROR(c.seek_last_le(Key{ino, kExtentData, inode_cursor_}));
  if (!c.valid() || c.key().objectid != ino || c.key().type != kExtentData)
    RETURN_IF_ERROR(c.seek(Key{ino, kExtentData, inode_cursor_}));
  for (; c.valid() && c.key().objectid == ino && c.key().type == kExtentData; c.advance()) {
    const uint64_t foff = c.key().offset;
    auto fe = FileExtent::decode(c.data());
    if (!fe.ok()) return fe.status();
    if (fe->type != kFileExtentRegular || !fe->disk_bytenr) continue;
    const uint64_t end = foff + fe->num_bytes;
    if (end <= inode_cursor_) continue;
    uint64_t pos = std::max(inode_cursor_, foff);
    if (fe->compression != kCompressNone) {
      // Read whole: its checksums cover the compressed bytes, all of them
      // needed by any byte of the range.
      if (bytes >= batch_budget_) break;
      const size_t before = b.units.size();
      RETURN_IF_ERROR(add_data_unit(b, fe->disk_bytenr, fe->disk_num_bytes, fe->disk_bytenr, fe->disk_num_bytes));
      if (b.units.size() > before) bytes += fe->disk_num_bytes * b.units.back().phys.size();
      inode_cursor_ = end;
      continue;
    }
    while (pos < end && bytes < batch_budget_) {
      // File offset -> disk address inside the extent, whole sectors.
      const uint64_t disk = fe->disk_bytenr + fe->offset + (pos - foff);
      const uint64_t lo = disk / kSectorSize * kSectorSize;
      const uint64_t hi = std::min(fe->disk_bytenr + fe->disk_num_bytes,
                                   (std::min(disk + kSegment, fe->disk_bytenr + fe->offset + fe->num_bytes) + kSectorSize - 1) /
                                       kSectorSize * kSectorSize);
      const size_t before = b.units.size();
      RETURN_IF_ERROR(add_data_unit(b, fe->disk_bytenr, fe->disk_num_bytes, lo, hi - lo));
      if (b.units.size() > before) bytes += (hi - lo) * b.units.back().phys.size();
      pos += std::min(kSegment, end - pos);
      inode_cursor_ = pos;
    }
    if (pos < end) break;
  }
  RETURN_IF_ERROR(c.status());
  if (!c.valid() || c.key().objectid != ino || c.key().type != kExtentData) done_collecting_ = true;
  b.end_position = inode_cursor_;
  return Status::Ok();
}

// Bytes a batch reads (every copy).
uint64_t Scrubber::batch_bytes(const std::vector<Unit>& units) {
  uint64_t n = 0;
  for (auto& u : units) n += u.len * u.phys.size();
  return n;
}

// ---- Reading (io_uring, outside the mutex) ----

void Scrubber::submit(Batch& b) {
  b.buf.resize(std::max<size_t>(batch_bytes(b.units), 4096));
  size_t maxc = 0;
  for (auto& u : b.units) {
    maxc = std::max(maxc, u.phys.size());
    u.buf_off.assign(u.phys.size(), 0);
    u.bad.assign(u.phys.size(), {});
    u.read_failed.assign(u.phys.size(), false);
  }
  // Lay out copy 0 of every unit, then copy 1, ...: neighbouring units of
  // one copy are usually neighbours on disk too, and merge into one read.
  for (size_t c = 0; c < maxc; c++) {
    Batch::Read* cur = nullptr;
    for (size_t i = 0; i < b.units.size(); i++) {
      Unit& u = b.units[i];
      if (c >= u.phys.size()) continue;
      u.buf_off[c] = b.used;
      if (cur && cur->phys + cur->len == u.phys[c] && cur->off + cur->len == b.used && cur->len + u.len <= kMaxRead) {
        cur->len += u.len;
        cur->last_unit = i;
      } else {
        cur = &b.reads.emplace_back();
        cur->phys = u.phys[c];
        cur->off = b.used;
        cur->len = u.len;
        cur->copy = int(c);
        cur->first_unit = cur->last_unit = i;
      }
      b.used += u.len;
    }
  }
  b.pending.store(uint32_t(b.reads.size()));
  for (auto& r : b.reads) {
    r.iov = iovec{b.buf.data() + r.off, r.len};
    r.req.expected = r.len;
    // Runs on the reaper: record, count down, wake the scrub thread. Never blocks.
    r.req.done = [&b, &r](int64_t res) {
      r.res = res;
      if (b.pending.fetch_sub(1) == 1) b.pending.notify_all();
    };
    io_.submit_read(r.phys, &r.iov, 1, &r.req);
  }
}

void Scrubber::wait(Batch& b) {
  for (uint32_t n = b.pending.load(); n != 0; n = b.pending.load()) b.pending.wait(n);
}

void Scrubber::verify(Batch& b) {
  for (auto& r : b.reads) {
    if (r.res == int64_t(r.len)) continue;
    for (size_t i = r.first_unit; i <= r.last_unit; i++)
      if (size_t(r.copy) < b.units[i].phys.size()) b.units[i].read_failed[r.copy] = true;
  }
  const Uuid fsid = e_.super().fsid;
  const CsumType ct = e_.csum_type();
  const size_t cs = e_.csum_size();
  const uint32_t ns = e_.node_size();
  auto check = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
      Unit& u = b.units[i];
      for (size_t c = 0; c < u.phys.size(); c++) {
        const uint8_t* p = b.buf.data() + u.buf_off[c];
        if (u.metadata) {
          NodeExpectation ex;
          ex.bytenr = u.logical;
          ex.level = u.level;
          ex.owner = u.owner;
          if (u.read_failed[c] || !decode_node(p, fsid, ct, ns, ex).ok()) u.bad[c].push_back(0);
          continue;
        }
        for (uint32_t s = 0; s < u.len / kSectorSize; s++) {
          if (!u.present[s]) continue;
          if (u.read_failed[c] || !csum_verify(ct, p + uint64_t(s) * kSectorSize, kSectorSize, u.csums.data() + s * cs))
            u.bad[c].push_back(s);
        }
      }
    }
  };
  // Verification runs while the next batch is being read; a second thread
  // takes half of a large batch (slow checksums such as sha256).
  if (b.units.size() >= 8 && batch_bytes(b.units) >= (4ULL << 20)) {
    const size_t mid = b.units.size() / 2;
    auto half = std::async(std::launch::async, check, mid, b.units.size());
    check(0, mid);
    half.get();
  } else {
    check(0, b.units.size());
  }
}

// ---- Confirmation and repair (under the engine mutex) ----

void Scrubber::note(ScrubError err) {
  std::lock_guard lk(mu_);
  constexpr size_t kMaxErrorsKept = 100000;
  if (errors_.size() < kMaxErrorsKept) errors_.push_back(std::move(err));
}

void Scrubber::drain_node_store_log() {
  // Bad node copies the engine met on its own (mount, ordinary reads).
  for (const auto& bc : e_.store().take_bad_copies()) {
    if (!reported_.insert({bc.bytenr, bc.physical}).second) continue;
    ScrubError err;
    err.metadata = true;
    err.logical = bc.bytenr;
    err.length = e_.node_size();
    err.physical = bc.physical;
    err.corrected = bc.corrected;
    err.repairable = bc.had_good;
    err.detail = bc.corrected ? "bad node copy, rewritten from its good copy when read"
                 : bc.had_good ? "bad node copy, its other copy is good"
                               : "bad node copy, no good copy";
    count(err, bc.had_good);
    note(std::move(err));
  }
}

void Scrubber::count(const ScrubError& err, bool have_good) {
  std::lock_guard lk(mu_);
  (err.metadata ? progress_.meta_errors : progress_.data_errors)++;
  if (err.corrected) (err.metadata ? progress_.meta_corrected : progress_.data_corrected)++;
  else if (!have_good) (err.metadata ? progress_.meta_uncorrectable : progress_.data_uncorrectable)++;
}

void Scrubber::settle(ScrubError err, const uint8_t* good) {
  // Same position, the twin's bytes: the block stays allocated and its
  // contents do not change, so copy-on-write is not bypassed.
  if (good && opts_.repair && !e_.read_only()) err.corrected = e_.device().write(err.physical, good, err.length).ok();
  err.repairable = good != nullptr;
  count(err, good != nullptr);
  // Counted in the persistent device statistics too, as btrfs does.
  DevStats& ds = e_.dev_stats();
  ds.csum_errors++;
  if (err.corrected) ds.corrected++;
  else if (!good) ds.uncorrectable++;
  e_.note_stats_changed();
  note(std::move(err));
}

Status Scrubber::confirm_data(const Unit& u, uint64_t sector_off) {
  const uint64_t logical = u.logical + sector_off;
  std::vector<uint8_t> csum;
  std::vector<bool> present;
  RETURN_IF_ERROR(e_.lookup_csums(logical, 1, &csum, &present));
  const size_t cs = e_.csum_size();
  // The block was freed (and maybe reused) since it was read: not damage.
  if (!present[0] || std::memcmp(csum.data(), u.csums.data() + sector_off / kSectorSize * cs, cs) != 0)
    return Status::Ok();
  AlignedBuffer buf(kSectorSize), good(kSectorSize);
  std::vector<size_t> bad;
  std::vector<std::string> why(u.phys.size());
  bool have_good = false;
  for (size_t c = 0; c < u.phys.size(); c++) {
    Status st = e_.device().read(u.phys[c] + sector_off, buf.data(), kSectorSize);
    if (st.ok() && csum_verify(e_.csum_type(), buf.data(), kSectorSize, csum.data())) {
      if (!have_good) std::memcpy(good.data(), buf.data(), kSectorSize);
      have_good = true;
      continue;
    }
    why[c] = st.ok() ? "checksum mismatch" : "read error: " + st.message();
    if (!st.ok()) e_.dev_stats().read_errors++;
    bad.push_back(c);
  }
  if (bad.empty()) return Status::Ok();  // a transient failure, or a race with reuse
  auto files = files_using(e_, u.ext_bytenr, u.ext_len, logical, kSectorSize);
  for (size_t c : bad) {
    if (!reported_.insert({logical, u.phys[c] + sector_off}).second) continue;
    ScrubError err;
    err.logical = logical;
    err.length = kSectorSize;
    err.copy = int(c);
    err.physical = u.phys[c] + sector_off;
    err.detail = why[c];
    if (files.ok()) err.files = files.value();
    settle(std::move(err), have_good ? good.data() : nullptr);
  }
  return Status::Ok();
}

Status Scrubber::confirm_node(const Unit& u) {
  // Still a tree block? (It may have been freed and reused since.)
  NodeExpectation ex;
  ex.bytenr = u.logical;
  ex.level = u.level;
  if (u.owner == kChunkTreeId) {
    ASSIGN_OR_RETURN(auto blocks, e_.chunk_tree_blocks());
    if (std::find(blocks.begin(), blocks.end(), std::pair<uint64_t, uint8_t>{u.logical, u.level}) == blocks.end())
      return Status::Ok();
    ex.owner = kChunkTreeId;
  } else {
    auto item = e_.tree(kExtentTreeId).lookup(Key{u.logical, kMetadataItem, u.level});
    if (!item.ok()) return item.status().code() == ENOENT ? Status::Ok() : item.status();
    auto ei = ExtentItem::decode(item.value());
    ex.owner = ei.ok() && !ei->backrefs.empty() ? ei->backrefs[0].root : 0;
  }
  const uint32_t ns = e_.node_size();
  AlignedBuffer buf(ns), good(ns);
  std::vector<std::pair<size_t, std::string>> bad;
  bool have_good = false;
  for (size_t c = 0; c < u.phys.size(); c++) {
    Status st = e_.device().read(u.phys[c], buf.data(), ns);
    if (st.ok()) st = e_.store().decode(buf.data(), ex).status();
    if (st.ok()) {
      if (!have_good) std::memcpy(good.data(), buf.data(), ns);
      have_good = true;
    } else {
      bad.emplace_back(c, st.message());
    }
  }
  for (auto& [c, why] : bad) {
    if (!reported_.insert({u.logical, u.phys[c]}).second) continue;
    ScrubError err;
    err.metadata = true;
    err.logical = u.logical;
    err.length = ns;
    err.copy = int(c);
    err.physical = u.phys[c];
    err.detail = "tree " + std::to_string(ex.owner) + " level " + std::to_string(u.level) + ": " + why;
    settle(std::move(err), have_good ? good.data() : nullptr);
  }
  return Status::Ok();
}

Status Scrubber::confirm_and_repair(Batch& b) {
  bool any = false;
  for (auto& u : b.units)
    for (auto& v : u.bad) any |= !v.empty();
  if (!any) return Status::Ok();
  std::lock_guard lk(e_.mutex());
  for (auto& u : b.units) {
    if (u.metadata) {
      bool bad = false;
      for (auto& v : u.bad) bad |= !v.empty();
      if (bad) RETURN_IF_ERROR(confirm_node(u));
      continue;
    }
    std::vector<uint32_t> sectors;
    for (auto& v : u.bad) sectors.insert(sectors.end(), v.begin(), v.end());
    if (sectors.empty()) continue;
    auto item = e_.tree(kExtentTreeId).lookup(Key{u.ext_bytenr, kExtentItem, u.ext_len});
    if (!item.ok()) {
      if (item.status().code() == ENOENT) continue;  // freed since collected
      return item.status();
    }
    std::sort(sectors.begin(), sectors.end());
    sectors.erase(std::unique(sectors.begin(), sectors.end()), sectors.end());
    for (uint32_t s : sectors) RETURN_IF_ERROR(confirm_data(u, uint64_t(s) * kSectorSize));
  }
  return Status::Ok();
}

// ---- The loop ----

void Scrubber::throttle(uint64_t bytes_this_run, double elapsed_s) {
  if (!opts_.limit_bytes_per_sec) return;
  double due = double(bytes_this_run) / double(opts_.limit_bytes_per_sec);
  while (due > elapsed_s) {
    if (opts_.cancel && opts_.cancel->load()) return;
    double nap = std::min(0.1, due - elapsed_s);
    std::this_thread::sleep_for(std::chrono::duration<double>(nap));
    elapsed_s += nap;
  }
}

Status Scrubber::run(const std::function<Status(Batch&)>& collect) {
  const auto t0 = Clock::now();
  const uint64_t base_ms = progress_.duration_ms;
  uint64_t bytes_this_run = 0;
  auto finish = [&](uint8_t state) {
    std::lock_guard lk(mu_);
    progress_.state = state;
    progress_.duration_ms = base_ms + uint64_t(seconds_since(t0) * 1000);
  };
  // Batches in address order; up to kPipeline of them are being read while
  // the oldest is verified, so the device always has a deep queue.
  std::deque<std::unique_ptr<Batch>> inflight;
  std::vector<std::unique_ptr<Batch>> spare;  // buffers are reused: no page faults per batch
  Status st;
  for (;;) {
    const bool stop = opts_.cancel && opts_.cancel->load();
    while (st.ok() && !stop && !done_collecting_ && inflight.size() < kPipeline) {
      std::unique_ptr<Batch> b;
      if (spare.empty()) {
        b = std::make_unique<Batch>();
      } else {
        b = std::move(spare.back());
        spare.pop_back();
        b->clear();
      }
      st = collect(*b);
      if (!st.ok() || b->units.empty()) {  // empty: nothing verifiable in that stretch
        spare.push_back(std::move(b));
        continue;
      }
      submit(*b);
      inflight.push_back(std::move(b));
    }
    if (inflight.empty()) {
      if (stop && !done_collecting_) cancelled_ = true;
      break;
    }
    Batch& cur = *inflight.front();
    wait(cur);
    if (st.ok()) {
      verify(cur);
      st = confirm_and_repair(cur);
    }
    if (!st.ok()) {
      for (auto& b : inflight) wait(*b);
      finish(kScrubFailed);
      return st;
    }
    ScrubProgress snap;
    {
      std::lock_guard lk(mu_);
      for (auto& u : cur.units) {
        (u.metadata ? progress_.metadata_bytes : progress_.data_bytes) += u.len;
        if (u.metadata) progress_.metadata_nodes++;
        bytes_this_run += u.len;
      }
      position_ = cur.end_position;
      progress_.position = position_;
      progress_.duration_ms = base_ms + uint64_t(seconds_since(t0) * 1000);
      snap = progress_;
    }
    if (opts_.on_batch) opts_.on_batch(snap);
    spare.push_back(std::move(inflight.front()));
    inflight.pop_front();
    throttle(bytes_this_run, seconds_since(t0));
  }
  if (!st.ok()) {
    finish(kScrubFailed);
    return st;
  }
  {
    std::lock_guard lk(e_.mutex());
    drain_node_store_log();
  }
  finish(cancelled_ ? kScrubCancelled : kScrubFinished);
  return Status::Ok();
}

// ---- Report ----

const char* scrub_state_name(uint8_t state) {
  switch (state) {
    case kScrubRunning: return "running";
    case kScrubCancelled: return "cancelled";
    case kScrubFinished: return "finished";
    case kScrubFailed: return "failed";
  }
  return "never run";
}

nlohmann::json scrub_report_json(const ScrubProgress& p, const std::vector<ScrubError>& errors, uint64_t total_bytes,
                                 size_t max_errors) {
  nlohmann::json j;
  const uint64_t bytes = p.data_bytes + p.metadata_bytes;
  j["state"] = scrub_state_name(p.state);
  j["started"] = p.started;
  j["duration_s"] = double(p.duration_ms) / 1000.0;
  j["position"] = p.position;
  j["bytes_scrubbed"] = bytes;
  j["data_bytes"] = p.data_bytes;
  j["metadata_bytes"] = p.metadata_bytes;
  j["data_blocks"] = p.data_bytes / kSectorSize;
  j["metadata_blocks"] = p.metadata_nodes;
  j["total_bytes"] = total_bytes;
  j["speed_mib_s"] = p.duration_ms ? double(bytes) / (1 << 20) / (double(p.duration_ms) / 1000.0) : 0.0;
  j["limit_mib_s"] = double(p.limit_bytes_per_sec) / (1 << 20);
  j["errors"] = {
      {"data", {{"found", p.data_errors}, {"corrected", p.data_corrected}, {"uncorrectable", p.data_uncorrectable}}},
      {"metadata", {{"found", p.meta_errors}, {"corrected", p.meta_corrected}, {"uncorrectable", p.meta_uncorrectable}}}};
  j["damaged"] = nlohmann::json::array();
  for (size_t i = 0; i < errors.size() && i < max_errors; i++) {
    const ScrubError& e = errors[i];
    nlohmann::json d = {{"kind", e.metadata ? "metadata" : "data"}, {"logical", e.logical}, {"length", e.length},
                        {"copy", e.copy},  {"physical", e.physical},  {"corrected", e.corrected}, {"repairable", e.repairable},
                        {"detail", e.detail}};
    d["files"] = nlohmann::json::array();
    for (const auto& f : e.files)
      d["files"].push_back({{"inode", f.ino}, {"paths", f.paths}, {"offset", f.offset}, {"length", f.length}});
    j["damaged"].push_back(std::move(d));
  }
  if (errors.size() > max_errors) j["damaged_not_listed"] = errors.size() - max_errors;
  return j;
}

}  // namespace cairn

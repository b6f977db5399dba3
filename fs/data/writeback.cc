#include "data/writeback.h"

#include <pthread.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace cairn {

// One ordered extent: pages [first, first + pages.size()) of a file bound
// for disk extent `disk`. Its count starts at copies + 1 (one per device
// write, one for the checksums); the half that drops it to zero queues it.
struct Writeback::Ordered : CompletionItem {
  Writeback* wb = nullptr;
  std::shared_ptr<FileState> inode;
  uint64_t first = 0;                 // page index
  std::vector<PagePtr> pages;         // frozen pages: the saved description of the range
  bool dropbehind = false;            // some page asked to leave no trace in any cache
  bool awaited = false;               // someone waits for it (fsync, sync, truncate): latency counts
  std::vector<iovec> iov;
  uint64_t disk = 0;
  // The extent writes into preallocated (unwritten) space the file already
  // owns, not into a new allocation (FileData::unwritten_target_locked).
  bool into_unwritten = false;
  uint64_t reserved = 0;  // bytes of the writeback reservation its pages hold
  // Compression: what to try (set at submit for a cluster of at most
  // kMaxCompressedRam), and, once compressed, what went to disk. A cluster
  // that did not compress is `stored_raw` and is not tried again.
  CompressSpec compress;
  bool stored_raw = false;
  uint8_t compression = kCompressNone;
  AlignedBuffer encoded;  // the disk extent: header, payload, zeros
  uint64_t disk_len = 0;
  std::vector<uint8_t> csums;
  std::atomic<int> pending{0};
  std::atomic<int64_t> io_error{0};
  IoRequest io[2];

  uint64_t bytes() const { return pages.size() * kPageSize; }
  uint64_t disk_bytes() const { return compression ? disk_len : bytes(); }
  void half_done() {
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) wb->workers_.queue(this, inode->ino);
  }
  void complete() override { wb->finish(this); }
};

Writeback::Writeback(Engine& e, FileData& data, IoEngine& io, const WritebackOptions& opts)
    : e_(e),
      data_(data),
      io_(io),
      opts_(opts),
      pool_(opts.csum_threads ? opts.csum_threads : std::max(1u, std::thread::hardware_concurrency())),
      workers_(opts.completion_workers ? opts.completion_workers : std::max(1u, std::thread::hardware_concurrency())) {
  thread_ = std::thread([this] { background(); });
  pthread_setname_np(thread_.native_handle(), "cairn-writeback");
}

Writeback::~Writeback() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  kick_.notify_all();
  thread_.join();
  workers_.drain();
}

void Writeback::note_dirty(const std::shared_ptr<FileState>& in) {
  std::lock_guard lk(mu_);
  dirty_inodes_.insert(in);
}

Result<size_t> Writeback::write(const std::shared_ptr<FileState>& in, uint64_t off, const char* buf, size_t len,
                                bool dropbehind) {
  if (len == 0) return size_t(0);
  std::unique_lock writer(in->cache.write_mu);
  const uint64_t first = off / kPageSize, last = (off + len - 1) / kPageSize;
  uint64_t size;
  {
    std::lock_guard lk(e_.mutex());
    size = in->item.size;
  }
  // Partial pages not in the cache start from what the file holds now.
  // Read outside the cache lock; a page present at the check may be gone
  // (written back) by the time we lock, so the check is repeated under it.
  std::map<uint64_t, PagePtr> fill;
  auto partial = [&](uint64_t idx) {
    return ((idx == first && off % kPageSize) || (idx == last && (off + len) % kPageSize)) && idx * kPageSize < size;
  };
  auto read_fills = [&]() -> Status {
    for (uint64_t idx : {first, last}) {
      if (!partial(idx) || fill.count(idx)) continue;
      {
        std::lock_guard ck(in->cache.mu);
        if (in->cache.pages.count(idx)) continue;
      }
      PagePtr p = new_page();
      std::memset(p->bytes, 0, kPageSize);
      RETURN_IF_ERROR(data_.read(*in, idx * kPageSize, kPageSize, reinterpret_cast<char*>(p->bytes)).status());
      fill[idx] = p;
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(read_fills());
  // What holds each block on disk, for the pages that are not dirty yet
  // (a write to pages already dirty, the common small append, looks at
  // nothing): preallocated blocks are written in place and need no space,
  // and only blocks over holes count in st_blocks while dirty.
  bool all_dirty = true;
  {
    std::lock_guard ck(in->cache.mu);
    for (uint64_t idx = first; idx <= last && all_dirty; idx++) {
      auto it = in->cache.pages.find(idx);
      all_dirty = it != in->cache.pages.end() && it->second.dirty;
    }
  }
  std::vector<BlockSpace> space;
  // Space for what becomes dirty is reserved now, so writeback cannot hit
  // ENOSPC after write() has reported success.
  uint64_t worst = 0;
  {
    std::lock_guard lk(e_.mutex());
    if (!all_dirty) {
      RETURN_IF_ERROR(data_.block_space_locked(*in, first, last, &space));
      for (BlockSpace s : space) worst += s == BlockSpace::kUnwritten ? 0 : kPageSize;
    }
    auto have = [&] { return e_.allocator().data_available() + e_.allocator().pinned_data_bytes(); };
    if (worst && have() < reserved_.load() + worst) return Status::NoSpace("no space left on device");
    reserved_ += worst;
  }
  uint64_t newly_reserved = 0, newly_dirty = 0;
  for (;;) {
    std::unique_lock ck(in->cache.mu);
    FileCache& c = in->cache;
    bool missing = false;
    for (uint64_t idx : {first, last})
      if (partial(idx) && !c.pages.count(idx) && !fill.count(idx)) missing = true;
    if (missing) {
      ck.unlock();
      Status st = read_fills();
      if (!st.ok()) {
        release_reservation(worst);
        return st;
      }
      continue;
    }
    for (uint64_t idx = first; idx <= last; idx++) {
      CachedPage& cp = c.pages[idx];
      if (!cp.page) {
        auto f = fill.find(idx);
        if (f != fill.end()) {
          cp.page = f->second;
        } else {
          // A new page: zeros where this write does not reach (a page
          // past the end of the file, or over a hole).
          cp.page = new_page();
          const uint64_t ps = idx * kPageSize, s = std::max(ps, off) - ps, e = std::min(ps + kPageSize, off + len) - ps;
          std::memset(cp.page->bytes, 0, s);
          std::memset(cp.page->bytes + e, 0, kPageSize - e);
        }
        cached_bytes_ += kPageSize;
      } else if (cp.writeback) {
        // Frozen: its bytes are being checksummed and written. Copy it.
        PagePtr copy = new_page();
        std::memcpy(copy->bytes, cp.page->bytes, kPageSize);
        cp.page = copy;
        cp.writeback = false;
        cached_bytes_ += kPageSize;
      }
      const uint64_t ps = idx * kPageSize, s = std::max(ps, off), e = std::min(ps + kPageSize, off + len);
      std::memcpy(cp.page->bytes + (s - ps), buf + (s - off), e - s);
      cp.dropbehind = dropbehind;
      if (!cp.dirty) {
        cp.dirty = true;
        c.dirty_pages++;
        newly_dirty++;
        // Unknown (it was dirty at the look-up and has gone to writeback
        // since), or an older version in flight that will have made the
        // block written data by the time this one goes: allocate anew.
        cp.space = space.empty() ? BlockSpace::kWritten : space[idx - first];
        if (cp.space == BlockSpace::kUnwritten && c.inflight.count(idx)) cp.space = BlockSpace::kWritten;
        if (cp.reserved()) {
          if (newly_reserved * kPageSize < worst) newly_reserved++;
          else reserved_ += kPageSize;  // not counted in `worst`: taken now
        }
        if (cp.space == BlockSpace::kHole) c.dirty_hole_pages++;
      }
    }
    break;
  }
  release_reservation(worst - newly_reserved * kPageSize);
  dirty_bytes_ += newly_dirty * kPageSize;
  {
    std::lock_guard lk(e_.mutex());
    if (off + len > in->item.size) in->item.size = off + len;
  }
  note_dirty(in);
  if (dropbehind) {
    // Promptly, not on the timer: the point is to not hold the data.
    RETURN_IF_ERROR(flush_inode(in, false));
  }
  // Memory bound: start writeback early, and make writers wait at the limit.
  if (dirty_bytes_.load() > opts_.dirty_limit / 4) {
    {
      std::lock_guard lk(mu_);
      kicked_ = true;
    }
    kick_.notify_one();
  }
  writer.unlock();
  if (dirty_bytes_.load() > opts_.dirty_limit) {
    RETURN_IF_ERROR(flush_inode(in, false));
    std::unique_lock lk(mu_);
    progress_.wait_for(lk, std::chrono::seconds(5), [&] { return dirty_bytes_.load() <= opts_.dirty_limit || stop_; });
  }
  return len;
}

Status Writeback::flush_inode(const std::shared_ptr<FileState>& in, bool wait) {
  for (;;) {
    std::vector<Ordered*> batch;
    bool skipped = false;
    {
      std::lock_guard ck(in->cache.mu);
      FileCache& c = in->cache;
      Ordered* cur = nullptr;
      const uint64_t max_pages = opts_.max_extent / kPageSize;
      for (auto& [idx, cp] : c.pages) {
        if (!cp.dirty) {
          cur = nullptr;
          continue;
        }
        if (c.inflight.count(idx)) {
          // Its older version is still being written: next round.
          skipped = true;
          cur = nullptr;
          continue;
        }
        if (!cur || cur->first + cur->pages.size() != idx || cur->pages.size() >= max_pages) {
          cur = new Ordered();
          cur->wb = this;
          cur->inode = in;
          cur->first = idx;
          cur->awaited = wait;
          batch.push_back(cur);
        }
        cp.dirty = false;
        cp.writeback = true;
        c.dirty_pages--;
        if (cp.space == BlockSpace::kHole) c.dirty_hole_pages--;
        if (cp.reserved()) cur->reserved += kPageSize;
        c.inflight.insert(idx);
        cur->pages.push_back(cp.page);
        cur->dropbehind |= cp.dropbehind;
      }
      c.inflight_extents += uint32_t(batch.size());
      ordered_in_flight_ += batch.size();
    }
    for (Ordered* oe : batch) submit(oe);
    if (!wait) return Status::Ok();
    std::unique_lock ck(in->cache.mu);
    in->cache.cv.wait(ck, [&] { return in->cache.inflight_extents == 0; });
    if (!skipped && in->cache.dirty_pages == 0) return in->cache.error;
  }
}

namespace {
// Clusters in a row that did not compress before a file backs off: it then
// stores kCompressSkip clusters untried, twice as many after each further
// miss, at most kCompressSkipMax; one success and it is tried fully again.
constexpr uint32_t kCompressGiveUp = 8;
constexpr uint32_t kCompressSkip = 32, kCompressSkipMax = 1024;
}  // namespace

CompressSpec Writeback::compression_for(const FileState& in) const {
  const uint8_t own = inode_compress_type(in.item.flags);
  if (own == kInodeCompressNever) return {};
  CompressSpec s = opts_.compress;
  if (own == kCompressZstd || own == kCompressLz4) s = CompressSpec{own, inode_compress_level(in.item.flags)};
  else if (own) return {};  // a choice this code does not know: store as is
  return s;
}

void Writeback::submit(Ordered* oe) {
  FileState& in = *oe->inode;
  // Disk space: one contiguous extent; when free space is fragmented the
  // tail becomes an ordered extent of its own.
  std::vector<uint64_t> copies;
  Status st;
  Ordered* rest = nullptr;
  CompressSpec compress;
  {
    std::lock_guard lk(e_.mutex());
    // Preallocated space the file alone references holds no data anyone
    // can read (it reads as zeros until a file extent says otherwise), so
    // it is written in place; see docs/design.md, "Writes into
    // preallocated space". Otherwise a new extent, as always.
    Result<std::pair<uint64_t, uint64_t>> r = Status::NotFound("");
    auto unwritten = data_.unwritten_target_locked(in, oe->first * kPageSize, oe->bytes());
    if (!unwritten.ok()) {
      r = unwritten.status();
    } else if (unwritten.value()) {
      // Preallocated space is never compressed: it is written in place.
      r = *unwritten.value();
      oe->into_unwritten = true;
    } else if (!oe->stored_raw && oe->pages.size() > 1 && (compress = compression_for(in)).enabled()) {
      // Space is allocated once the compressed size is known
      // (compress_and_submit). A single page never saves a block.
    } else {
      r = data_.alloc_extent_locked(kPageSize, oe->bytes());
    }
    if (compress.enabled()) {
      // nothing allocated or mapped yet
    } else if (!r.ok()) {
      st = r.status();
    } else {
      // The rest's target (unwritten or not) is looked up at its own submit.
      if (r->second < oe->bytes()) rest = split_tail(oe, r->second / kPageSize);
      oe->disk = r->first;
      auto m = e_.chunk_map().map(r->first, r->second);
      if (m.ok()) copies = m.value();
      else st = m.status();
    }
  }
  if (compress.enabled()) {
    // Clusters of at most kMaxCompressedRam, compressed side by side on the
    // pool: the flushing thread only hands them over (seed 003), and a
    // random read later decodes one cluster at most.
    constexpr size_t kPer = kMaxCompressedRam / kPageSize;
    std::vector<Ordered*> clusters{oe};
    while (clusters.back()->pages.size() > kPer) clusters.push_back(split_tail(clusters.back(), kPer));
    uint64_t reservation = 0;
    for (Ordered* c : clusters) reservation += c->reserved;
    for (Ordered* c : clusters) {
      c->reserved = std::min(reservation, c->bytes());
      reservation -= c->reserved;
      c->compress = compress;
    }
    if (clusters.size() > 1) {
      std::lock_guard ck(in.cache.mu);
      in.cache.inflight_extents += uint32_t(clusters.size() - 1);
      ordered_in_flight_ += clusters.size() - 1;
    }
    for (Ordered* c : clusters) pool_.submit([this, c] { compress_and_submit(c); });
    return;
  }
  if (rest) {
    // Counted now, outside the engine mutex (lock order: cache before engine).
    std::lock_guard ck(in.cache.mu);
    in.cache.inflight_extents++;
    ordered_in_flight_++;
  }
  const uint64_t bytes = oe->bytes();
  // The space is taken now (or the extent failed). A split-off rest took
  // its share of the reservation along (split_tail): it allocates later,
  // outside this hold of the engine mutex, and a writer must not be
  // promised that space in between.
  release_reservation(oe->reserved);
  oe->reserved = 0;
  if (!st.ok()) {
    // No space or no mapping: the extent fails as a whole, pages stay lost.
    oe->io_error = -st.code();
    oe->disk = 0;
    oe->pending = 1;
    oe->half_done();
    if (rest) submit(rest);
    return;
  }
  stats_.extents++;
  stats_.bytes += bytes;
  oe->iov.resize(oe->pages.size());
  for (size_t i = 0; i < oe->pages.size(); i++) oe->iov[i] = iovec{oe->pages[i]->bytes, kPageSize};
  // csum=auto: on the pool when someone waits for this extent, so the
  // checksums and the write run side by side instead of one after the
  // other (seed 003; measured on 2 cores with sha256 and an fsync per 4 MiB:
  // async 1.2 times sync). Background and memory-pressure writeback
  // checksum in the flushing thread: a stream of extents already overlaps
  // one extent's checksums with the previous one's write, and on a machine
  // with no spare core the hand-off to the pool only costs (streaming
  // sha256, paired runs: async 0.81-0.90 of sync). docs/performance.md.
  const bool async = opts_.csum_mode == CsumMode::kAsync ||
                     (opts_.csum_mode == CsumMode::kAuto && oe->awaited && bytes >= 128 * 1024 && pool_.size() > 0);
  oe->pending = int(copies.size()) + 1;
  auto compute = [oe] {
    // From the saved page list: submission never touches it (seed 003's v2 race).
    const CsumType t = oe->wb->e_.csum_type();
    const size_t cs = csum_size(t);
    oe->csums.resize(oe->pages.size() * cs);
    uint8_t tmp[kMaxCsumSize];
    for (size_t i = 0; i < oe->pages.size(); i++) {
      csum_compute(t, oe->pages[i]->bytes, kPageSize, tmp);
      std::memcpy(oe->csums.data() + i * cs, tmp, cs);
    }
  };
  if (!async) {
    compute();
    stats_.sync_csums++;
  }
  write_copies(oe, copies);
  if (async) {
    stats_.async_csums++;
    pool_.submit([oe, compute] {
      compute();
      oe->half_done();
    });
  } else {
    oe->half_done();
  }
  if (rest) submit(rest);
}

void Writeback::compress_and_submit(Ordered* oe) {
  FileState& in = *oe->inode;
  const uint64_t bytes = oe->bytes();
  // Backing off: written as it is, untried.
  uint32_t skip = in.compress_skip.load(std::memory_order_relaxed);
  while (skip && !in.compress_skip.compare_exchange_weak(skip, skip - 1, std::memory_order_relaxed)) {
  }
  if (skip) {
    stats_.compress_skipped += bytes;
    oe->compress = {};
    oe->stored_raw = true;
    submit(oe);
    return;
  }
  // The pages are frozen (writeback) until the extent finishes: gathered
  // here, they are the bytes the checksums and the disk will hold.
  thread_local AlignedBuffer raw;
  raw.resize(bytes);
  for (size_t i = 0; i < oe->pages.size(); i++) std::memcpy(raw.data() + i * kPageSize, oe->pages[i]->bytes, kPageSize);
  const bool guess = likely_incompressible(raw.data(), bytes);
  const uint64_t disk_len = guess ? 0 : compress_extent(oe->compress, raw.data(), bytes, oe->encoded);
  if (disk_len == 0) {
    (guess ? stats_.compress_guessed : stats_.compress_rejected) += bytes;
    // After a back-off one miss is enough to back off again, for longer.
    const uint32_t backoffs = in.compress_backoffs.load(std::memory_order_relaxed);
    if (in.compress_misses.fetch_add(1, std::memory_order_relaxed) + 1 >= kCompressGiveUp || backoffs) {
      in.compress_misses.store(0, std::memory_order_relaxed);
      in.compress_skip.store(std::min(kCompressSkipMax, kCompressSkip << std::min(backoffs, 5u)),
                             std::memory_order_relaxed);
      in.compress_backoffs.fetch_add(1, std::memory_order_relaxed);
      stats_.compress_backoffs++;
    }
    oe->compress = {};
    oe->stored_raw = true;
    submit(oe);
    return;
  }
  in.compress_misses.store(0, std::memory_order_relaxed);
  in.compress_backoffs.store(0, std::memory_order_relaxed);
  // Checksums of what is on disk: scrub and read repair verify compressed
  // extents without decoding them.
  const CsumType t = e_.csum_type();
  oe->csums.resize(disk_len / kPageSize * csum_size(t));
  csum_sectors(t, oe->encoded.data(), disk_len, kPageSize, oe->csums.data());
  std::vector<uint64_t> copies;
  Status st;
  {
    std::lock_guard lk(e_.mutex());
    auto r = data_.alloc_extent_locked(disk_len, disk_len);
    if (r.ok()) {
      oe->disk = r->first;
      auto m = e_.chunk_map().map(r->first, disk_len);
      if (m.ok()) copies = m.value();
      else st = m.status();
    } else {
      st = r.status();
    }
  }
  release_reservation(oe->reserved);
  oe->reserved = 0;
  oe->compression = oe->compress.type;
  oe->disk_len = disk_len;
  if (!st.ok()) {
    oe->io_error = -st.code();
    oe->pending = 1;
    oe->half_done();
    return;
  }
  stats_.extents++;
  stats_.bytes += bytes;
  stats_.compressed_extents++;
  stats_.compressed_in += bytes;
  stats_.compressed_out += disk_len;
  oe->iov.assign(1, iovec{oe->encoded.data(), disk_len});
  oe->pending = int(copies.size());  // the checksums are done
  write_copies(oe, copies);
}

Writeback::Ordered* Writeback::split_tail(Ordered* oe, size_t keep) {
  Ordered* tail = new Ordered();
  tail->wb = this;
  tail->inode = oe->inode;
  tail->first = oe->first + keep;
  tail->pages.assign(oe->pages.begin() + long(keep), oe->pages.end());
  tail->dropbehind = oe->dropbehind;
  tail->awaited = oe->awaited;
  tail->stored_raw = oe->stored_raw;
  oe->pages.resize(keep);
  // The reservation goes with the pages not yet allocated: as much as the
  // tail could need, the rest stays (either is released at its allocation).
  tail->reserved = std::min(oe->reserved, tail->bytes());
  oe->reserved -= tail->reserved;
  return tail;
}

void Writeback::write_copies(Ordered* oe, const std::vector<uint64_t>& copies) {
  // The host's page cache must not keep the image's pages either (buffered
  // image I/O only: O_DIRECT never fills it).
  const int flags = oe->dropbehind && !io_.direct() ? kRwfDontcache : 0;
  if (flags) stats_.dontcache_writes++;
  for (size_t k = 0; k < copies.size(); k++) {
    oe->io[k].done = [oe](int64_t res) {
      if (res < 0) oe->io_error = res;
      oe->half_done();
    };
    io_.submit_write(copies[k], oe->iov.data(), int(oe->iov.size()), &oe->io[k], flags);
  }
}

void Writeback::finish(Ordered* oe) {
  FileState& in = *oe->inode;
  const uint64_t bytes = oe->bytes();
  {
    std::lock_guard ck(in.cache.mu);
    Status st;
    {
      std::lock_guard lk(e_.mutex());
      if (oe->io_error || in.cache.deleted) {
        // Preallocated space stays the file's (it still reads as zeros).
        if (oe->disk && !oe->into_unwritten) e_.release_unused_data(oe->disk, oe->disk_bytes());
        if (oe->io_error && !in.cache.deleted) {
          stats_.io_errors++;
          e_.dev_stats().write_errors++;
          e_.note_stats_changed();
          st = Status::IoError("writeback of inode " + std::to_string(in.ino) + " failed");
        }
      } else {
        const uint64_t at = oe->first * kPageSize;
        st = oe->into_unwritten ? data_.record_unwritten_locked(in, at, oe->disk, bytes, oe->csums.data())
             : oe->compression  ? data_.record_compressed_locked(in, at, oe->disk, oe->disk_len, bytes,
                                                                 oe->compression, oe->csums.data())
                                : data_.record_extent_locked(in, at, oe->disk, bytes, oe->csums.data());
        if (!st.ok()) e_.abort(st);
        if (after_record_) after_record_();
      }
    }
    if (!st.ok() && in.cache.error.ok()) in.cache.error = st;
    uint64_t dropped = 0;
    for (size_t i = 0; i < oe->pages.size(); i++) {
      const uint64_t idx = oe->first + i;
      in.cache.inflight.erase(idx);
      auto it = in.cache.pages.find(idx);
      // Clean now: the page leaves the daemon's cache, unless a newer copy replaced it.
      if (it != in.cache.pages.end() && it->second.page == oe->pages[i] && !it->second.dirty) {
        in.cache.pages.erase(it);
        dropped++;
      }
    }
    cached_bytes_ -= std::min<uint64_t>(cached_bytes_.load(), bytes);
    if (oe->dropbehind) stats_.dropped_behind += dropped;
    in.cache.inflight_extents--;
  }
  in.cache.cv.notify_all();
  dirty_bytes_ -= std::min<uint64_t>(dirty_bytes_.load(), bytes);
  delete oe;
  ordered_in_flight_--;
  progress_.notify_all();
}

void Writeback::wait_idle() {
  std::unique_lock lk(mu_);
  // finish() notifies without mu_, so a wake-up can be missed: poll as well.
  while (ordered_in_flight_.load() != 0) progress_.wait_for(lk, std::chrono::milliseconds(20));
}

Status Writeback::flush_all(bool wait) {
  std::vector<std::shared_ptr<FileState>> all;
  {
    std::lock_guard lk(mu_);
    all.assign(dirty_inodes_.begin(), dirty_inodes_.end());
    dirty_inodes_.clear();
  }
  Status first;
  for (auto& in : all) {
    Status st = flush_inode(in, wait);
    if (!st.ok() && first.ok()) first = st;
    if (!wait) {
      std::lock_guard ck(in->cache.mu);
      if (in->cache.dirty_pages || in->cache.inflight_extents) note_dirty(in);
    }
  }
  return first;
}

void Writeback::release_reservation(uint64_t bytes) {
  uint64_t cur = reserved_.load();
  while (!reserved_.compare_exchange_weak(cur, cur - std::min(cur, bytes))) {
  }
}

void Writeback::discard(FileState& in) {
  std::lock_guard ck(in.cache.mu);
  in.cache.deleted = true;
  uint64_t dropped = 0, reserved = 0;
  for (auto it = in.cache.pages.begin(); it != in.cache.pages.end();) {
    if (it->second.dirty) {
      dropped++;
      in.cache.dirty_pages--;
      if (it->second.space == BlockSpace::kHole) in.cache.dirty_hole_pages--;
      if (it->second.reserved()) reserved++;
    }
    if (!it->second.writeback) it = in.cache.pages.erase(it);
    else ++it;
  }
  dirty_bytes_ -= std::min<uint64_t>(dirty_bytes_.load(), dropped * kPageSize);
  cached_bytes_ -= std::min<uint64_t>(cached_bytes_.load(), dropped * kPageSize);
  release_reservation(reserved * kPageSize);
}

Status Writeback::take_error(FileState& in) {
  std::lock_guard ck(in.cache.mu);
  Status st = in.cache.error;
  in.cache.error = Status::Ok();
  return st;
}

void Writeback::background() {
  std::unique_lock lk(mu_);
  for (;;) {
    kick_.wait_for(lk, std::chrono::milliseconds(int(opts_.interval_seconds * 1000)), [this] { return stop_ || kicked_; });
    if (stop_) return;
    kicked_ = false;
    lk.unlock();
    (void)flush_all(false);
    lk.lock();
  }
}

}  // namespace cairn

#include "log/fsync_log.h"

#include <sys/stat.h>

#include <algorithm>

#include "format/constants.h"

namespace cairn {

namespace {
constexpr uint64_t kBlock = kSectorSize;
}

Result<std::optional<LogRecord>> FsyncLog::build_record_locked(FileState& in, LogRefusal* why) {
  auto refuse = [why](LogRefusal r) {
    if (why) *why = r;
    return std::optional<LogRecord>();
  };
  if (!S_ISREG(in.item.mode)) return refuse(LogRefusal::kUnloggable);
  // Names, xattrs, truncation, reflinks, a file created in this
  // transaction: the log carries none of it.
  if (in.log.needs_commit >= e_.transid()) return refuse(LogRefusal::kChanged);
  in.log.rebase(e_.last_committed());
  LogRecord r;
  r.root = in.root;
  r.ino = in.ino;
  r.item = in.item;
  r.item.size = std::min(in.item.size, in.disk_size);  // what is on disk, as a commit records it
  r.item.transid = e_.transid();
  const auto& uncommitted_chunks = e_.chunk_map().changed();
  BTree fs = e_.tree(in.root);
  for (auto [start, end] : in.log.written) {
    LoggedRange rg{start, end, {}};
    Cursor c = fs.cursor();
    RETURN_IF_ERROR(c.seek_last_le(Key{in.ino, kExtentData, start}));
    if (!c.valid() || c.key().objectid != in.ino || c.key().type != kExtentData)
      RETURN_IF_ERROR(c.seek(Key{in.ino, kExtentData, start}));
    for (; c.valid(); c.advance()) {
      const Key& k = c.key();
      if (k.objectid != in.ino || k.type != kExtentData || k.offset >= end) break;
      ASSIGN_OR_RETURN(FileExtent fe, FileExtent::decode(c.data()));
      if (fe.type == kFileExtentInline) return refuse(LogRefusal::kUnloggable);
      const uint64_t iend = k.offset + fe.num_bytes;
      if (iend <= start) continue;
      // Clipped to the range, as drop_extents_locked trims an item.
      const uint64_t s = std::max(start, k.offset), e = std::min(end, iend);
      fe.offset += s - k.offset;
      fe.num_bytes = e - s;
      LoggedPiece p{s, fe, {}};
      if (fe.type == kFileExtentRegular && fe.disk_bytenr != 0) {
        // Data in a chunk the last commit did not record could not be
        // found after a crash.
        const Chunk* ch = e_.chunk_map().find(fe.disk_bytenr);
        if (!ch || uncommitted_chunks.count(ch->logical)) return refuse(LogRefusal::kNewChunk);
        const bool whole = fe.compression != kCompressNone;
        const uint64_t at = whole ? fe.disk_bytenr : fe.disk_bytenr + fe.offset;
        const uint64_t n = (whole ? fe.disk_num_bytes : fe.num_bytes) / kBlock;
        std::vector<bool> present;
        RETURN_IF_ERROR(e_.lookup_csums(at, n, &p.csums, &present));
        if (std::find(present.begin(), present.end(), false) != present.end()) return refuse(LogRefusal::kUnloggable);
      }
      rg.pieces.push_back(std::move(p));
    }
    RETURN_IF_ERROR(c.status());
    r.ranges.push_back(std::move(rg));
  }
  return std::optional<LogRecord>(std::move(r));
}

Result<bool> FsyncLog::persist(FileState& in) {
  Waiter w{.in = &in};
  std::unique_lock lk(mu_);
  queue_.push_back(&w);
  while (!w.done) {
    if (leading_) {
      cv_.wait(lk);
      continue;
    }
    // Lead: log everyone queued so far in one write; later ones wait.
    leading_ = true;
    std::vector<Waiter*> batch;
    batch.swap(queue_);
    lk.unlock();
    run_batch(batch);
    lk.lock();
    for (Waiter* b : batch) {
      b->done = true;
      if (b->logged) {
        stats_.fsyncs++;
      } else if (b->status.ok()) {
        stats_.fallbacks++;
        stats_.*(b->fallback ? b->fallback : &FsyncLogStats::fallback_no_log) += 1;
      }
    }
    leading_ = false;
    cv_.notify_all();
  }
  if (!w.status.ok()) return w.status;
  return w.logged;
}

void FsyncLog::run_batch(const std::vector<Waiter*>& batch) {
  LogWrite lw;
  std::vector<Waiter*> carried;
  LogPlacement place;
  Bytes buf;
  {
    std::lock_guard lk(e_.mutex());
    if (e_.read_only() || e_.aborted()) return;  // nobody logged: they commit (and report why)
    std::vector<FileState*> files;  // each file once, even if fsynced twice
    size_t bytes = LogWrite::kHeaderSize;
    for (Waiter* w : batch) {
      if (std::find(files.begin(), files.end(), w->in) != files.end()) {
        carried.push_back(w);
        continue;
      }
      LogRefusal why = LogRefusal::kNone;
      auto r = build_record_locked(*w->in, &why);
      if (!r.ok()) {
        w->status = r.status();
        continue;
      }
      if (!r.value()) {
        w->fallback = why == LogRefusal::kChanged    ? &FsyncLogStats::fallback_changed
                      : why == LogRefusal::kNewChunk ? &FsyncLogStats::fallback_new_chunk
                                                     : &FsyncLogStats::fallback_unloggable;
        continue;
      }
      const size_t n = log_record_size(**r);
      if (bytes + n > LogWrite::kMaxBytes) {  // too big for one write: commits
        w->fallback = &FsyncLogStats::fallback_too_big;
        continue;
      }
      bytes += n;
      files.push_back(w->in);
      carried.push_back(w);
      lw.records.push_back(std::move(**r));
    }
    if (lw.records.empty()) return;
    auto p = e_.place_log_write((bytes + LogWrite::kBlock - 1) / LogWrite::kBlock * LogWrite::kBlock);
    if (!p.ok()) return;  // no log now: everyone commits
    place = std::move(p).value();
    lw.generation = place.generation;
    lw.seq = place.seq;
    lw.logical = place.logical;
    lw.next = place.next;
    buf = lw.encode(e_.super());
    // These ranges are in the log once the write is durable; if it is
    // not, everyone commits, and a commit needs no ranges.
    for (FileState* f : files) f->log.written.clear();
  }
  Status st;
  for (uint64_t phys : place.phys) {
    st = e_.device().write(phys, buf.data(), buf.size());
    if (!st.ok()) break;
  }
  // One flush makes the log write and the data it points at durable: the
  // data was written (not flushed) before, and replay checks the data of
  // the last write against its checksums before believing it.
  if (st.ok()) st = e_.device().flush();
  {
    std::lock_guard lk(e_.mutex());
    e_.log_write_done(st.ok());
  }
  {
    std::lock_guard lk(mu_);
    stats_.writes++;
    stats_.bytes += buf.size();
  }
  if (!st.ok()) return;  // the carried waiters commit
  for (Waiter* w : carried) w->logged = true;
}

FsyncLogStats FsyncLog::stats() {
  std::lock_guard lk(mu_);
  return stats_;
}

}  // namespace cairn

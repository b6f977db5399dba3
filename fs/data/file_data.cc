#include "data/file_data.h"

#include "compress/codec.h"
#include "util/aligned_buffer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <mutex>
#include <syslog.h>
#include <unistd.h>

namespace cairn {

namespace {
constexpr uint64_t kBlock = kSectorSize;
constexpr uint64_t kMaxFileOffset = 1ULL << 62;
uint64_t down(uint64_t v) { return v / kBlock * kBlock; }
uint64_t up(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }
Key ed_key(uint64_t ino, uint64_t off) { return Key{ino, kExtentData, off}; }
}  // namespace

// Position a cursor on the first EXTENT_DATA item of `ino` that may overlap `start`.
static Status seek_extents(Cursor& c, uint64_t ino, uint64_t start) {
  RETURN_IF_ERROR(c.seek_last_le(ed_key(ino, start)));
  if (!c.valid() || c.key().objectid != ino || c.key().type != kExtentData) RETURN_IF_ERROR(c.seek(ed_key(ino, start)));
  return Status::Ok();
}

Status FileData::map_locked(const FileState& in, uint64_t start, uint64_t end, std::vector<Piece>* out) {
  const uint64_t ino = in.ino;
  BTree fs = e_.tree(in.root);
  Cursor c = fs.cursor();
  RETURN_IF_ERROR(seek_extents(c, ino, start));
  for (; c.valid(); c.advance()) {
    const Key& k = c.key();
    if (k.objectid != ino || k.type != kExtentData || k.offset >= end) break;
    ASSIGN_OR_RETURN(FileExtent fe, FileExtent::decode(c.data()));
    if (fe.type == kFileExtentInline) continue;
    const uint64_t iend = k.offset + fe.num_bytes;
    if (iend <= start) continue;
    const uint64_t s = std::max(start, k.offset), e = std::min(end, iend);
    const bool has_data = fe.type == kFileExtentRegular && fe.disk_bytenr != 0;
    if (has_data && fe.compression != kCompressNone) {
      out->push_back(Piece{s, e - s, fe.disk_bytenr, fe.compression, fe.disk_num_bytes, fe.ram_bytes,
                           fe.offset + (s - k.offset)});
      continue;
    }
    out->push_back(Piece{s, e - s, has_data ? fe.disk_bytenr + fe.offset + (s - k.offset) : 0});
  }
  return c.status();
}

Status FileData::device_read(uint64_t phys, uint8_t* buf, uint64_t len) {
  // Data is read with O_DIRECT through io_uring (buffers and addresses are
  // 4 KiB aligned): the kernel's FUSE page cache already holds what readers
  // read, so the host's cache would hold the same bytes twice, and a
  // dropbehind file must leave no trace there at all. Measured: buffered
  // reads of the image paid a copy out of the host's cache that took 50-73 %
  // of the daemon's CPU, and ran at 0.8-1.1 GB/s on the first read after a
  // write against 1.2-1.3 GB/s for O_DIRECT (docs/performance.md). Images on
  // filesystems without O_DIRECT fall back to buffered reads.
  if (io_ && io_->direct()) return io_->read_sync(phys, buf, len);
  return e_.device().read(phys, buf, len);
}

Status FileData::read_verified(uint64_t ino, uint64_t file_off, uint64_t disk, uint64_t len, uint8_t* out,
                               const uint8_t* csums, const std::vector<bool>& present) {
  const size_t cs = e_.csum_size();
  std::vector<uint64_t> copies;
  {
    std::lock_guard lk(e_.mutex());
    ASSIGN_OR_RETURN(copies, e_.chunk_map().map(disk, len));
  }
  const Status st = device_read(copies[0], out, len);
  auto good = [&](uint64_t s) {
    const uint64_t idx = s / kBlock;
    return !present[idx] || csum_verify(e_.csum_type(), out + s, kBlock, csums + idx * cs);
  };
  if (st.ok()) {
    uint64_t s = 0;
    while (s < len && good(s)) s += kBlock;
    if (s == len) return Status::Ok();
  }

  // Something failed. The extent was mapped before the read and the locks
  // were dropped for it: if the file's blocks were replaced, committed and
  // reused meanwhile, these bytes belong to someone else now. That is not
  // damage, and "repairing" it would overwrite another file. So every
  // failure is confirmed under the engine mutex (nothing is freed or
  // allocated while it is held), as scrub does: the block's checksum item
  // must still be the one the read was verified against (freeing an extent
  // deletes its checksums). Device I/O under the mutex is accepted on this
  // path only: it runs when a block fails, not per read.
  std::lock_guard lk(e_.mutex());
  // Counters persist in the image (DEV_STATS) as btrfs device stats do.
  auto count = [&](std::atomic<uint64_t>& mine, uint64_t DevStats::*field) {
    mine++;
    e_.dev_stats().*field += 1;
    e_.note_stats_changed();
  };
  if (!st.ok()) count(stats_.read_errors, &DevStats::read_errors);
  AlignedBuffer alt(kBlock);
  for (uint64_t s = 0; s < len; s += kBlock) {
    const uint64_t idx = s / kBlock;
    if (st.ok() && good(s)) continue;
    std::vector<uint8_t> now;
    std::vector<bool> now_present;
    RETURN_IF_ERROR(e_.lookup_csums(disk + s, 1, &now, &now_present));
    if (now_present[0] != present[idx] || (present[idx] && std::memcmp(now.data(), csums + idx * cs, cs) != 0))
      return Status::Error(EAGAIN, "the extent changed during the read");
    if (st.ok()) count(stats_.csum_errors, &DevStats::csum_errors);
    // Another copy (DUP) may hold the good bytes.
    bool repaired = false;
    for (size_t k = 1; k < copies.size() && !repaired; k++) {
      if (!device_read(copies[k] + s, alt.data(), kBlock).ok()) continue;
      if (present[idx] && !csum_verify(e_.csum_type(), alt.data(), kBlock, csums + idx * cs)) continue;
      std::memcpy(out + s, alt.data(), kBlock);
      repaired = true;
      if (!e_.read_only() && e_.device().write(copies[0] + s, alt.data(), kBlock).ok())
        count(stats_.corrected, &DevStats::corrected);
    }
    if (repaired) continue;
    count(stats_.uncorrectable, &DevStats::uncorrectable);
    syslog(LOG_ERR, "cairn: %s: inode %llu offset %llu: %s", e_.device().name().c_str(),
           static_cast<unsigned long long>(ino), static_cast<unsigned long long>(file_off + s),
           st.ok() ? "checksum mismatch" : st.message().c_str());
    std::fprintf(stderr, "cairn: %s: inode %llu offset %llu: %s\n", e_.device().name().c_str(),
                 static_cast<unsigned long long>(ino), static_cast<unsigned long long>(file_off + s),
                 st.ok() ? "checksum mismatch, returning EIO" : st.message().c_str());
    return Status::IoError("checksum mismatch");
  }
  return Status::Ok();
}

Result<size_t> FileData::read_span(FileState& in, uint64_t off, size_t len, AlignedBuffer& span) {
  // Map and read again when an extent changed under the read (freed and
  // reused since it was mapped: read_verified); a few rounds always settle.
  for (int attempt = 1;; attempt++) {
    auto r = read_span_once(in, off, len, span);
    if (r.ok() || r.status().code() != EAGAIN) return r;
    if (attempt == 5) return Status::IoError("the file's extents kept changing during the read");
  }
}

Result<size_t> FileData::read_span_once(FileState& in, uint64_t off, size_t len, AlignedBuffer& span) {
  std::vector<Piece> pieces;
  struct Sums {
    std::vector<uint8_t> sums;
    std::vector<bool> present;
  };
  std::vector<Sums> sums;                            // per piece
  std::vector<std::pair<uint64_t, PagePtr>> cached;  // pages newer than the disk
  uint64_t size;
  {
    // Cache, extents and their checksums in one snapshot, under both
    // locks: an ordered extent finishing now either has not switched the
    // tree yet (its pages are still cached) or has and dropped them; either
    // way the bytes are the newest. The checksums must come from the same
    // snapshot as the extents: looked up later, an extent freed meanwhile
    // would have none left, and its blocks would be read unverified.
    std::lock_guard ck(in.cache.mu);
    std::lock_guard lk(e_.mutex());
    size = in.item.size;
    if (off >= size) return size_t(0);
    len = size_t(std::min<uint64_t>(len, size - off));
    for (auto it = in.cache.pages.lower_bound(off / kBlock); it != in.cache.pages.end() && it->first * kBlock < off + len; ++it)
      cached.push_back({it->first, it->second.page});
    RETURN_IF_ERROR(map_locked(in, down(off), up(off + len), &pieces));
    sums.resize(pieces.size());
    for (size_t i = 0; i < pieces.size(); i++) {
      const Piece& p = pieces[i];
      // A compressed piece is verified over its whole disk extent.
      const uint64_t blocks = (p.compression ? p.disk_len : p.len) / kBlock;
      if (p.disk) RETURN_IF_ERROR(e_.lookup_csums(p.disk, blocks, &sums[i].sums, &sums[i].present));
    }
  }
  if (read_hook_) read_hook_();
  // Whole blocks land at their place in the span: from the disk straight
  // into the buffer the caller sends from, with no copy and no clearing
  // beyond the holes.
  const uint64_t base = down(off), span_end = up(off + len);
  span.resize(span_end - base);
  uint8_t* const at = span.data();
  auto is_cached = [&](uint64_t block) {
    return std::any_of(cached.begin(), cached.end(), [&](auto& c) { return c.first == block; });
  };
  uint64_t filled = base;  // [base, filled) is placed
  for (size_t i = 0; i < pieces.size(); i++) {
    const Piece& p = pieces[i];
    if (p.file_off > filled) std::memset(at + (filled - base), 0, p.file_off - filled);
    filled = p.file_off + p.len;
    if (!p.disk) {
      std::memset(at + (p.file_off - base), 0, p.len);
      continue;
    }
    // Blocks the cache overrides need no disk read (and no verification).
    bool all_cached = true;
    for (uint64_t b = p.file_off; b < p.file_off + p.len && all_cached; b += kBlock) all_cached = is_cached(b / kBlock);
    if (all_cached) continue;
    if (p.compression) {
      RETURN_IF_ERROR(read_compressed(in.ino, p, at + (p.file_off - base), sums[i].sums.data(), sums[i].present));
      continue;
    }
    // Whole blocks: a checksum covers a block, so every block is verified
    // before any byte of it is returned.
    RETURN_IF_ERROR(read_verified(in.ino, p.file_off, p.disk, p.len, at + (p.file_off - base), sums[i].sums.data(),
                                  sums[i].present));
  }
  if (span_end > filled) std::memset(at + (filled - base), 0, span_end - filled);
  for (auto& [idx, page] : cached) std::memcpy(at + (idx * kBlock - base), page->bytes, kBlock);
  stats_.bytes_read += len;
  return len;
}

Status FileData::read_compressed(uint64_t ino, const Piece& p, uint8_t* out, const uint8_t* csums,
                                 const std::vector<bool>& present) {
  // Reused per thread: at most 128 KiB each (FileExtent::decode bounds both).
  thread_local AlignedBuffer encoded, decoded;
  encoded.resize(p.disk_len);
  decoded.resize(p.ram_bytes);
  // Checksums first, over the bytes on disk: damage is found (and repaired
  // from a good copy) before anything is decoded, so a decoder never sees
  // bytes that fail their checksums.
  RETURN_IF_ERROR(read_verified(ino, p.file_off, p.disk, p.disk_len, encoded.data(), csums, present));
  Status st = decompress_extent(p.compression, encoded.data(), p.disk_len, decoded.data(), p.ram_bytes);
  if (!st.ok()) {
    // Verified bytes that do not decode: written wrong, or a hostile image.
    stats_.uncorrectable++;
    syslog(LOG_ERR, "cairn: %s: inode %llu offset %llu: %s", e_.device().name().c_str(),
           static_cast<unsigned long long>(ino), static_cast<unsigned long long>(p.file_off), st.message().c_str());
    return Status::IoError(st.message());
  }
  std::memcpy(out, decoded.data() + p.ram_off, p.len);
  return Status::Ok();
}

Result<size_t> FileData::read(FileState& in, uint64_t off, size_t len, char* out) {
  // Reused per thread: no allocation and no page faults per call.
  thread_local AlignedBuffer span;
  ASSIGN_OR_RETURN(size_t n, read_span(in, off, len, span));
  if (n) std::memcpy(out, span.data() + off % kBlock, n);
  return n;
}

Status FileData::drop_extents_locked(FileState& in, uint64_t start, uint64_t end) {
  BTree fs = e_.tree(in.root);
  for (;;) {
    Cursor c = fs.cursor();
    RETURN_IF_ERROR(seek_extents(c, in.ino, start));
    std::optional<Key> hit;
    FileExtent fe;
    for (; c.valid(); c.advance()) {
      const Key& k = c.key();
      if (k.objectid != in.ino || k.type != kExtentData || k.offset >= end) break;
      ASSIGN_OR_RETURN(fe, FileExtent::decode(c.data()));
      if (k.offset + fe.num_bytes > start) {
        hit = k;
        break;
      }
    }
    RETURN_IF_ERROR(c.status());
    if (!hit) return Status::Ok();
    const uint64_t kofs = hit->offset, iend = kofs + fe.num_bytes;
    const bool counted = fe.type != kFileExtentInline && fe.disk_bytenr != 0;
    const uint64_t ref_base = kofs - fe.offset;  // back reference offset, unchanged by trimming
    if (kofs < start) {
      FileExtent left = fe;
      left.num_bytes = start - kofs;
      RETURN_IF_ERROR(fs.update(*hit, left.encode()));
      if (iend > end) {
        FileExtent right = fe;
        right.offset = fe.offset + (end - kofs);
        right.num_bytes = iend - end;
        RETURN_IF_ERROR(fs.insert(ed_key(in.ino, end), right.encode()));
        if (counted) RETURN_IF_ERROR(e_.add_data_ref(fe.disk_bytenr, fe.disk_num_bytes, in.root, in.ino, ref_base));
        if (counted) in.item.nbytes -= end - start;
      } else if (counted) {
        in.item.nbytes -= iend - start;
      }
    } else {
      RETURN_IF_ERROR(fs.remove(*hit));
      if (iend > end) {
        FileExtent right = fe;
        right.offset = fe.offset + (end - kofs);
        right.num_bytes = iend - end;
        RETURN_IF_ERROR(fs.insert(ed_key(in.ino, end), right.encode()));
        if (counted) in.item.nbytes -= end - kofs;
      } else {
        if (counted) {
          RETURN_IF_ERROR(e_.drop_data_ref(fe.disk_bytenr, fe.disk_num_bytes, in.root, in.ino, ref_base));
          in.item.nbytes -= fe.num_bytes;
        }
      }
    }
    in.dirty = true;
  }
}

// ---- Reflinks ----

namespace {
// File extent items one clone batch copies: with the extent item each
// touches, a bounded number of leaves per batch (reserved up front).
constexpr size_t kCloneBatch = 128;
// The back reference offset of a file extent item at `file_off`: the file
// offset where byte 0 of its disk extent would be (wraps for a piece that
// starts before that, as btrfs's does).
uint64_t ref_base(uint64_t file_off, const FileExtent& fe) { return file_off - fe.offset; }
}  // namespace

Status FileData::clone_range(FileState& src, uint64_t src_off, FileState& dst, uint64_t dst_off, uint64_t len,
                             uint64_t* done) {
  *done = 0;
  if (src_off % kBlock || dst_off % kBlock || len % kBlock)
    return Status::Invalid("a clone covers whole blocks");
  while (*done < len) {
    std::lock_guard lk(e_.mutex());
    dst.log.needs_commit = e_.transid();  // the fsync log carries written ranges only
    // Each item cloned inserts one item and changes one extent item:
    // kCloneBatch items touch a few leaves of the fs tree and at most one
    // extent tree leaf (plus their paths) per item.
    RETURN_IF_ERROR(reserve_metadata_locked(16 + 2 * kCloneBatch));
    ASSIGN_OR_RETURN(uint64_t reached, clone_batch_locked(src, src_off + *done, src_off + len, dst, dst_off + *done));
    *done = reached - src_off;
  }
  return Status::Ok();
}

Result<uint64_t> FileData::clone_batch_locked(FileState& src, uint64_t src_off, uint64_t src_end, FileState& dst,
                                              uint64_t dst_off) {
  // The source's items first, as values: dropping the destination's range
  // may split an item of the same file (src == dst) that covers both.
  std::vector<std::pair<Key, FileExtent>> items;
  uint64_t reached = src_end;
  {
    BTree fs = e_.tree(src.root);
    Cursor c = fs.cursor();
    RETURN_IF_ERROR(seek_extents(c, src.ino, src_off));
    for (; c.valid(); c.advance()) {
      const Key& k = c.key();
      if (k.objectid != src.ino || k.type != kExtentData || k.offset >= src_end) break;
      ASSIGN_OR_RETURN(FileExtent fe, FileExtent::decode(c.data()));
      if (k.offset + fe.num_bytes <= src_off) continue;
      if (fe.type == kFileExtentInline)
        return Status::Error(EINVAL, "inode " + std::to_string(src.ino) + " has inline data: not clonable");
      if (items.size() == kCloneBatch) {
        reached = std::max(src_off, k.offset);
        break;
      }
      items.emplace_back(k, fe);
    }
    RETURN_IF_ERROR(c.status());
  }
  const uint64_t len = reached - src_off;
  if (len == 0) return reached;
  RETURN_IF_ERROR(check_backref_room_locked(dst, items, src_off, dst_off));
  Status st = [&]() -> Status {
    RETURN_IF_ERROR(drop_extents_locked(dst, dst_off, dst_off + len));
    for (auto& [k, fe] : items) {
      // The part of this item inside [src_off, reached), moved to dst.
      const uint64_t s = std::max(src_off, k.offset), e = std::min(reached, k.offset + fe.num_bytes);
      FileExtent piece = fe;
      piece.offset = fe.offset + (s - k.offset);
      piece.num_bytes = e - s;
      const uint64_t at = dst_off + (s - src_off);
      if (fe.disk_bytenr == 0) continue;  // an explicit hole: the dropped range is one already
      RETURN_IF_ERROR(e_.tree(dst.root).insert(ed_key(dst.ino, at), piece.encode()));
      RETURN_IF_ERROR(e_.add_data_ref(fe.disk_bytenr, fe.disk_num_bytes, dst.root, dst.ino, ref_base(at, piece)));
      dst.item.nbytes += piece.num_bytes;
    }
    return Status::Ok();
  }();
  if (!st.ok()) {
    e_.abort(st);
    return st;
  }
  dst.dirty = true;
  return reached;
}

Status FileData::check_backref_room_locked(const FileState& dst, const std::vector<std::pair<Key, FileExtent>>& items,
                                           uint64_t src_off, uint64_t dst_off) {
  // New back references per extent (several items of one extent may share one).
  std::map<std::pair<uint64_t, uint64_t>, std::set<uint64_t>> bases;
  for (auto& [k, fe] : items) {
    if (fe.disk_bytenr == 0) continue;
    const uint64_t s = std::max(src_off, k.offset);
    bases[{fe.disk_bytenr, fe.disk_num_bytes}].insert(dst_off + (s - src_off) - (fe.offset + (s - k.offset)));
  }
  const size_t room = e_.tree(kExtentTreeId).max_item_size();
  for (auto& [ext, want] : bases) {
    ASSIGN_OR_RETURN(Bytes raw, e_.tree(kExtentTreeId).lookup(Key{ext.first, kExtentItem, ext.second}));
    ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(raw));
    size_t added = 0;
    for (uint64_t base : want) {
      const bool exists = std::any_of(ei.backrefs.begin(), ei.backrefs.end(), [&](const ExtentBackref& r) {
        return r.type == kExtentDataRef && r.root == dst.root && r.objectid == dst.ino && r.offset == base;
      });
      if (!exists) added++;
    }
    if (raw.size() + added * ExtentBackref::kDataRefSize > room)
      return Status::Error(EMLINK, "extent " + std::to_string(ext.first) + " has no room for another reference (" +
                                       std::to_string(ei.backrefs.size()) + " already)");
  }
  return Status::Ok();
}

Status FileData::alloc_pieces_locked(uint64_t len, std::vector<std::pair<uint64_t, uint64_t>>* pieces) {
  for (int attempt = 0;; attempt++) {
    uint64_t got = 0;
    Status st;
    while (got < len) {
      auto r = e_.alloc_data(kBlock, len - got);
      if (!r.ok()) {
        st = r.status();
        break;
      }
      pieces->push_back(r.value());
      got += r->second;
    }
    if (st.ok()) return st;
    for (auto& [b, l] : *pieces) e_.release_unused_data(b, l);
    pieces->clear();
    // Space freed since the last commit is pinned until a commit: make it usable.
    if (st.code() != ENOSPC || attempt > 0 || e_.allocator().pinned_bytes() == 0 || !commit_locked_) return st;
    RETURN_IF_ERROR(commit_locked_());
  }
}

Status FileData::write_blocks(FileState& in, uint64_t start, const std::vector<uint8_t>& data) {
  const uint64_t len = data.size();
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  {
    std::lock_guard lk(e_.mutex());
    in.log.needs_commit = e_.transid();  // the fsync log carries written ranges only
    RETURN_IF_ERROR(reserve_metadata_locked(16 + len / (1 << 20)));
    RETURN_IF_ERROR(alloc_pieces_locked(len, &pieces));
  }
  // Data and checksums, outside the engine lock.
  const size_t cs = e_.csum_size();
  std::vector<uint8_t> sums(len / kBlock * cs);
  csum_sectors(e_.csum_type(), data.data(), len, kBlock, sums.data());
  Status io;
  uint64_t done = 0;
  for (auto& [b, l] : pieces) {
    std::vector<uint64_t> copies;
    {
      std::lock_guard lk(e_.mutex());
      auto m = e_.chunk_map().map(b, l);
      if (!m.ok()) io = m.status();
      else copies = m.value();
    }
    for (uint64_t phys : copies) {
      if (!io.ok()) break;
      io = e_.device().write(phys, data.data() + done, l);
    }
    done += l;
  }
  std::lock_guard lk(e_.mutex());
  if (!io.ok()) {
    stats_.write_errors++;
    e_.dev_stats().write_errors++;
    e_.note_stats_changed();
    for (auto& [b, l] : pieces) e_.release_unused_data(b, l);
    return Status::IoError("write failed: " + io.message());
  }
  Status st = [&]() -> Status {
    RETURN_IF_ERROR(drop_extents_locked(in, start, start + len));
    uint64_t at = 0;
    for (auto& [b, l] : pieces) {
      RETURN_IF_ERROR(insert_extent_locked(in, start + at, b, l, l, kFileExtentRegular, kCompressNone));
      RETURN_IF_ERROR(e_.insert_csums(b, sums.data() + at / kBlock * cs, l / kBlock));
      at += l;
    }
    return Status::Ok();
  }();
  if (!st.ok()) e_.abort(st);
  stats_.bytes_written += len;
  return st;
}

Status FileData::truncate(FileState& in, uint64_t new_size) {
  if (new_size > kMaxFileOffset) return Status::Error(EFBIG, "file too large");
  uint64_t size;
  {
    std::lock_guard lk(e_.mutex());
    in.log.needs_commit = e_.transid();  // the fsync log carries written ranges only
    size = in.item.size;
  }
  if (new_size < size) {
    // Zero the tail of the new last block, so a later extension reads zeros.
    if (new_size % kBlock) {
      std::vector<uint8_t> block(kBlock, 0);
      RETURN_IF_ERROR(read(in, down(new_size), kBlock, reinterpret_cast<char*>(block.data())).status());
      std::memset(block.data() + new_size % kBlock, 0, kBlock - new_size % kBlock);
      std::vector<Piece> pieces;
      {
        std::lock_guard lk(e_.mutex());
        RETURN_IF_ERROR(map_locked(in, down(new_size), up(new_size), &pieces));
      }
      bool has_data = false;
      for (auto& p : pieces) has_data |= p.disk != 0;
      if (has_data) RETURN_IF_ERROR(write_blocks(in, down(new_size), block));
    }
    std::lock_guard lk(e_.mutex());
    RETURN_IF_ERROR(reserve_metadata_locked(16));
    Status st = drop_extents_locked(in, up(new_size), kMaxFileOffset);
    if (!st.ok()) {
      e_.abort(st);
      return st;
    }
  }
  std::lock_guard lk(e_.mutex());
  in.item.size = new_size;
  in.disk_size = new_size;
  in.dirty = true;
  return Status::Ok();
}

Status FileData::preallocate(FileState& in, uint64_t off, uint64_t len, bool keep_size) {
  if (off + len > kMaxFileOffset || off + len < off) return Status::Error(EFBIG, "file too large");
  const uint64_t start = down(off), end = up(off + len);
  std::lock_guard lk(e_.mutex());
  in.log.needs_commit = e_.transid();  // the fsync log carries written ranges only
  RETURN_IF_ERROR(reserve_metadata_locked(16));
  std::vector<Piece> pieces;
  RETURN_IF_ERROR(map_locked(in, start, end, &pieces));
  // Holes are the gaps between mapped pieces (prealloc pieces count as mapped).
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  uint64_t pos = start;
  for (auto& p : pieces) {
    if (p.file_off > pos) holes.push_back({pos, p.file_off - pos});
    pos = std::max(pos, p.file_off + p.len);
  }
  if (pos < end) holes.push_back({pos, end - pos});
  uint64_t need = 0;
  for (auto& h : holes) need += h.second;
  std::vector<std::pair<uint64_t, uint64_t>> space;
  if (need) RETURN_IF_ERROR(alloc_pieces_locked(need, &space));
  // Hand the pieces out to the holes in order.
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> got;  // file offset, bytenr, len
  size_t pi = 0;
  uint64_t pused = 0;
  for (auto& [hs, hl] : holes) {
    for (uint64_t done = 0; done < hl;) {
      uint64_t take = std::min(hl - done, space[pi].second - pused);
      got.emplace_back(hs + done, space[pi].first + pused, take);
      done += take;
      pused += take;
      if (pused == space[pi].second) pi++, pused = 0;
    }
  }
  Status st = [&]() -> Status {
    for (auto& [f, b, l] : got) RETURN_IF_ERROR(insert_extent_locked(in, f, b, l, l, kFileExtentPrealloc, kCompressNone));
    return Status::Ok();
  }();
  if (!st.ok()) {
    e_.abort(st);
    return st;
  }
  if (!keep_size && off + len > in.item.size) in.item.size = in.disk_size = off + len;
  in.dirty = true;
  return Status::Ok();
}

Status FileData::punch_hole(FileState& in, uint64_t off, uint64_t len) {
  uint64_t size;
  {
    std::lock_guard lk(e_.mutex());
    in.log.needs_commit = e_.transid();  // the fsync log carries written ranges only
    size = in.item.size;
  }
  const uint64_t end = std::min(off + len, std::max(size, up(size)));
  if (off >= end) return Status::Ok();
  // Partial blocks at either edge are rewritten with zeros in the range.
  auto zero_partial = [&](uint64_t bstart, uint64_t zs, uint64_t ze) -> Status {
    std::vector<Piece> pieces;
    {
      std::lock_guard lk(e_.mutex());
      RETURN_IF_ERROR(map_locked(in, bstart, bstart + kBlock, &pieces));
    }
    bool has_data = false;
    for (auto& p : pieces) has_data |= p.disk != 0;
    if (!has_data) return Status::Ok();
    std::vector<uint8_t> block(kBlock, 0);
    RETURN_IF_ERROR(read(in, bstart, kBlock, reinterpret_cast<char*>(block.data())).status());
    std::memset(block.data() + (zs - bstart), 0, ze - zs);
    return write_blocks(in, bstart, block);
  };
  const uint64_t a = up(off), b = down(end);
  if (a > b) return zero_partial(down(off), off, end);  // inside one block
  if (off < a) RETURN_IF_ERROR(zero_partial(down(off), off, a));
  if (end > b && b >= a) RETURN_IF_ERROR(zero_partial(b, b, end));
  if (a < b) {
    std::lock_guard lk(e_.mutex());
    RETURN_IF_ERROR(reserve_metadata_locked(16));
    Status st = drop_extents_locked(in, a, b);
    if (!st.ok()) {
      e_.abort(st);
      return st;
    }
  }
  return Status::Ok();
}

Status FileData::zero_range(FileState& in, uint64_t off, uint64_t len, bool keep_size) {
  RETURN_IF_ERROR(punch_hole(in, off, len));
  const uint64_t a = up(off), b = down(off + len);
  if (a < b) RETURN_IF_ERROR(preallocate(in, a, b - a, true));
  std::lock_guard lk(e_.mutex());
  in.log.needs_commit = e_.transid();  // the fsync log carries written ranges only
  if (!keep_size && off + len > in.item.size) {
    in.item.size = in.disk_size = off + len;
    in.dirty = true;
  }
  return Status::Ok();
}

Result<uint64_t> FileData::seek(FileState& in, uint64_t off, int whence) {
  std::lock_guard lk(e_.mutex());
  const uint64_t size = in.item.size;
  if (off >= size) return Status::Error(ENXIO, "offset beyond the end of the file");
  std::vector<Piece> pieces;
  RETURN_IF_ERROR(map_locked(in, down(off), kMaxFileOffset, &pieces));
  if (whence == SEEK_DATA) {
    for (auto& p : pieces)
      if (p.disk && p.file_off + p.len > off) {
        uint64_t r = std::max(off, p.file_off);
        if (r >= size) break;
        return r;
      }
    return Status::Error(ENXIO, "no data after the offset");
  }
  uint64_t pos = off;
  for (auto& p : pieces) {
    if (!p.disk || p.file_off + p.len <= pos) continue;
    if (p.file_off > pos) break;
    pos = p.file_off + p.len;
  }
  return std::min(pos, size);
}

Status FileData::insert_extent_locked(FileState& in, uint64_t file_off, uint64_t disk, uint64_t disk_len, uint64_t len,
                                      uint8_t type, uint8_t compression) {
  FileExtent fe;
  fe.generation = e_.transid();
  fe.ram_bytes = len;
  fe.compression = compression;
  fe.type = type;
  fe.disk_bytenr = disk;
  fe.disk_num_bytes = disk_len;
  fe.num_bytes = len;
  RETURN_IF_ERROR(e_.tree(in.root).insert(ed_key(in.ino, file_off), fe.encode()));
  RETURN_IF_ERROR(e_.add_data_extent(disk, disk_len, in.root, in.ino, file_off));
  in.item.nbytes += len;  // file bytes, compressed or not (as btrfs; du -c shows the disk bytes)
  in.dirty = true;
  return Status::Ok();
}

Status FileData::reserve_metadata_locked(uint64_t nodes) {
  Status st = e_.reserve_metadata(nodes);
  if (st.code() != ENOSPC || !e_.commit_makes_room() || !commit_locked_) return st;
  RETURN_IF_ERROR(commit_locked_());
  return e_.reserve_metadata(nodes);
}

Result<std::pair<uint64_t, uint64_t>> FileData::alloc_extent_locked(uint64_t min_len, uint64_t max_len) {
  auto r = e_.alloc_data(min_len, max_len);
  if (r.ok() || r.status().code() != ENOSPC || e_.allocator().pinned_bytes() == 0 || !commit_locked_) return r;
  RETURN_IF_ERROR(commit_locked_());
  return e_.alloc_data(min_len, max_len);
}

Status FileData::record_extent_locked(FileState& in, uint64_t file_off, uint64_t disk, uint64_t len, const uint8_t* csums) {
  return record_compressed_locked(in, file_off, disk, len, len, kCompressNone, csums);
}

Status FileData::record_compressed_locked(FileState& in, uint64_t file_off, uint64_t disk, uint64_t disk_len,
                                          uint64_t ram_len, uint8_t type, const uint8_t* csums) {
  RETURN_IF_ERROR(drop_extents_locked(in, file_off, file_off + ram_len));
  RETURN_IF_ERROR(insert_extent_locked(in, file_off, disk, disk_len, ram_len, kFileExtentRegular, type));
  RETURN_IF_ERROR(e_.insert_csums(disk, csums, disk_len / kBlock));
  // The feature flag goes with the first compressed extent: images that
  // never hold one stay readable by code without compression.
  if (type != kCompressNone) e_.set_incompat(kIncompatCompression);
  in.disk_size = std::max(in.disk_size, std::min(file_off + ram_len, in.item.size));
  in.dirty = true;
  in.log.note_written(e_.last_committed(), file_off, file_off + ram_len);
  stats_.bytes_written += ram_len;
  return Status::Ok();
}

Result<bool> FileData::sole_reference_locked(const FileState& in, const Key& k, const FileExtent& fe) {
  // Every back reference is (fs tree, this inode, the file offset the
  // extent starts at). Then disk byte D + x belongs to file offset base + x
  // alone, and writing it changes no other file or range (a reflink or a
  // copy of the extent elsewhere in the file adds another reference).
  const uint64_t base = k.offset - fe.offset;
  ASSIGN_OR_RETURN(Bytes raw, e_.tree(kExtentTreeId).lookup(Key{fe.disk_bytenr, kExtentItem, fe.disk_num_bytes}));
  ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(raw));
  for (const auto& r : ei.backrefs)
    if (r.type != kExtentDataRef || r.root != in.root || r.objectid != in.ino || r.offset != base) return false;
  return true;
}

Status FileData::block_space_locked(const FileState& in, uint64_t first, uint64_t last, std::vector<BlockSpace>* out) {
  const uint64_t ino = in.ino;
  out->assign(last - first + 1, BlockSpace::kHole);
  BTree fs = e_.tree(in.root);
  Cursor c = fs.cursor();
  RETURN_IF_ERROR(seek_extents(c, ino, first * kBlock));
  for (; c.valid(); c.advance()) {
    const Key& k = c.key();
    if (k.objectid != ino || k.type != kExtentData || k.offset > last * kBlock) break;
    ASSIGN_OR_RETURN(FileExtent fe, FileExtent::decode(c.data()));
    if (fe.type == kFileExtentInline || fe.disk_bytenr == 0) continue;
    // Preallocated space another file (or range) shares is written by
    // copy-on-write like data: it needs a reservation (st_blocks already
    // counts it).
    BlockSpace s = BlockSpace::kWritten;
    if (fe.type == kFileExtentPrealloc) {
      ASSIGN_OR_RETURN(bool sole, sole_reference_locked(in, k, fe));
      if (sole) s = BlockSpace::kUnwritten;
    }
    const uint64_t b0 = std::max(first, k.offset / kBlock), b1 = std::min(last + 1, (k.offset + fe.num_bytes) / kBlock);
    for (uint64_t b = b0; b < b1; b++) (*out)[b - first] = s;
  }
  return c.status();
}

Result<std::optional<std::pair<Key, FileExtent>>> FileData::extent_at_locked(const FileState& in, uint64_t off) {
  const uint64_t ino = in.ino;
  BTree fs = e_.tree(in.root);
  Cursor c = fs.cursor();
  RETURN_IF_ERROR(seek_extents(c, ino, off));
  for (; c.valid(); c.advance()) {
    const Key& k = c.key();
    if (k.objectid != ino || k.type != kExtentData || k.offset > off) break;
    ASSIGN_OR_RETURN(FileExtent fe, FileExtent::decode(c.data()));
    if (fe.type != kFileExtentInline && off < k.offset + fe.num_bytes)
      return std::optional<std::pair<Key, FileExtent>>(std::pair{k, fe});
  }
  RETURN_IF_ERROR(c.status());
  return std::optional<std::pair<Key, FileExtent>>();
}

Result<std::optional<std::pair<uint64_t, uint64_t>>> FileData::unwritten_target_locked(FileState& in, uint64_t file_off,
                                                                                        uint64_t len) {
  using Target = std::optional<std::pair<uint64_t, uint64_t>>;
  ASSIGN_OR_RETURN(auto hit, extent_at_locked(in, file_off));
  if (!hit || hit->second.type != kFileExtentPrealloc || hit->second.disk_bytenr == 0) return Target();
  const auto& [k, fe] = *hit;
  ASSIGN_OR_RETURN(bool sole, sole_reference_locked(in, k, fe));
  if (!sole) return Target();
  const uint64_t covered = std::min(len, k.offset + fe.num_bytes - file_off);
  return Target(std::pair{fe.disk_bytenr + fe.offset + (file_off - k.offset), covered});
}

Status FileData::record_unwritten_locked(FileState& in, uint64_t file_off, uint64_t disk, uint64_t len,
                                         const uint8_t* csums) {
  // The range is still preallocated: truncate, punch and fallocate wait for
  // every ordered extent of the file, and other ordered extents of the file
  // cover other ranges.
  ASSIGN_OR_RETURN(auto hit, extent_at_locked(in, file_off));
  if (!hit || hit->second.type != kFileExtentPrealloc ||
      hit->second.disk_bytenr + hit->second.offset + (file_off - hit->first.offset) != disk ||
      file_off + len > hit->first.offset + hit->second.num_bytes)
    return Status::Corruption("inode " + std::to_string(in.ino) + ": preallocated range at " +
                              std::to_string(file_off) + " changed under an ordered extent");
  const auto& [k, fe] = *hit;
  const uint64_t base = k.offset - fe.offset;
  // The written piece's reference first, so dropping the preallocated
  // piece never takes the disk extent's count to zero (which would free it).
  RETURN_IF_ERROR(e_.add_data_ref(fe.disk_bytenr, fe.disk_num_bytes, in.root, in.ino, base));
  RETURN_IF_ERROR(drop_extents_locked(in, file_off, file_off + len));
  FileExtent w = fe;
  w.type = kFileExtentRegular;
  w.generation = e_.transid();
  w.offset = fe.offset + (file_off - k.offset);
  w.num_bytes = len;
  RETURN_IF_ERROR(e_.tree(in.root).insert(ed_key(in.ino, file_off), w.encode()));
  in.item.nbytes += len;  // drop_extents_locked took the preallocated piece's bytes off
  RETURN_IF_ERROR(e_.insert_csums(disk, csums, len / kBlock));
  in.disk_size = std::max(in.disk_size, std::min(file_off + len, in.item.size));
  in.dirty = true;
  in.log.note_written(e_.last_committed(), file_off, file_off + len);
  stats_.bytes_written += len;
  return Status::Ok();
}

Status FileData::drop_all_locked(FileState& in) {
  in.log.needs_commit = e_.transid();
  return drop_extents_locked(in, 0, kMaxFileOffset);
}

Status FileData::set_inline_locked(FileState& in, const std::string& data) {
  in.log.needs_commit = e_.transid();
  FileExtent fe;
  fe.generation = e_.transid();
  fe.type = kFileExtentInline;
  fe.ram_bytes = data.size();
  fe.inline_data.assign(data.begin(), data.end());
  Bytes enc = fe.encode();
  if (enc.size() > e_.tree(in.root).max_item_size()) return Status::Error(ENAMETOOLONG, "symlink target too long");
  return e_.tree(in.root).upsert(ed_key(in.ino, 0), enc);
}

Result<std::string> FileData::get_inline_locked(const FileState& in) {
  ASSIGN_OR_RETURN(Bytes b, e_.tree(in.root).lookup(ed_key(in.ino, 0)));
  ASSIGN_OR_RETURN(FileExtent fe, FileExtent::decode(b));
  if (fe.type != kFileExtentInline) return Status::Corruption("symlink without an inline target");
  return std::string(fe.inline_data.begin(), fe.inline_data.end());
}

}  // namespace cairn

// Filesystem: copy_file_range(2) and `cairnctl clone` — reflinks
// (docs/design.md, "Reflinks"). Whole blocks are shared, not copied: the
// destination's file extent items point at the source's disk extents, each
// one more reference in the extent tree, and the checksums (keyed by disk
// address) serve both files. Writes to either file later are copy-on-write
// as every write is, so neither sees the other's changes.
#include <sys/stat.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "vfs/filesystem.h"

namespace cairn {

namespace {
constexpr uint64_t kBlock = kSectorSize;
uint64_t down(uint64_t v) { return v / kBlock * kBlock; }
uint64_t up(uint64_t v) { return (v + kBlock - 1) / kBlock * kBlock; }
constexpr uint64_t kMaxFileOffset = 1ULL << 62;
}  // namespace

Result<size_t> Filesystem::copy_bytes(uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out,
                                      size_t len, const Caller& c) {
  // Through the daemon's own data path: the kernel would otherwise bounce
  // every byte through user space twice.
  std::vector<char> buf(std::min<size_t>(len, 1 << 20));
  size_t done = 0;
  while (done < len) {
    const size_t want = std::min(buf.size(), len - done);
    ASSIGN_OR_RETURN(size_t got, read(ino_in, off_in + done, want, buf.data()));
    if (got == 0) break;
    ASSIGN_OR_RETURN(size_t put, write(ino_out, off_out + done, buf.data(), got, false, c));
    done += put;
    if (got < want || put < got) break;
  }
  return done;
}

Result<size_t> Filesystem::share_blocks(const std::shared_ptr<Inode>& src, uint64_t off_in,
                                        const std::shared_ptr<Inode>& dst, uint64_t off_out, size_t len, CopyMode mode,
                                        const Caller& c) {
  // Both files exclusively (writes, truncate and fallocate wait), in inode
  // order so that two clones in opposite directions cannot deadlock.
  std::unique_lock<std::shared_mutex> first, second;
  if (src == dst) {
    first = std::unique_lock(src->io_lock);
  } else {
    Inode& a = src->ino < dst->ino ? *src : *dst;
    Inode& b = src->ino < dst->ino ? *dst : *src;
    first = std::unique_lock(a.io_lock);
    second = std::unique_lock(b.io_lock);
  }
  // Every byte of both ranges in the tree: the clone copies items, and the
  // destination's old pages must not be written over it later.
  RETURN_IF_ERROR(writeback_->flush_inode(src, true));
  if (dst != src) RETURN_IF_ERROR(writeback_->flush_inode(dst, true));
  uint64_t src_size, dst_size;
  {
    std::lock_guard lk(engine_->mutex());
    src_size = src->item.size;
    dst_size = dst->item.size;
  }
  if (off_in >= src_size) return size_t(0);
  len = size_t(std::min<uint64_t>(len, src_size - off_in));
  // Whole blocks only, except the source's last block when the copy ends at
  // the source's end and at or past the destination's: its bytes past the
  // end of the file are zeros, and past the destination's new end too.
  uint64_t blocks = down(len);
  if (len % kBlock && off_in + len == src_size && off_out + len >= dst_size) blocks = up(len);
  if (blocks == 0) return size_t(0);
  uint64_t done = 0;
  Status st = data_->clone_range(*src, off_in, *dst, off_out, blocks, &done);
  const uint64_t shared = std::min<uint64_t>(done, len);
  if (shared) {
    std::lock_guard lk(engine_->mutex());
    if (off_out + shared > dst->item.size) dst->item.size = off_out + shared;
    // The shared bytes are on disk already: the tree may record this size.
    dst->disk_size = std::max(dst->disk_size, std::min(off_out + shared, dst->item.size));
    mark_dirty(*dst);
  }
  first = {};
  second = {};
  if (shared) data_changed(*dst, c, true);
  if (!st.ok() && (shared == 0 || mode == CopyMode::kShareOnly)) return st;
  return size_t(shared);
}

Result<size_t> Filesystem::copy_file_range(uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out,
                                           size_t len, const Caller& c, CopyMode mode) {
  std::shared_ptr<Inode> src, dst;
  uint64_t src_size, dst_size;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(src, get_inode(ino_in));
    ASSIGN_OR_RETURN(dst, get_inode(ino_out));
    RETURN_IF_ERROR(writable(*dst));
    src_size = src->item.size;
    dst_size = dst->item.size;
  }
  if (src->is_dir() || dst->is_dir()) return Status::Error(EISDIR, "is a directory");
  if (!src->is_reg() || !dst->is_reg()) return Status::Invalid("not a regular file");
  if (off_in >= src_size) return size_t(0);
  len = size_t(std::min<uint64_t>({len, src_size - off_in, kMaxCopyFileRange}));
  if (off_out > kMaxFileOffset || len > kMaxFileOffset - off_out) return Status::Error(EFBIG, "file too large");
  if (ino_in == ino_out && off_in < off_out + len && off_out < off_in + len)
    return Status::Invalid("the ranges overlap");
  if (mode == CopyMode::kShareOnly) {
    // FICLONERANGE's rules: block-aligned offsets, and a length of whole
    // blocks unless it runs to the source's end and past the destination's.
    if (off_in % kBlock || off_out % kBlock) return Status::Invalid("clone offsets must be multiples of 4096");
    if (len % kBlock && !(off_in + len == src_size && off_out + len >= dst_size))
      return Status::Invalid("a clone's length must be a multiple of 4096 unless it ends at the source's end");
    return share_blocks(src, off_in, dst, off_out, len, mode, c);
  }
  // Offsets at different places in a block: no block lines up, copy it all.
  if (off_in % kBlock != off_out % kBlock) return copy_bytes(ino_in, off_in, ino_out, off_out, len, c);
  size_t done = 0;
  // The partial block at the start, copied.
  const size_t head = size_t(std::min<uint64_t>(len, (kBlock - off_in % kBlock) % kBlock));
  if (head) {
    ASSIGN_OR_RETURN(size_t n, copy_bytes(ino_in, off_in, ino_out, off_out, head, c));
    if (n < head) return n;
    done = n;
  }
  // The blocks, shared; what cannot be shared (an extent full of
  // references), copied.
  if (done < len) {
    auto r = share_blocks(src, off_in + done, dst, off_out + done, len - done, mode, c);
    if (r.ok()) {
      done += r.value();
    } else if (r.status().code() != EMLINK) {
      if (done) return done;
      return r.status();
    }
  }
  // The partial block at the end (or the rest), copied.
  if (done < len) {
    ASSIGN_OR_RETURN(size_t n, copy_bytes(ino_in, off_in + done, ino_out, off_out + done, len - done, c));
    done += n;
  }
  return done;
}

}  // namespace cairn

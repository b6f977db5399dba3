#pragma once
// FileData: the data path of regular files (docs/design.md, "Data path").
//
// This is the boundary between file semantics and how bytes reach the
// device. Every write is copy-on-write: the affected 4 KiB blocks go to a
// newly allocated extent with a checksum per block, and then the file's
// EXTENT_DATA items are switched over to it; a read verifies every block
// against its checksum and returns EIO rather than bytes that fail (with
// DUP data, the good copy, rewriting the bad one).
//
// Locking contract: callers hold the inode's io_lock (shared for read and
// seek, exclusive for everything else) and NOT the engine mutex; FileData
// takes the engine mutex only to map or record extents, never across
// device I/O. Functions named *_locked require the engine mutex instead.

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>
#include <string>

#include "format/constants.h"
#include "io/io_engine.h"
#include "tree/engine.h"
#include "util/aligned_buffer.h"
#include "cache/file_state.h"

namespace cairn {

struct DataStats {
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0};
  std::atomic<uint64_t> csum_errors{0}, corrected{0}, uncorrectable{0}, read_errors{0}, write_errors{0};
};

class FileData {
 public:
  explicit FileData(Engine& e) : e_(e) {}

  // The bytes of [off, off + len), clipped at the end of the file, read as
  // whole blocks into `span` (grown as needed): they start at
  // span.data() + off % 4096. For callers that can send from there.
  Result<size_t> read_span(FileState& in, uint64_t off, size_t len, AlignedBuffer& span);
  // The same bytes copied to `out`.
  Result<size_t> read(FileState& in, uint64_t off, size_t len, char* out);
  Status truncate(FileState& in, uint64_t new_size);
  // fallocate modes: reserve space (prealloc extents), punch, zero.
  Status preallocate(FileState& in, uint64_t off, uint64_t len, bool keep_size);
  Status punch_hole(FileState& in, uint64_t off, uint64_t len);
  Status zero_range(FileState& in, uint64_t off, uint64_t len, bool keep_size);
  // Reflink: make the whole blocks [dst_off, dst_off + len) of `dst` refer
  // to the disk extents that hold [src_off, src_off + len) of `src` (both
  // offsets and `len` multiples of 4096; `src` may be `dst` when the ranges
  // do not overlap). Written blocks share data and checksums, preallocated
  // ones stay preallocated, holes stay holes; whatever `dst` held there is
  // dropped. Neither size changes. The caller holds both io_locks
  // exclusively and has flushed both files (the tree is all there is).
  // EMLINK, with nothing changed in that batch, when an extent has no room
  // for one more back reference ("EXTENT_ITEM" in docs/format.md); the
  // range is done in batches, so an error leaves [dst_off, *done) cloned.
  Status clone_range(FileState& src, uint64_t src_off, FileState& dst, uint64_t dst_off, uint64_t len,
                     uint64_t* done);
  // SEEK_DATA / SEEK_HOLE; ENXIO past the data or the end.
  Result<uint64_t> seek(FileState& in, uint64_t off, int whence);

  // Engine mutex held: switch [file_off, file_off + len) of `in` to the new
  // disk extent `disk` whose per-block checksums are `csums` (the finish of
  // an ordered extent).
  Status record_extent_locked(FileState& in, uint64_t file_off, uint64_t disk, uint64_t len, const uint8_t* csums);
  // Engine mutex held: the finish of a compressed ordered extent: the
  // file range [file_off, file_off + ram_len) reads the decoded disk extent
  // [disk, disk + disk_len), compressed with `type`, whose checksums
  // (`csums`, one per disk block) cover the bytes on disk.
  Status record_compressed_locked(FileState& in, uint64_t file_off, uint64_t disk, uint64_t disk_len, uint64_t ram_len,
                                  uint8_t type, const uint8_t* csums);
  // Engine mutex held: what holds blocks first..last of `in` on disk now
  // (preallocated space counts as kUnwritten only where this file range is
  // its sole reference: shared, it is written by copy-on-write).
  Status block_space_locked(const FileState& in, uint64_t first, uint64_t last, std::vector<BlockSpace>* out);
  // Engine mutex held: where [file_off, file_off + len) of `in` may be
  // written in place, if it starts in preallocated (unwritten) space that
  // no other file or file range references: the disk address of file_off
  // and the bytes of the range that space covers. Nothing: allocate anew.
  Result<std::optional<std::pair<uint64_t, uint64_t>>> unwritten_target_locked(FileState& in, uint64_t file_off,
                                                                               uint64_t len);
  // Engine mutex held: the finish of an ordered extent written there. The
  // range becomes a written piece of the same disk extent, with checksums;
  // the file's allocation does not change.
  Status record_unwritten_locked(FileState& in, uint64_t file_off, uint64_t disk, uint64_t len, const uint8_t* csums);
  // Engine mutex held: a data extent of min..max bytes; commits once to
  // free pinned space before giving up with ENOSPC.
  Result<std::pair<uint64_t, uint64_t>> alloc_extent_locked(uint64_t min_len, uint64_t max_len);
  // reserve_metadata, committing once when a commit would make room.
  Status reserve_metadata_locked(uint64_t nodes);
  // Data reads go through io_uring when an engine is set.
  void set_io(IoEngine* io) { io_ = io; }
  // Tests: called by every read between mapping the extents and reading
  // them (no lock held), to change the file in that window.
  void set_read_hook_for_tests(std::function<void()> fn) { read_hook_ = std::move(fn); }

  // Engine mutex held: [start, end) of `in` becomes a hole (items at the
  // edges trimmed, references dropped; nbytes follows). Fsync log replay
  // clears a logged range with it.
  Status drop_extents_locked(FileState& in, uint64_t start, uint64_t end);
  // Engine mutex held: drop every extent of a file being deleted.
  Status drop_all_locked(FileState& in);
  // Engine mutex held: symlink targets live in an inline extent at offset 0.
  Status set_inline_locked(FileState& in, const std::string& data);
  Result<std::string> get_inline_locked(const FileState& in);

  DataStats& stats() { return stats_; }
  // Commit the running transaction (engine mutex held): space pinned by
  // frees in it becomes usable. Set by the Filesystem, which must write its
  // dirty inodes first.
  void set_commit_hook(std::function<Status()> fn) { commit_locked_ = std::move(fn); }

 private:
  struct Piece {
    uint64_t file_off, len;
    // Logical address of file_off's byte; 0 = hole or prealloc (reads
    // zero). A compressed piece: the disk extent's address (non-zero, so
    // "has data"), and the fields below say how to decode it.
    uint64_t disk;
    uint8_t compression = kCompressNone;
    uint64_t disk_len = 0;    // compressed: the whole disk extent's size
    uint64_t ram_bytes = 0;   // compressed: what it decodes to
    uint64_t ram_off = 0;     // compressed: file_off's byte in the decoded extent
  };
  Status map_locked(const FileState& in, uint64_t start, uint64_t end, std::vector<Piece>* out);
  // Is (k, fe), a file extent item of `ino`, the only user of its disk
  // extent's bytes (every back reference this inode at this place)?
  Result<bool> sole_reference_locked(const FileState& in, const Key& k, const FileExtent& fe);
  // The file extent item of `ino` covering file offset `off`, if any.
  Result<std::optional<std::pair<Key, FileExtent>>> extent_at_locked(const FileState& in, uint64_t off);
  // One batch of clone_range: at most kCloneBatch items of `src`, from
  // src_off up to src_end; returns the source offset it reached.
  Result<uint64_t> clone_batch_locked(FileState& src, uint64_t src_off, uint64_t src_end, FileState& dst,
                                      uint64_t dst_off);
  // Would every extent the pieces refer to take one more back reference
  // (root, dst ino, its base), if it is a new one?
  Status check_backref_room_locked(const FileState& dst, const std::vector<std::pair<Key, FileExtent>>& pieces,
                                   uint64_t src_off, uint64_t dst_off);
  // A new file extent item over a new disk extent, its extent item, and nbytes.
  // `disk_len` bytes on disk hold `len` file bytes (fewer when compressed).
  Status insert_extent_locked(FileState& in, uint64_t file_off, uint64_t disk, uint64_t disk_len, uint64_t len,
                              uint8_t type, uint8_t compression);
  // Copy-on-write of whole blocks [start, start + data.size()) without touching the size.
  Status write_blocks(FileState& in, uint64_t start, const std::vector<uint8_t>& data);
  // Read [disk, disk + len) into `out` and verify it against `csums`; a
  // failure is confirmed under the engine mutex and, with DUP, repaired from
  // the other copy. EAGAIN: the extent was freed since it was mapped (map again).
  Status read_verified(uint64_t ino, uint64_t file_off, uint64_t disk, uint64_t len, uint8_t* out,
                       const uint8_t* csums, const std::vector<bool>& present);
  Result<size_t> read_span_once(FileState& in, uint64_t off, size_t len, AlignedBuffer& span);
  // A compressed piece into `out` (p.len bytes): the whole disk extent
  // read and verified (repaired from DUP) against `csums`, then decoded.
  Status read_compressed(uint64_t ino, const Piece& p, uint8_t* out, const uint8_t* csums,
                         const std::vector<bool>& present);

  // Allocate `len` bytes of data extents; on ENOSPC with space pinned, commit and retry.
  Status alloc_pieces_locked(uint64_t len, std::vector<std::pair<uint64_t, uint64_t>>* pieces);

  Status device_read(uint64_t phys, uint8_t* buf, uint64_t len);

  Engine& e_;
  IoEngine* io_ = nullptr;
  DataStats stats_;
  std::function<Status()> commit_locked_;
  std::function<void()> read_hook_;
};

}  // namespace cairn

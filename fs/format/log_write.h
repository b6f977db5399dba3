#pragma once
// Fsync log writes (docs/format.md, "Fsync log").
//
// Between two commits, fsync of a regular file whose names and xattrs did
// not change since the last commit persists only what describes the file
// now: its inode item, and for every byte range written since the last
// commit (or since it was last logged) the file extent items that hold the
// range, clipped to it, with the checksums of the data they point at. One
// log write carries the records of every fsync that joined it, is checked
// on its own (checksum, magic, fsid, the generation it extends, its place
// in the chain, its own address) and names where the next write goes, so
// that the chain is read from the superblock's `log_start` without any
// index. The first write that does not check ends the log.
//
// Decoding validates every length against the buffer and every item with
// the tree checker's rules (a hostile image gives EUCLEAN, never a crash);
// what the items say against the trees is the replay's business
// (log/log_replay.h).

#include <cstdint>
#include <vector>

#include "format/items.h"
#include "format/superblock.h"
#include "util/status.h"

namespace cairn {

// A file extent item of a logged range, clipped to it: the item at file
// offset `file_off`, and the checksums of the disk bytes it reads
// (uncompressed: [disk_bytenr + offset, + num_bytes); compressed: the whole
// disk extent; none for holes and preallocated space).
struct LoggedPiece {
  uint64_t file_off = 0;
  FileExtent extent;
  Bytes csums;
};

// [start, end) of the file is exactly `pieces` (what they do not cover is a hole).
struct LoggedRange {
  uint64_t start = 0, end = 0;
  std::vector<LoggedPiece> pieces;
};

struct LogRecord {
  uint64_t root = 0;  // the fs tree holding the inode
  uint64_t ino = 0;
  InodeItem item;     // the inode as fsync left it (size: what is on disk)
  std::vector<LoggedRange> ranges;
};

struct LogWrite {
  static constexpr uint64_t kMagic = 0x3147474C4E524143ULL;  // "CARNLGG1"
  static constexpr size_t kHeaderSize = 128;
  static constexpr uint32_t kBlock = 4096;
  // The most one log write may hold; a bigger fsync commits instead.
  static constexpr uint32_t kMaxBytes = 128 * 1024;

  uint64_t generation = 0;  // the committed generation this log extends
  uint64_t seq = 0;         // 1, 2, ... in the chain of that generation
  uint64_t logical = 0;     // own logical address
  uint64_t next = 0;        // logical address of the next write in the chain
  std::vector<LogRecord> records;

  // Bytes the encoding takes, rounded up to whole 4 KiB blocks.
  size_t encoded_size(CsumType csum) const;
  // Encode (padded with zeros to encoded_size, checksummed with the
  // superblock's algorithm and fsid).
  Bytes encode(const Superblock& sb) const;
  // The length a header claims (0: not a log write of this chain), from its
  // first 4 KiB: enough to know how much to read.
  static uint32_t claimed_length(const Superblock& sb, const uint8_t* first_block, uint64_t logical,
                                 uint64_t generation, uint64_t seq);
  // Decode and check a whole write read at `logical` (`len` bytes as
  // claimed_length said).
  static Result<LogWrite> decode(const Superblock& sb, const uint8_t* buf, size_t len, uint64_t logical,
                                 uint64_t generation, uint64_t seq);
};

// Bytes one record takes in a log write (for the writer's size limit).
size_t log_record_size(const LogRecord& r);

}  // namespace cairn

#pragma once
// Item payload codecs (docs/format.md, "Items"). Each struct mirrors one
// item type; encode() gives the exact on-disk bytes and decode() validates
// sizes before reading, returning Corruption for a malformed payload.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "format/key.h"
#include "util/endian.h"
#include "util/status.h"

namespace cairn {

using Bytes = std::vector<uint8_t>;

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  auto operator<=>(const Timespec&) const = default;
};

// ROOT_ITEM (root tree, key (tree id, 132, 0)).
struct RootItem {
  static constexpr size_t kSize = 64;
  uint64_t bytenr = 0;
  uint64_t generation = 0;
  uint8_t level = 0;
  uint64_t last_objectid = 0;  // highest objectid handed out (fs tree: inode numbers)
  uint64_t flags = 0;  // kRootFlag*
  // The transaction of the last snapshot taken of this tree, or that made
  // it as a snapshot (0: never): a node of an older generation may be
  // shared with another tree.
  uint64_t last_snapshot = 0;
  Bytes encode() const;
  static Result<RootItem> decode(const Bytes& b);
};

// A tree of opaque key/value items with no filesystem meaning: fsck checks
// its structure only. Engine tests use such trees; internal stores may too.
constexpr uint64_t kRootFlagKeyValue = 1;
// A deleted tree being dropped (in the background, across commits): its
// nodes and data references go as the drop proceeds; nothing else reads it.
constexpr uint64_t kRootFlagDead = 2;
// A read-only subvolume (snapshot -r): nothing in it changes.
constexpr uint64_t kRootFlagReadOnly = 4;

// ROOT_REF (root tree, key (parent tree, 156, subvolume)) and ROOT_BACKREF
// (key (subvolume, 144, parent tree)): the directory entry that names a
// subvolume inside its parent subvolume. Same payload in both.
struct RootRefItem {
  static constexpr size_t kHeaderSize = 18;
  uint64_t dirid = 0;     // the directory (in the parent tree) holding the entry
  uint64_t sequence = 0;  // the entry's DIR_INDEX
  std::string name;
  Bytes encode() const;
  static Result<RootRefItem> decode(const Bytes& b);
};

// INODE_ITEM (fs tree, key (ino, 1, 0)).
struct InodeItem {
  static constexpr size_t kSize = 160;
  uint64_t generation = 0;  // transaction that created the inode (NFS-style generation)
  uint64_t transid = 0;     // last transaction that changed it
  uint64_t size = 0;
  uint64_t nbytes = 0;      // bytes of disk extents referenced (st_blocks * 512)
  uint64_t rdev = 0;
  uint64_t flags = 0;       // kInodeFlag*
  uint64_t sequence = 0;    // directories: next DIR_INDEX number
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t mode = 0;
  Timespec atime, ctime, mtime, otime;
  Bytes encode() const;
  static Result<InodeItem> decode(const Bytes& b);
};
constexpr uint64_t kInodeFlagDropbehind = 1;  // data written to this file is not kept cached
// Bits 8..15: the file's (or a directory's, for what is created in it)
// compression choice: 0 = the mount's -o compress, kInodeCompressNever =
// never, otherwise an EXTENT_DATA compression value; bits 16..23 its zstd
// level (0 = the default). Set through user.cairn.compress.
constexpr unsigned kInodeCompressShift = 8, kInodeCompressLevelShift = 16;
constexpr uint64_t kInodeCompressMask = 0xffffULL << kInodeCompressShift;
constexpr uint8_t kInodeCompressNever = 1;
inline uint8_t inode_compress_type(uint64_t flags) { return uint8_t(flags >> kInodeCompressShift); }
inline int inode_compress_level(uint64_t flags) { return int(uint8_t(flags >> kInodeCompressLevelShift)); }

// One name in an INODE_REF (key (ino, 12, parent dir)); an item holds a list.
struct InodeRefEntry {
  uint64_t index = 0;
  std::string name;
};
Bytes encode_inode_refs(const std::vector<InodeRefEntry>& refs);
Result<std::vector<InodeRefEntry>> decode_inode_refs(const Bytes& b);

// One entry of a DIR_ITEM (key (dir, 84, name hash)), DIR_INDEX (key (dir, 96, index))
// or XATTR_ITEM (key (ino, 24, name hash)). DIR_ITEM and XATTR_ITEM hold a list
// (hash collisions); DIR_INDEX exactly one.
struct DirEntry {
  Key location;          // the inode's key (ino, INODE_ITEM, 0); zero for xattrs
  uint64_t transid = 0;
  uint8_t type = 0;      // DT_* value of the inode; 0 for xattrs
  std::string name;
  Bytes data;            // xattr value; empty for directory entries
};
constexpr size_t kDirEntryHeaderSize = 17 + 8 + 2 + 2 + 1;
// One entry of a DIR_ITEM / DIR_INDEX / XATTR_ITEM as it lies in the item:
// for readers of millions of names (fsck) that should not copy each one.
struct DirEntryView {
  Key location;
  uint64_t transid = 0;
  uint8_t type = 0;
  std::string_view name;
  const uint8_t* data = nullptr;
  size_t data_len = 0;
};
// Every entry of the item, in order; false (and nothing more visited) if
// the item is malformed or empty, as decode_dir_entries's error.
template <class Fn>
bool visit_dir_entries(const Bytes& b, Fn&& fn) {
  size_t at = 0;
  while (at < b.size()) {
    if (b.size() - at < kDirEntryHeaderSize) return false;
    const uint8_t* p = &b[at];
    DirEntryView e;
    e.location = Key::decode(p);
    e.transid = get_le64(p + 17);
    const size_t data_len = get_le16(p + 25);
    const size_t name_len = get_le16(p + 27);
    e.type = p[29];
    if (name_len == 0 || b.size() - at - kDirEntryHeaderSize < name_len + data_len) return false;
    e.name = std::string_view(reinterpret_cast<const char*>(p + kDirEntryHeaderSize), name_len);
    e.data = p + kDirEntryHeaderSize + name_len;
    e.data_len = data_len;
    fn(e);
    at += kDirEntryHeaderSize + name_len + data_len;
  }
  return !b.empty();
}
// XATTR_ITEM entries whose value is large keep it in XATTR_CHUNK items
// (key (ino, 25, name_hash << 20 | chunk index)); the entry's type says so
// and its data holds the value length (u32).
constexpr uint8_t kXattrInline = 0;
constexpr uint8_t kXattrSpilled = 1;
Bytes encode_dir_entries(const std::vector<DirEntry>& entries);
Result<std::vector<DirEntry>> decode_dir_entries(const Bytes& b);

// EXTENT_DATA (fs tree, key (ino, 108, file offset)).
enum FileExtentType : uint8_t { kFileExtentInline = 0, kFileExtentRegular = 1, kFileExtentPrealloc = 2 };
struct FileExtent {
  static constexpr size_t kHeaderSize = 21;
  static constexpr size_t kRegularSize = 53;
  uint64_t generation = 0;
  uint64_t ram_bytes = 0;
  uint8_t compression = 0;
  uint8_t type = kFileExtentRegular;
  uint64_t disk_bytenr = 0;     // 0 for a hole that is recorded explicitly
  uint64_t disk_num_bytes = 0;  // size of the whole disk extent
  uint64_t offset = 0;          // offset into the disk extent where this file range starts
  uint64_t num_bytes = 0;       // length of the file range
  Bytes inline_data;
  Bytes encode() const;
  static Result<FileExtent> decode(const Bytes& b);
};

// EXTENT_ITEM (extent tree, key (bytenr, 168, length)) and METADATA_ITEM
// (key (bytenr, 169, level)): a reference count and its back references.
struct ExtentBackref {
  static constexpr size_t kTreeRefSize = 1 + 8;          // type, root
  static constexpr size_t kDataRefSize = 1 + 8 + 8 + 8 + 4;  // type, root, objectid, offset, count
  uint8_t type = 0;   // kTreeBlockRef or kExtentDataRef
  uint64_t root = 0;
  uint64_t objectid = 0;  // data: inode number
  uint64_t offset = 0;    // data: file offset the reference starts at (minus extent offset)
  uint32_t count = 1;     // data: references with this (root, ino, offset)
  auto operator<=>(const ExtentBackref&) const = default;
};
struct ExtentItem {
  uint64_t refs = 0;
  uint64_t generation = 0;
  uint64_t flags = 0;  // kExtentFlagData / kExtentFlagTreeBlock
  std::vector<ExtentBackref> backrefs;
  Bytes encode() const;
  static Result<ExtentItem> decode(const Bytes& b);
};

// DEV_STATS (root tree, key (0, 249, 0)): error counters kept across mounts.
struct DevStats {
  static constexpr size_t kSize = 64;
  uint64_t write_errors = 0, read_errors = 0, csum_errors = 0, corrected = 0, uncorrectable = 0;
  Bytes encode() const;
  static Result<DevStats> decode(const Bytes& b);
};

// SCRUB_PROGRESS (root tree, key (1, 248, 0)): where the last scrub stopped
// and what it had found, so `cairnctl scrub resume` continues from there
// and `scrub status` survives a remount.
enum ScrubState : uint8_t { kScrubNone = 0, kScrubRunning = 1, kScrubCancelled = 2, kScrubFinished = 3, kScrubFailed = 4 };
struct ScrubProgress {
  static constexpr size_t kSize = 128;
  uint8_t state = kScrubNone;
  uint64_t position = 0;        // logical address: everything below it is scrubbed
  int64_t started = 0;          // unix seconds
  uint64_t duration_ms = 0;     // time spent scrubbing (excluding pauses between resumes)
  uint64_t data_bytes = 0, metadata_bytes = 0;
  uint64_t data_errors = 0, data_corrected = 0, data_uncorrectable = 0;
  uint64_t meta_errors = 0, meta_corrected = 0, meta_uncorrectable = 0;
  uint64_t limit_bytes_per_sec = 0;  // 0: unthrottled
  uint64_t metadata_nodes = 0;       // tree nodes verified
  Bytes encode() const;
  static Result<ScrubProgress> decode(const Bytes& b);
};

// Directory and xattr name hash: the standard CRC-32C of the name.
uint64_t name_hash(std::string_view name);

}  // namespace cairn

#pragma once
// On-disk constants (docs/format.md, "Constants", "Trees", "Item types").

#include <cstdint>

namespace cairn {

constexpr uint64_t kSuperMagic = 0x3153464e52494143ULL;  // "CAIRNFS1" read as a little-endian u64
constexpr uint32_t kFormatVersion = 1;
constexpr uint32_t kSectorSize = 4096;
constexpr uint32_t kSuperblockSize = 4096;
constexpr uint32_t kDefaultNodeSize = 16384;
constexpr uint32_t kMinNodeSize = 4096;
constexpr uint32_t kMaxNodeSize = 65536;
constexpr int kMaxLevel = 8;  // tree height limit; a deeper tree is corrupt
// A writable mount is refused at this generation: a commit adds one, and a
// generation must never wrap (docs/format.md, "Superblock").
constexpr uint64_t kMaxWritableGeneration = 1ULL << 63;

// Superblock copies (docs/format.md, "Superblock locations").
constexpr uint64_t kSuperblockOffsets[] = {64ULL << 10, 64ULL << 20, 256ULL << 30};
constexpr int kNumSuperblockCopies = 3;
// Physical space reserved around each copy: chunks never cover it.
constexpr uint64_t kSuperblockReserve = 1ULL << 20;
constexpr uint64_t kMinDeviceSize = 64ULL << 20;

// The first logical address handed to a chunk; 0 is never a valid address.
constexpr uint64_t kFirstLogical = 1ULL << 20;

// Tree ids (node owner field and ROOT_ITEM objectids).
constexpr uint64_t kRootTreeId = 1;
constexpr uint64_t kExtentTreeId = 2;
constexpr uint64_t kChunkTreeId = 3;  // its root is in the superblock, not the root tree
constexpr uint64_t kFsTreeId = 5;
constexpr uint64_t kCsumTreeId = 7;
// Subvolumes and snapshots: fs trees with ids from here on (tree 5 is the
// top-level one).
constexpr uint64_t kFirstSubvolumeId = 256;
constexpr bool is_subvolume_id(uint64_t id) { return id == kFsTreeId || id >= kFirstSubvolumeId; }

// Reserved objectids.
constexpr uint64_t kFirstInode = 256;       // root directory of the fs tree
constexpr uint64_t kOrphanObjectId = ~0ULL - 4;   // -5: orphan items
constexpr uint64_t kCsumObjectId = ~0ULL - 9;     // -10: EXTENT_CSUM items
constexpr uint64_t kDevStatsObjectId = 0;         // DEV_STATS item in the root tree
constexpr uint64_t kScrubObjectId = 1;            // scrub progress item in the root tree
constexpr uint64_t kChunkItemObjectId = 256;      // objectid of CHUNK_ITEM keys in the chunk tree

// Item types: the key's type byte. Numbers follow btrfs where a btrfs
// counterpart exists, so the trees read familiarly.
enum ItemType : uint8_t {
  kInodeItem = 1,
  kInodeRef = 12,
  kXattrItem = 24,
  kXattrChunk = 25,
  kOrphanItem = 48,
  kDirItem = 84,
  kDirIndex = 96,
  kExtentData = 108,
  kExtentCsum = 128,
  kRootItem = 132,
  kRootBackref = 144,
  kRootRef = 156,
  kExtentItem = 168,
  kMetadataItem = 169,
  kTreeBlockRef = 176,
  kExtentDataRef = 178,
  kScrubProgress = 248,
  kChunkItem = 228,
  kDevStats = 249,
};

// Chunk types and profiles (docs/format.md, "Chunks"). System chunks hold
// the chunk tree's nodes and nothing else.
enum ChunkType : uint32_t { kChunkData = 1, kChunkMetadata = 2, kChunkSystem = 4 };
enum Profile : uint32_t { kProfileSingle = 0, kProfileDup = 1 };

// Extent item flags.
constexpr uint64_t kExtentFlagData = 1;
constexpr uint64_t kExtentFlagTreeBlock = 2;

// EXTENT_DATA `compression` values: btrfs's numbering where it has the
// algorithm (1 zlib and 2 lzo are btrfs's and not implemented), 4 for lz4.
constexpr uint8_t kCompressNone = 0;
constexpr uint8_t kCompressZstd = 3;
constexpr uint8_t kCompressLz4 = 4;
// A compressed extent decodes to at most this many bytes (btrfs's limit):
// a random read decompresses at most this much.
constexpr uint64_t kMaxCompressedRam = 128 * 1024;

// Feature flags. An image with unknown incompat bits is refused; unknown
// compat_ro bits allow a read-only open only.
// CHUNK_TREE: the chunk map is the chunk tree; the superblock's array holds
// only the system chunks (without it, the array holds every chunk: images
// made before the chunk tree, upgraded at their first commit).
constexpr uint64_t kIncompatChunkTree = 1;
// SHARED_TREES: tree blocks may be shared between trees (snapshots): a
// METADATA_ITEM's refs may exceed 1 and a node's owner may be another tree
// than the one that reaches it. Set by the first snapshot.
constexpr uint64_t kIncompatSharedTrees = 2;
// COMPRESSION: file extents may hold compressed data (EXTENT_DATA
// `compression` 3 zstd or 4 lz4). Set when the first compressed extent is
// recorded; older code would read the compressed bytes as the file's.
constexpr uint64_t kIncompatCompression = 4;
constexpr uint64_t kSupportedIncompat = kIncompatChunkTree | kIncompatSharedTrees | kIncompatCompression;
constexpr uint64_t kSupportedCompatRo = 0;

}  // namespace cairn

#include "format/tree_checker.h"

#include <sys/stat.h>

#include "format/chunk.h"
#include "format/constants.h"
#include "format/items.h"

namespace cairn {

namespace {

constexpr uint64_t kBlock = kSectorSize;

bool aligned(uint64_t v, uint64_t a) { return v % a == 0; }

// Collects violations of one leaf, with the place named once.
struct Report {
  const Node& n;
  size_t max;
  std::vector<std::string> out;
  size_t item = 0;
  bool full() const { return out.size() >= max; }
  void bad(const std::string& rule) {
    if (full()) return;
    out.push_back("node " + std::to_string(n.bytenr) + " (tree " + std::to_string(n.owner) + ") item " +
                  std::to_string(item) + " key " + n.keys[item].to_string() + ": " + rule);
  }
};

// [start, start + len) lies in the logical address space.
bool in_logical(const TreeCheckContext& c, uint64_t start, uint64_t len) {
  if (start < kFirstLogical || start + len < start) return false;
  return !c.logical_end || start + len <= c.logical_end;
}

void check_root_tree_item(Report& r, const TreeCheckContext& c, const Key& k, const Bytes& b) {
  switch (k.type) {
    case kRootItem: {
      if (k.offset != 0) return r.bad("ROOT_ITEM key offset must be 0");
      if (k.objectid == kRootTreeId) return r.bad("the root tree has no ROOT_ITEM (the superblock points at it)");
      auto ri = RootItem::decode(b);
      if (!ri.ok()) return r.bad(ri.status().message());
      if (ri->generation == 0) return r.bad("ROOT_ITEM generation is 0");
      if (c.max_generation && ri->generation > c.max_generation) return r.bad("ROOT_ITEM generation newer than the superblock");
      if (ri->level >= kMaxLevel) return r.bad("ROOT_ITEM level too high");
      if (!aligned(ri->bytenr, c.node_size) || !in_logical(c, ri->bytenr, c.node_size))
        return r.bad("ROOT_ITEM root address unaligned or outside the logical address space");
      return;
    }
    case kDevStats: {
      if (k.objectid != kDevStatsObjectId || k.offset != 0) return r.bad("DEV_STATS key must be (0, 249, 0)");
      auto d = DevStats::decode(b);
      if (!d.ok()) r.bad(d.status().message());
      return;
    }
    case kRootRef:
    case kRootBackref: {
      const uint64_t sub = k.type == kRootRef ? k.offset : k.objectid, parent = k.type == kRootRef ? k.objectid : k.offset;
      if (sub < kFirstSubvolumeId || !is_subvolume_id(parent) || sub == parent)
        return r.bad("ROOT_REF/ROOT_BACKREF between trees that are not subvolumes");
      auto rr = RootRefItem::decode(b);
      if (!rr.ok()) return r.bad(rr.status().message());
      if (!valid_entry_name(rr->name, false) || rr->dirid < kFirstInode || rr->sequence < 2)
        return r.bad("ROOT_REF/ROOT_BACKREF with a bad name, directory or index");
      return;
    }
    case kScrubProgress: {
      if (k.objectid != kScrubObjectId || k.offset != 0) return r.bad("SCRUB_PROGRESS key must be (1, 248, 0)");
      auto p = ScrubProgress::decode(b);
      if (!p.ok()) return r.bad(p.status().message());
      if (p->state > kScrubFailed) r.bad("SCRUB_PROGRESS state unknown");
      return;
    }
  }
  r.bad("item type not allowed in the root tree");
}

void check_extent_tree_item(Report& r, const TreeCheckContext& c, const Key& k, const Bytes& b) {
  if (k.type != kExtentItem && k.type != kMetadataItem) return r.bad("item type not allowed in the extent tree");
  const bool data = k.type == kExtentItem;
  const uint64_t len = data ? k.offset : c.node_size;
  if (data && (len == 0 || !aligned(len, kBlock))) return r.bad("EXTENT_ITEM length is 0 or not a multiple of 4096");
  if (!data && k.offset >= uint64_t(kMaxLevel)) return r.bad("METADATA_ITEM level too high");
  if (!aligned(k.objectid, data ? kBlock : c.node_size) || !in_logical(c, k.objectid, len))
    return r.bad("extent address unaligned or outside the logical address space");
  auto e = ExtentItem::decode(b);
  if (!e.ok()) return r.bad(e.status().message());
  if (e->refs == 0) return r.bad("extent with no references");
  if (e->flags != (data ? kExtentFlagData : kExtentFlagTreeBlock)) return r.bad("extent flags disagree with the key type");
  if (e->generation == 0 || (c.max_generation && e->generation > c.max_generation))
    r.bad("extent generation is 0 or newer than the superblock");
}

void check_csum_tree_item(Report& r, const TreeCheckContext& c, const Key& k, const Bytes& b) {
  if (k.type != kExtentCsum || k.objectid != kCsumObjectId) return r.bad("csum tree items must be (-10, 128, address)");
  const size_t cs = csum_size(c.csum_type);
  if (b.empty() || b.size() % cs) return r.bad("EXTENT_CSUM size is not a multiple of the checksum size");
  if (!aligned(k.offset, kBlock) || !in_logical(c, k.offset, b.size() / cs * kBlock))
    r.bad("EXTENT_CSUM range unaligned or outside the logical address space");
}

void check_entries(Report& r, const Key& k, const Bytes& b) {
  auto list = decode_dir_entries(b);
  if (!list.ok()) return r.bad(list.status().message());
  const bool xattr = k.type == kXattrItem;
  if (k.type == kDirIndex && list->size() != 1) return r.bad("DIR_INDEX holds more than one entry");
  if (k.type == kDirIndex && k.offset < 2) return r.bad("DIR_INDEX sequence below 2 (0 and 1 are . and ..)");
  for (const DirEntry& e : *list) {
    if (!valid_entry_name(e.name, xattr)) return r.bad("entry name empty, too long or with '/' or NUL");
    if (k.type != kDirIndex && name_hash(e.name) != k.offset) return r.bad("entry name does not hash to the key offset");
    if (xattr) {
      if (e.type != kXattrInline && e.type != kXattrSpilled) return r.bad("xattr entry flag unknown");
      if (e.type == kXattrSpilled && e.data.size() != 4) return r.bad("spilled xattr entry without its 4-byte length");
      if (e.location != Key{}) return r.bad("xattr entry with a location");
    } else {
      // An inode of this tree, or (a subvolume's entry) another tree's root.
      const bool subvol = e.location.type == kRootItem && e.location.offset == 0 && e.location.objectid >= kFirstSubvolumeId &&
                          e.location.objectid < kOrphanObjectId && e.type == 4 /* DT_DIR */;
      if (!subvol && (e.location.type != kInodeItem || e.location.offset != 0 || e.location.objectid < kFirstInode ||
                      e.location.objectid >= kOrphanObjectId))
        return r.bad("directory entry location is not an inode key");
      if (!e.data.empty()) return r.bad("directory entry with data");
      if (e.type == 0 || e.type > 14) return r.bad("directory entry file type unknown");
    }
  }
}

void check_file_extent(Report& r, const TreeCheckContext& c, const Key& k, const Bytes& b) {
  if (!aligned(k.offset, kBlock)) return r.bad("EXTENT_DATA file offset not a multiple of 4096");
  auto fe = FileExtent::decode(b);
  if (!fe.ok()) return r.bad(fe.status().message());
  if (fe->generation == 0 || (c.max_generation && fe->generation > c.max_generation))
    return r.bad("EXTENT_DATA generation is 0 or newer than the superblock");
  if (fe->type == kFileExtentInline) {
    if (k.offset != 0) return r.bad("inline extent not at file offset 0");
    if (fe->ram_bytes != fe->inline_data.size()) return r.bad("inline extent length disagrees with its data");
    return;
  }
  if (fe->type != kFileExtentRegular && fe->type != kFileExtentPrealloc) return r.bad("EXTENT_DATA type unknown");
  if (fe->num_bytes == 0 || !aligned(fe->num_bytes, kBlock) || !aligned(fe->offset, kBlock))
    return r.bad("EXTENT_DATA length is 0 or lengths not multiples of 4096");
  if (k.offset > kMaxFileSize || fe->num_bytes > kMaxFileSize - k.offset)
    return r.bad("EXTENT_DATA reaches past the largest file size");
  if (fe->disk_bytenr == 0) {
    if (fe->type == kFileExtentPrealloc) return r.bad("preallocated extent without disk space");
    return;
  }
  if (!aligned(fe->disk_bytenr, kBlock) || !aligned(fe->disk_num_bytes, kBlock) || fe->disk_num_bytes == 0 ||
      !in_logical(c, fe->disk_bytenr, fe->disk_num_bytes))
    return r.bad("EXTENT_DATA disk extent unaligned or outside the logical address space");
  // A compressed extent's range is in decoded bytes (FileExtent::decode checked it).
  if (fe->compression == kCompressNone &&
      (fe->offset > fe->disk_num_bytes || fe->num_bytes > fe->disk_num_bytes - fe->offset))
    r.bad("EXTENT_DATA reads past the end of its disk extent");
}

void check_chunk_tree_item(Report& r, const TreeCheckContext& c, const Key& k, const Bytes& b) {
  if (k.objectid != kChunkItemObjectId || k.type != kChunkItem) return r.bad("item type not allowed in the chunk tree");
  if (b.size() != Chunk::kDiskSize) return r.bad("CHUNK_ITEM is not 48 bytes");
  const Chunk ch = Chunk::decode(b.data());
  if (ch.logical != k.offset) return r.bad("CHUNK_ITEM key offset is not the chunk's logical address");
  Status st = validate_chunk(ch, c.device_size ? c.device_size : ~0ULL, c.node_size, c.logical_end);
  if (!st.ok()) r.bad(st.message());
}

void check_fs_tree_item(Report& r, const TreeCheckContext& c, const Key& k, const Bytes& b) {
  if (k.type == kOrphanItem) {
    if (k.objectid != kOrphanObjectId) return r.bad("ORPHAN_ITEM key objectid must be -5");
    if (k.offset <= kFirstInode || k.offset >= kOrphanObjectId) return r.bad("ORPHAN_ITEM names the root or no inode");
    if (!b.empty()) r.bad("ORPHAN_ITEM with data");
    return;
  }
  if (k.objectid < kFirstInode || k.objectid >= kOrphanObjectId) return r.bad("fs tree item of a reserved inode number");
  switch (k.type) {
    case kInodeItem: {
      if (k.offset != 0) return r.bad("INODE_ITEM key offset must be 0");
      auto in = InodeItem::decode(b);
      if (!in.ok()) return r.bad(in.status().message());
      if (in->size > kMaxFileSize) return r.bad("inode size beyond the largest file size");
      if (in->nbytes > kMaxFileSize || !aligned(in->nbytes, kBlock)) return r.bad("inode nbytes unaligned or too large");
      switch (in->mode & S_IFMT) {
        case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK: break;
        default: return r.bad("inode file type unknown");
      }
      if (in->generation == 0 || (c.max_generation && in->generation > c.max_generation))
        r.bad("inode generation is 0 or newer than the superblock");
      return;
    }
    case kInodeRef: {
      if (k.offset < kFirstInode || k.offset >= kOrphanObjectId) return r.bad("INODE_REF parent is not an inode number");
      auto refs = decode_inode_refs(b);
      if (!refs.ok()) return r.bad(refs.status().message());
      for (const auto& e : *refs)
        if (!valid_entry_name(e.name, false)) return r.bad("INODE_REF name empty, too long or with '/' or NUL");
      return;
    }
    case kDirItem:
    case kDirIndex:
    case kXattrItem:
      return check_entries(r, k, b);
    case kXattrChunk:
      if (b.empty()) return r.bad("empty XATTR_CHUNK");
      if ((k.offset >> 20) > 0xFFFFFFFFULL) r.bad("XATTR_CHUNK key offset is not (name hash << 20 | index)");
      return;
    case kExtentData:
      return check_file_extent(r, c, k, b);
  }
  r.bad("item type not allowed in the fs tree");
}

}  // namespace

bool valid_entry_name(const std::string& name, bool is_xattr) {
  if (name.empty() || name.size() > 255) return false;
  for (char ch : name)
    if (ch == '\0' || (!is_xattr && ch == '/')) return false;
  return true;
}

std::vector<std::string> check_leaf(const Node& n, const TreeCheckContext& c, size_t max) {
  Report r{n, max, {}, 0};
  if (!n.is_leaf()) return {};
  for (r.item = 0; r.item < n.nritems() && !r.full(); r.item++) {
    const Key& k = n.keys[r.item];
    const Bytes& b = n.items[r.item];
    switch (n.owner) {
      case kRootTreeId: check_root_tree_item(r, c, k, b); break;
      case kExtentTreeId: check_extent_tree_item(r, c, k, b); break;
      case kCsumTreeId: check_csum_tree_item(r, c, k, b); break;
      case kChunkTreeId: check_chunk_tree_item(r, c, k, b); break;
      case kFsTreeId: check_fs_tree_item(r, c, k, b); break;
      default: return r.out;  // key/value trees: structure only
    }
  }
  return r.out;
}

}  // namespace cairn

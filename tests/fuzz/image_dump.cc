#include "image_dump.h"

#include <cstring>

#include "alloc/chunk_map.h"
#include "format/constants.h"
#include "format/node.h"
#include "format/superblock.h"
#include "fuzz_common.h"
#include "tree/engine.h"

namespace cairn::fuzz {

bool image_from_dump(const uint8_t* data, size_t size, MemoryDevice& dev,
                     std::vector<std::pair<uint64_t, uint64_t>>* written) {
  auto put = [&](uint64_t at, const std::vector<uint8_t>& b) {
    if (at + b.size() > dev.size()) return;
    (void)dev.write(at, b.data(), b.size());
    if (written) written->push_back({at, b.size()});
  };
  if (size < kSuperblockSize) return false;
  std::vector<uint8_t> sbuf(data, data + kSuperblockSize);
  fix_csum(sbuf.data(), sbuf.size(), superblock_csum_type(sbuf.data()));
  for (uint64_t off : kSuperblockOffsets) put(off, sbuf);
  auto sb = Superblock::decode(sbuf.data(), kSuperblockOffsets[0]);
  if (!sb.ok()) return false;
  ChunkMap chunks(sb->total_bytes, sb->chunks, sb->next_chunk_logical);
  const size_t rec = 8 + sb->node_size;
  std::vector<uint8_t> node(sb->node_size);
  // The superblock maps only the system chunks: the chunk tree's leaves in
  // the dump map the rest (valid chunk items only, as the engine would).
  if (sb->has_chunk_tree()) {
    for (size_t at = kSuperblockSize; at + rec <= size; at += rec) {
      std::memcpy(node.data(), data + at + 8, sb->node_size);
      fix_csum(node.data(), node.size(), sb->csum_type);
      NodeExpectation ex;
      ex.bytenr = get_le64(data + at);
      ex.owner = kChunkTreeId;
      ex.level = 0;
      auto n = decode_node(node.data(), sb->fsid, sb->csum_type, sb->node_size, ex);
      if (!n.ok()) continue;
      for (const Bytes& item : n->items) {
        if (item.size() != Chunk::kDiskSize) continue;
        Chunk c = Chunk::decode(item.data());
        if (!validate_chunk(c, sb->total_bytes, sb->node_size, sb->next_chunk_logical).ok()) continue;
        if (chunks.find(c.logical) || chunks.find(c.logical + c.length - 1)) continue;
        chunks.load(c);
      }
    }
  }
  for (size_t at = kSuperblockSize; at + rec <= size; at += rec) {
    const uint64_t logical = get_le64(data + at);
    std::memcpy(node.data(), data + at + 8, sb->node_size);
    fix_csum(node.data(), node.size(), sb->csum_type);
    auto copies = chunks.map(logical, sb->node_size);
    if (!copies.ok()) continue;
    for (uint64_t p : *copies) put(p, node);
  }
  return true;
}

Result<std::vector<uint8_t>> dump_from_image(std::shared_ptr<BlockDevice> dev) {
  EngineOptions o;
  o.read_only = true;
  ASSIGN_OR_RETURN(auto e, Engine::open(dev, o));
  std::vector<uint8_t> out(kSuperblockSize);
  RETURN_IF_ERROR(dev->read(kSuperblockOffsets[0], out.data(), out.size()));
  // Every tree block: the chunk tree's, then those the extent tree lists.
  std::vector<uint64_t> nodes;
  {
    ASSIGN_OR_RETURN(auto blocks, e->chunk_tree_blocks());
    for (auto [b, level] : blocks) nodes.push_back(b);
  }
  // The free-space cache's blocks (a clean unmount made the seed image):
  // the mount trusts what passes their checks, so they are fuzzed too.
  nodes.insert(nodes.end(), e->space_cache_blocks().begin(), e->space_cache_blocks().end());
  {
    BTree t = e->tree(kExtentTreeId);
    Cursor c = t.cursor();
    RETURN_IF_ERROR(c.seek(Key::Min()));
    for (; c.valid(); c.advance())
      if (c.key().type == kMetadataItem) nodes.push_back(c.key().objectid);
    RETURN_IF_ERROR(c.status());
  }
  const uint32_t ns = e->node_size();
  std::vector<uint8_t> buf(ns);
  for (uint64_t logical : nodes) {
    ASSIGN_OR_RETURN(auto copies, e->chunk_map().map(logical, ns));
    RETURN_IF_ERROR(dev->read(copies[0], buf.data(), ns));
    uint8_t addr[8];
    put_le64(addr, logical);
    out.insert(out.end(), addr, addr + 8);
    out.insert(out.end(), buf.begin(), buf.end());
  }
  return out;
}

}  // namespace cairn::fuzz

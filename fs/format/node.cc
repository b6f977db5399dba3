// Node codec: implements docs/format.md, "Node header", "Leaf" and "Internal node".
#include "format/node.h"

#include <cstdio>
#include <cstring>

#include "util/endian.h"
#include "util/hex.h"

namespace cairn {

namespace {
enum : size_t {
  kOffCsum = 0,
  kOffFsid = 32,
  kOffBytenr = 48,
  kOffFlags = 56,
  kOffGeneration = 64,
  kOffOwner = 72,
  kOffNritems = 80,
  kOffLevel = 84,
};

}  // namespace

size_t Node::leaf_used() const {
  size_t n = keys.size() * kLeafItemHeaderSize;
  for (const auto& it : items) n += it.size();
  return n;
}

void encode_node(const Node& n, const Uuid& fsid, CsumType ct, uint32_t node_size, uint8_t* buf) {
  std::memset(buf, 0, node_size);
  std::memcpy(buf + kOffFsid, fsid.data(), 16);
  put_le64(buf + kOffBytenr, n.bytenr);
  put_le64(buf + kOffFlags, n.flags);
  put_le64(buf + kOffGeneration, n.generation);
  put_le64(buf + kOffOwner, n.owner);
  put_le32(buf + kOffNritems, uint32_t(n.keys.size()));
  put_u8(buf + kOffLevel, n.level);
  if (n.is_leaf()) {
    // Payloads are packed from the end of the node downwards, item 0 last
    // in memory order's reverse (highest address), as btrfs leaves are.
    size_t data_end = node_size;
    for (size_t i = 0; i < n.keys.size(); i++) {
      uint8_t* ih = buf + kNodeHeaderSize + i * kLeafItemHeaderSize;
      const auto& d = n.items[i];
      data_end -= d.size();
      n.keys[i].encode(ih);
      put_le32(ih + Key::kDiskSize, uint32_t(data_end));
      put_le32(ih + Key::kDiskSize + 4, uint32_t(d.size()));
      if (!d.empty()) std::memcpy(buf + data_end, d.data(), d.size());
    }
  } else {
    for (size_t i = 0; i < n.keys.size(); i++) {
      uint8_t* kp = buf + kNodeHeaderSize + i * kKeyPtrSize;
      n.keys[i].encode(kp);
      put_le64(kp + Key::kDiskSize, n.ptrs[i]);
      put_le64(kp + Key::kDiskSize + 8, n.ptr_gens[i]);
    }
  }
  uint8_t sum[kMaxCsumSize];
  csum_compute(ct, buf + kMaxCsumSize, node_size - kMaxCsumSize, sum);
  std::memcpy(buf + kOffCsum, sum, kMaxCsumSize);
}

Result<Node> decode_node(const uint8_t* buf, const Uuid& fsid, CsumType ct, uint32_t node_size,
                         const NodeExpectation& expect) {
  const std::string where = "node " + hex(expect.bytenr);
  if (!csum_verify(ct, buf + kMaxCsumSize, node_size - kMaxCsumSize, buf + kOffCsum))
    return Status::Corruption(where + ": checksum mismatch");
  for (size_t i = csum_size(ct); i < kMaxCsumSize; i++)
    if (buf[kOffCsum + i]) return Status::Corruption(where + ": checksum padding is not zero");
  if (std::memcmp(buf + kOffFsid, fsid.data(), 16) != 0)
    return Status::Corruption(where + ": belongs to another filesystem (fsid mismatch)");
  Node n;
  n.bytenr = get_le64(buf + kOffBytenr);
  n.flags = get_le64(buf + kOffFlags);
  n.generation = get_le64(buf + kOffGeneration);
  n.owner = get_le64(buf + kOffOwner);
  n.level = get_u8(buf + kOffLevel);
  const uint32_t nritems = get_le32(buf + kOffNritems);
  if (n.bytenr != expect.bytenr) return Status::Corruption(where + ": header says it is at " + hex(n.bytenr));
  if (n.generation == 0) return Status::Corruption(where + ": generation 0");
  if (n.level >= kMaxLevel) return Status::Corruption(where + ": level " + std::to_string(n.level) + " too high");
  if (expect.level >= 0 && n.level != expect.level)
    return Status::Corruption(where + ": level " + std::to_string(n.level) + ", expected " + std::to_string(expect.level));
  if (expect.owner && n.owner != expect.owner)
    return Status::Corruption(where + ": owned by tree " + std::to_string(n.owner) + ", expected " + std::to_string(expect.owner));
  if (expect.generation && n.generation != expect.generation)
    return Status::Corruption(where + ": generation " + std::to_string(n.generation) + ", parent expects " +
                              std::to_string(expect.generation));
  if (expect.max_generation && n.generation > expect.max_generation)
    return Status::Corruption(where + ": generation " + std::to_string(n.generation) + " newer than the superblock's " +
                              std::to_string(expect.max_generation));

  if (n.level == 0) {
    if (kNodeHeaderSize + size_t(nritems) * kLeafItemHeaderSize > node_size)
      return Status::Corruption(where + ": item count " + std::to_string(nritems) + " does not fit");
    const size_t items_end = kNodeHeaderSize + size_t(nritems) * kLeafItemHeaderSize;
    size_t expected_end = node_size;  // payloads must be packed contiguously downwards
    n.keys.reserve(nritems);
    n.items.reserve(nritems);
    for (uint32_t i = 0; i < nritems; i++) {
      const uint8_t* ih = buf + kNodeHeaderSize + size_t(i) * kLeafItemHeaderSize;
      Key k = Key::decode(ih);
      uint32_t off = get_le32(ih + Key::kDiskSize);
      uint32_t size = get_le32(ih + Key::kDiskSize + 4);
      if (size_t(off) + size != expected_end || off < items_end)
        return Status::Corruption(where + ": item " + std::to_string(i) + " data out of bounds");
      expected_end = off;
      if (i > 0 && !(n.keys.back() < k))
        return Status::Corruption(where + ": keys out of order at item " + std::to_string(i) + " " + k.to_string());
      n.keys.push_back(k);
      n.items.emplace_back(buf + off, buf + off + size);
    }
  } else {
    if (nritems == 0) return Status::Corruption(where + ": internal node with no children");
    if (kNodeHeaderSize + size_t(nritems) * kKeyPtrSize > node_size)
      return Status::Corruption(where + ": pointer count " + std::to_string(nritems) + " does not fit");
    n.keys.reserve(nritems);
    n.ptrs.reserve(nritems);
    n.ptr_gens.reserve(nritems);
    for (uint32_t i = 0; i < nritems; i++) {
      const uint8_t* kp = buf + kNodeHeaderSize + size_t(i) * kKeyPtrSize;
      Key k = Key::decode(kp);
      uint64_t ptr = get_le64(kp + Key::kDiskSize);
      uint64_t gen = get_le64(kp + Key::kDiskSize + 8);
      if (i > 0 && !(n.keys.back() < k))
        return Status::Corruption(where + ": keys out of order at pointer " + std::to_string(i));
      if (ptr == 0 || ptr % node_size) return Status::Corruption(where + ": bad child pointer " + hex(ptr));
      // 0 would turn the child's generation check off.
      if (gen == 0) return Status::Corruption(where + ": child generation 0 at pointer " + std::to_string(i));
      if (gen > n.generation)
        return Status::Corruption(where + ": child generation " + std::to_string(gen) + " newer than the node");
      n.keys.push_back(k);
      n.ptrs.push_back(ptr);
      n.ptr_gens.push_back(gen);
    }
  }
  return n;
}

}  // namespace cairn

// libFuzzer target: every item codec and the tree checker's rules for one
// item. Input: byte 0 picks the tree (root, extent, fs, csum), bytes 1..17
// are the key, the rest the payload. Whatever decodes must re-encode to a
// payload that decodes to the same value.
#include <cstdlib>
#include <vector>

#include "format/constants.h"
#include "format/items.h"
#include "format/node.h"
#include "format/tree_checker.h"

using namespace cairn;

namespace {

template <typename T>
void roundtrip(const Bytes& b) {
  auto v = T::decode(b);
  if (!v.ok()) return;
  auto again = T::decode(v->encode());
  if (!again.ok() || again->encode() != v->encode()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 + Key::kDiskSize) return 0;
  static const uint64_t kOwners[] = {kRootTreeId, kExtentTreeId, kFsTreeId, kCsumTreeId};
  Node n;
  n.bytenr = 1 << 20;
  n.generation = 1;
  n.owner = kOwners[data[0] % 4];
  n.keys.push_back(Key::decode(data + 1));
  n.items.emplace_back(data + 1 + Key::kDiskSize, data + size);
  const Bytes& b = n.items[0];
  const TreeCheckContext tc{16384, CsumType::kCrc32c, 1000, 1ULL << 40};
  (void)check_leaf(n, tc, 64);
  roundtrip<RootItem>(b);
  roundtrip<InodeItem>(b);
  roundtrip<FileExtent>(b);
  roundtrip<ExtentItem>(b);
  roundtrip<DevStats>(b);
  roundtrip<ScrubProgress>(b);
  if (auto refs = decode_inode_refs(b); refs.ok()) {
    auto again = decode_inode_refs(encode_inode_refs(*refs));
    if (!again.ok() || again->size() != refs->size()) std::abort();
  }
  if (auto ents = decode_dir_entries(b); ents.ok()) {
    auto again = decode_dir_entries(encode_dir_entries(*ents));
    if (!again.ok() || again->size() != ents->size()) std::abort();
  }
  return 0;
}

// libFuzzer target: the node decoder and the tree checker on any block,
// checksum made valid and fsid set first, as if a hostile writer had made
// it. A node that passes both is re-encoded and must decode identically.
#include <cstdlib>
#include <vector>

#include "format/node.h"
#include "format/tree_checker.h"
#include "fuzz_common.h"

using namespace cairn;

namespace {
constexpr uint32_t kNodeSize = 4096;  // small nodes: more structure per input byte
const Uuid kFsid{};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> buf(kNodeSize, 0);
  std::memcpy(buf.data(), data, std::min<size_t>(size, buf.size()));
  std::memcpy(buf.data() + 32, kFsid.data(), 16);
  fuzz::fix_csum(buf.data(), buf.size(), CsumType::kCrc32c);
  NodeExpectation e;
  e.bytenr = get_le64(buf.data() + 48);
  e.max_generation = 1ULL << 40;
  auto n = decode_node(buf.data(), kFsid, CsumType::kCrc32c, kNodeSize, e);
  if (!n.ok()) return 0;
  const TreeCheckContext tc{kNodeSize, CsumType::kCrc32c, 1ULL << 40, 1ULL << 40};
  (void)check_leaf(*n, tc, 64);
  std::vector<uint8_t> again(kNodeSize, 0);
  encode_node(*n, kFsid, CsumType::kCrc32c, kNodeSize, again.data());
  auto n2 = decode_node(again.data(), kFsid, CsumType::kCrc32c, kNodeSize, e);
  if (!n2.ok() || n2->keys != n->keys || n2->items != n->items || n2->ptrs != n->ptrs) std::abort();
  return 0;
}

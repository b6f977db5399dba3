#pragma once
// fsck --check-data, for compressed extents: every compressed disk extent
// of every live fs tree decodes to exactly its file extent items'
// `ram_bytes` (docs/design.md, "Compression"). Checksums over the disk
// bytes are scrub's job; this finds extents whose verified bytes do not
// decode (written wrong, or a hostile image with valid checksums).

#include <cstdint>
#include <vector>

#include "check/checker.h"
#include "tree/engine.h"

namespace cairn {

struct CompressedCheckStats {
  uint64_t extents = 0, disk_bytes = 0, ram_bytes = 0;
};

// Engine opened on the image (read-only is enough). Problems appended to
// `out` with code "compressed-decode"; operational failures returned.
Status check_compressed_extents(Engine& e, std::vector<Problem>* out, CompressedCheckStats* stats);

}  // namespace cairn

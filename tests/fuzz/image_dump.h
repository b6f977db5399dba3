#pragma once
// The whole-image fuzz target's input: a filesystem's metadata, compact
// enough for a fuzzer to mutate (a 64 MiB image is not):
//
//   [superblock, 4096 bytes] then, per tree node: [logical address, u64 LE][node bytes]
//
// `image_from_dump` lays it out on a device as the superblock's chunk map
// says (every copy), with every checksum made valid, so the mutations reach
// the engine's and fsck's validation behind the checksums.
// `dump_from_image` makes one from a real image (the seed corpus).
#include <cstdint>
#include <vector>

#include "dev/block_device.h"
#include "util/status.h"

namespace cairn::fuzz {

// False when the dump's superblock cannot even be decoded (nothing more to
// lay out). Every range written is added to `written` (so a reused device
// can be cleared again cheaply).
bool image_from_dump(const uint8_t* data, size_t size, MemoryDevice& dev,
                     std::vector<std::pair<uint64_t, uint64_t>>* written = nullptr);
Result<std::vector<uint8_t>> dump_from_image(std::shared_ptr<BlockDevice> dev);

}  // namespace cairn::fuzz

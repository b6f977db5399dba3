#pragma once
// Shared helpers for engine unit tests: fresh in-memory filesystems and
// opening an image after the fact.
#include <memory>
#include <vector>

#include "dev/block_device.h"
#include "tree/engine.h"

namespace cairn::test {

constexpr uint64_t kTestDeviceSize = 128ULL << 20;

// A freshly formatted filesystem on a memory device.
std::shared_ptr<MemoryDevice> make_formatted_memory(const MkfsParams& p = {}, uint64_t size = kTestDeviceSize);
// Add an opaque key/value tree (fsck checks its structure only) and commit.
void add_kv_tree(std::shared_ptr<BlockDevice> dev, uint64_t id);
std::unique_ptr<Engine> open_engine(std::shared_ptr<BlockDevice> dev, bool read_only = false);

}  // namespace cairn::test

#pragma once
// The fsck core: checks every structure of an unmounted image without
// writing to it (docs/design.md, "fsck").
//
// It deliberately does not go through Engine::open, which stops at the
// first damaged structure: the checker walks each tree itself, reading
// every copy of every node, and keeps going past damage so the report names
// every problem it can reach.
//
// Thread-safety: single-threaded; one checker per image.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dev/block_device.h"
#include "format/key.h"
#include "util/status.h"

namespace cairn {

struct Problem {
  std::string code;     // stable identifier, e.g. "node-corrupt", "extent-refs"
  std::string message;  // human sentence naming the location
  uint64_t tree = 0;
  uint64_t bytenr = 0;  // logical address of the node or extent concerned (0: none)
  bool has_key = false;
  Key key;
  bool warning = false;  // worth reporting, but a state a crash can leave: not an error
  uint64_t expected = 0; // link-count: the count the names add up to
  bool data_extent = false;  // extent-*: bytenr is a data extent (not a tree block)
};

struct CheckStats {
  uint64_t generation = 0;
  uint64_t trees = 0, nodes = 0, items = 0;
  uint64_t data_extents = 0, data_bytes = 0, tree_bytes = 0;
  uint64_t inodes = 0, csum_items = 0;
  uint64_t chunks = 0;
  uint64_t space_cache_ranges = 0;  // ranges in a valid free-space cache (0: none)
  uint64_t log_writes = 0, log_records = 0;  // the fsync log the next mount replays
};

struct CheckReport {
  std::vector<Problem> problems;
  CheckStats stats;
  // Clean: no errors (warnings allowed).
  bool clean() const {
    for (const auto& p : problems)
      if (!p.warning) return false;
    return true;
  }
  nlohmann::json to_json() const;
};

struct CheckOptions {
  // Called with a fraction done, for a progress bar.
  std::function<void(double)> progress;
};

// Operational failures (unreadable device) are returned as a Status; every
// problem with the filesystem itself goes into the report.
Result<CheckReport> check_filesystem(BlockDevice& dev, const CheckOptions& opts = {});

}  // namespace cairn

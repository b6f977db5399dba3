#pragma once
// Reading and replaying the fsync log (docs/design.md, "Fsync log").
//
// The chain starts at the superblock's log_start (when the log belongs to
// its generation) and goes on while each write checks: the first that does
// not (never written, torn, stale, lying) ends it. The data the last write
// points at is checked against the checksums it carries: one flush made
// that write and its data durable together, so a crash before the flush
// may leave the write without its data, and then none of its fsyncs had
// returned: the write is dropped. Earlier writes were each followed by a
// flush before the next began.
//
// Replay applies the records in order on top of the last commit, as the
// write path would have: each logged range of a file is emptied and
// filled with the logged pieces (references taken, new data extents
// added with their checksums), and the inode item is set. Everything is
// checked before it is used: an inode the commit does not hold, data
// outside the data chunks or over space in use stops the mount with an
// error and nothing written.

#include <string>
#include <utility>
#include <vector>

#include "alloc/chunk_map.h"
#include "data/file_data.h"
#include "dev/block_device.h"
#include "format/log_write.h"
#include "format/superblock.h"
#include "tree/engine.h"

namespace cairn {

struct LogChain {
  std::vector<LogWrite> writes;
  std::vector<std::pair<uint64_t, uint64_t>> extents;  // (logical, bytes) of each write
  std::string end;  // why the chain ends after the last write
  bool dropped_last = false;  // a write whose data was not all on disk was dropped
  size_t records() const;
};

// The valid writes of `sb`'s log (none when it has no log of its own generation).
Result<LogChain> read_fsync_log(BlockDevice& dev, const ChunkMap& chunks, const Superblock& sb);

struct ReplayReport {
  uint64_t writes = 0, records = 0, files = 0;
  std::string end;
  bool dropped_last = false;
};

// Engine mutex held, read-write open, before anything else changes: apply
// the log of the open generation. The caller commits.
Status replay_fsync_log(Engine& e, FileData& data, ReplayReport* rep);

// The same for the offline tools that open an image read-write and commit
// (fsck --repair, cairnctl scrub of an image): their commit would make the
// log obsolete, so what was fsynced goes into it first. Takes the mutex.
Status replay_fsync_log_offline(Engine& e, ReplayReport* rep);

}  // namespace cairn

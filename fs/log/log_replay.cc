#include "log/log_replay.h"

#include <sys/stat.h>

#include <optional>
#include <set>

#include "csum/checksum.h"
#include "format/constants.h"

namespace cairn {

namespace {

constexpr uint64_t kBlock = kSectorSize;

// The disk bytes a piece's checksums cover.
std::pair<uint64_t, uint64_t> checksummed(const FileExtent& fe) {
  if (fe.compression != kCompressNone) return {fe.disk_bytenr, fe.disk_num_bytes};
  return {fe.disk_bytenr + fe.offset, fe.num_bytes};
}

// Every copy of the data `p` points at matches its checksums.
Result<bool> data_on_disk(BlockDevice& dev, const ChunkMap& chunks, CsumType type, const LoggedPiece& p) {
  if (p.csums.empty()) return true;
  auto [at, len] = checksummed(p.extent);
  const Chunk* ch = chunks.find(at);
  if (!ch || ch->type != kChunkData || !ch->contains(at, len)) return false;
  ASSIGN_OR_RETURN(auto copies, chunks.map(at, len));
  const size_t cs = csum_size(type);
  std::vector<uint8_t> buf(len);
  for (uint64_t phys : copies) {
    if (!dev.read(phys, buf.data(), len).ok()) return false;
    for (uint64_t i = 0; i < len / kBlock; i++)
      if (!csum_verify(type, buf.data() + i * kBlock, kBlock, p.csums.data() + i * cs)) return false;
  }
  return true;
}

// One write of the chain at `at`, from the first copy that checks.
std::optional<LogWrite> read_write(BlockDevice& dev, const ChunkMap& chunks, const Superblock& sb, uint64_t at,
                                   uint64_t seq, uint32_t* len, std::string* why) {
  const Chunk* ch = chunks.find(at);
  if (!ch || ch->type != kChunkMetadata || !ch->contains(at, LogWrite::kBlock)) {
    *why = "the next write lies outside the metadata chunks";
    return std::nullopt;
  }
  auto copies = chunks.map(at, LogWrite::kBlock);
  if (!copies.ok()) {
    *why = copies.status().message();
    return std::nullopt;
  }
  *why = "no log write there";
  std::vector<uint8_t> buf(LogWrite::kMaxBytes);
  for (uint64_t phys : copies.value()) {
    if (Status st = dev.read(phys, buf.data(), LogWrite::kBlock); !st.ok()) {
      *why = st.message();
      continue;
    }
    const uint32_t n = LogWrite::claimed_length(sb, buf.data(), at, sb.generation, seq);
    if (n == 0) continue;
    if (!ch->contains(at, n)) {
      *why = "the write runs past its chunk";
      continue;
    }
    if (Status st = dev.read(phys + LogWrite::kBlock, buf.data() + LogWrite::kBlock, n - LogWrite::kBlock); !st.ok()) {
      *why = st.message();
      continue;
    }
    auto w = LogWrite::decode(sb, buf.data(), n, at, sb.generation, seq);
    if (!w.ok()) {
      *why = w.status().message();
      continue;
    }
    *len = n;
    return std::move(w).value();
  }
  return std::nullopt;
}

Result<bool> extent_exists(Engine& e, uint64_t bytenr, uint64_t len) {
  auto raw = e.tree(kExtentTreeId).lookup(Key{bytenr, kExtentItem, len});
  if (raw.ok()) return true;
  if (raw.status().is_not_found()) return false;
  return raw.status();
}

Status apply_record(Engine& e, FileData& data, const LogRecord& r) {
  if (!e.has_tree(r.root) || (e.root_ref(r.root).flags & (kRootFlagDead | kRootFlagKeyValue)))
    return Status::Corruption("the log names tree " + std::to_string(r.root) + ", which holds no files");
  BTree fs = e.tree(r.root);
  auto raw = fs.lookup(Key{r.ino, kInodeItem, 0});
  if (!raw.ok()) {
    if (raw.status().is_not_found())
      return Status::Corruption("the log names inode " + std::to_string(r.ino) + ", which the last commit does not hold");
    return raw.status();
  }
  ASSIGN_OR_RETURN(InodeItem cur, InodeItem::decode(raw.value()));
  if (!S_ISREG(cur.mode) || cur.generation != r.item.generation)
    return Status::Corruption("inode " + std::to_string(r.ino) + " is not the regular file the log describes");
  FileState f(r.ino, r.root);
  f.item = cur;
  f.disk_size = cur.size;
  for (const LoggedRange& rg : r.ranges) {
    // References to extents the commit holds are taken first, so that
    // emptying the range never frees one the log keeps.
    std::vector<bool> counted(rg.pieces.size(), false);
    for (size_t i = 0; i < rg.pieces.size(); i++) {
      const FileExtent& fe = rg.pieces[i].extent;
      if (fe.disk_bytenr == 0) continue;
      ASSIGN_OR_RETURN(bool exists, extent_exists(e, fe.disk_bytenr, fe.disk_num_bytes));
      if (!exists) continue;
      RETURN_IF_ERROR(e.add_data_ref(fe.disk_bytenr, fe.disk_num_bytes, r.root, r.ino, rg.pieces[i].file_off - fe.offset));
      counted[i] = true;
    }
    RETURN_IF_ERROR(data.drop_extents_locked(f, rg.start, rg.end));
    for (size_t i = 0; i < rg.pieces.size(); i++) {
      const LoggedPiece& p = rg.pieces[i];
      const FileExtent& fe = p.extent;
      RETURN_IF_ERROR(fs.insert(Key{r.ino, kExtentData, p.file_off}, fe.encode()));
      if (fe.disk_bytenr == 0) continue;
      if (fe.compression != kCompressNone) e.set_incompat(kIncompatCompression);
      const uint64_t base = p.file_off - fe.offset;
      if (!counted[i]) {
        ASSIGN_OR_RETURN(bool exists, extent_exists(e, fe.disk_bytenr, fe.disk_num_bytes));
        if (exists) {
          RETURN_IF_ERROR(e.add_data_ref(fe.disk_bytenr, fe.disk_num_bytes, r.root, r.ino, base));
        } else {
          // A data extent written after the commit: its space was free then.
          const Chunk* ch = e.chunk_map().find(fe.disk_bytenr);
          if (!ch || ch->type != kChunkData || !ch->contains(fe.disk_bytenr, fe.disk_num_bytes) ||
              !e.allocator().mark_used(fe.disk_bytenr, fe.disk_num_bytes))
            return Status::Corruption("the log's data extent at " + std::to_string(fe.disk_bytenr) +
                                      " is not free data space of the last commit");
          RETURN_IF_ERROR(e.add_data_extent(fe.disk_bytenr, fe.disk_num_bytes, r.root, r.ino, base));
        }
      }
      if (!p.csums.empty()) {
        auto [at, len] = checksummed(fe);
        RETURN_IF_ERROR(e.delete_csums(at, len));
        RETURN_IF_ERROR(e.insert_csums(at, p.csums.data(), len / kBlock));
      }
    }
  }
  InodeItem item = r.item;
  item.transid = e.transid();
  return fs.update(Key{r.ino, kInodeItem, 0}, item.encode());
}

}  // namespace

size_t LogChain::records() const {
  size_t n = 0;
  for (const LogWrite& w : writes) n += w.records.size();
  return n;
}

Result<LogChain> read_fsync_log(BlockDevice& dev, const ChunkMap& chunks, const Superblock& sb) {
  LogChain c;
  if (!sb.log_valid()) {
    c.end = "no log in this generation";
    return c;
  }
  uint64_t at = sb.log_start, total = 0;
  for (uint64_t seq = 1;; seq++) {
    if (at == 0) {
      c.end = "the last write ends the chain";
      break;
    }
    if (total >= Engine::kMaxLogBytes) {
      c.end = "longer than one generation may write";
      break;
    }
    uint32_t len = 0;
    auto w = read_write(dev, chunks, sb, at, seq, &len, &c.end);
    if (!w) break;
    c.extents.push_back({at, len});
    total += len;
    at = w->next;
    c.writes.push_back(std::move(*w));
  }
  if (c.writes.empty()) return c;
  for (const LogRecord& r : c.writes.back().records)
    for (const LoggedRange& rg : r.ranges)
      for (const LoggedPiece& p : rg.pieces) {
        ASSIGN_OR_RETURN(bool ok, data_on_disk(dev, chunks, sb.csum_type, p));
        if (ok) continue;
        c.writes.pop_back();
        c.extents.pop_back();
        c.dropped_last = true;
        c.end = "the last write's data did not reach the disk (its fsyncs never returned)";
        return c;
      }
  return c;
}

Status replay_fsync_log_offline(Engine& e, ReplayReport* rep) {
  FileData data(e);
  std::lock_guard lk(e.mutex());
  return replay_fsync_log(e, data, rep);
}

Status replay_fsync_log(Engine& e, FileData& data, ReplayReport* rep) {
  ASSIGN_OR_RETURN(LogChain chain, read_fsync_log(e.device(), e.chunk_map(), e.super()));
  rep->end = chain.end;
  rep->dropped_last = chain.dropped_last;
  if (chain.writes.empty()) return Status::Ok();
  // Nothing may be allocated over the log until a commit replaces it.
  for (auto [at, len] : chain.extents)
    if (!e.hold_log_range(at, len))
      return Status::Corruption("fsync log write at " + std::to_string(at) + " overlaps space in use");
  std::set<std::pair<uint64_t, uint64_t>> files;
  for (const LogWrite& w : chain.writes) {
    for (const LogRecord& r : w.records) {
      RETURN_IF_ERROR(apply_record(e, data, r).with_context("replaying fsync log write " + std::to_string(w.seq)));
      files.insert({r.root, r.ino});
      rep->records++;
    }
    rep->writes++;
  }
  rep->files = files.size();
  return Status::Ok();
}

}  // namespace cairn

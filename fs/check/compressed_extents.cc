#include "check/compressed_extents.h"

#include <unordered_set>

#include "compress/codec.h"
#include "format/items.h"
#include "util/aligned_buffer.h"

namespace cairn {

Status check_compressed_extents(Engine& e, std::vector<Problem>* out, CompressedCheckStats* stats) {
  std::unordered_set<uint64_t> seen;  // disk extents decoded (shared by clones and snapshots)
  AlignedBuffer disk, ram;
  for (uint64_t id : e.tree_ids()) {
    if (!is_subvolume_id(id) || (e.root_ref(id).flags & (kRootFlagDead | kRootFlagKeyValue))) continue;
    BTree t = e.tree(id);
    Cursor c = t.cursor();
    RETURN_IF_ERROR(c.seek(Key{0, 0, 0}));
    for (; c.valid(); c.advance()) {
      if (c.key().type != kExtentData) continue;
      auto fe = FileExtent::decode(c.data());
      if (!fe.ok() || fe->compression == kCompressNone || !seen.insert(fe->disk_bytenr).second) continue;
      auto problem = [&](const std::string& why) {
        Problem p;
        p.code = "compressed-decode";
        p.tree = id;
        p.bytenr = fe->disk_bytenr;
        p.has_key = true;
        p.key = c.key();
        p.data_extent = true;
        p.message = "inode " + std::to_string(c.key().objectid) + " file offset " + std::to_string(c.key().offset) +
                    ": " + compress_type_name(fe->compression) + " extent at logical " +
                    std::to_string(fe->disk_bytenr) + ": " + why;
        out->push_back(std::move(p));
      };
      auto copies = e.chunk_map().map(fe->disk_bytenr, fe->disk_num_bytes);
      if (!copies.ok()) {
        problem(copies.status().message());
        continue;
      }
      disk.resize(fe->disk_num_bytes);
      ram.resize(fe->ram_bytes);
      // The first copy: a bad copy is scrub's finding, and repaired by it.
      if (Status st = e.device().read(copies.value()[0], disk.data(), fe->disk_num_bytes); !st.ok()) {
        problem("unreadable: " + st.message());
        continue;
      }
      if (Status st = decompress_extent(fe->compression, disk.data(), fe->disk_num_bytes, ram.data(), fe->ram_bytes);
          !st.ok())
        problem(st.message());
      stats->extents++;
      stats->disk_bytes += fe->disk_num_bytes;
      stats->ram_bytes += fe->ram_bytes;
    }
    RETURN_IF_ERROR(c.status());
  }
  return Status::Ok();
}

}  // namespace cairn

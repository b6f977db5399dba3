// Filesystem: extended attributes. XATTR_ITEMs keyed by name hash hold a
// list of (name, value) entries (docs/format.md, "DIR_ITEM / DIR_INDEX /
// XATTR_ITEM (DirEntry)"); values above kSpillThreshold live in
// XATTR_CHUNK items so that even 64 KiB values fit any node size.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <mutex>

#include "compress/codec.h"
#include "util/endian.h"
#include "vfs/filesystem.h"
#include "vfs/setid.h"

namespace cairn {

namespace {
constexpr size_t kSpillThreshold = 2048;
constexpr size_t kMaxXattrValue = 65536;
const std::string kAclAccess = "system.posix_acl_access";
// A property, not a stored attribute: the inode's dropbehind flag (docs/cairn.8).
const std::string kDropbehindAttr = "user.cairn.dropbehind";
// Another: the inode's compression choice ("zstd", "zstd:5", "lz4",
// "none"; removing it returns to the mount's -o compress).
const std::string kCompressAttr = "user.cairn.compress";

std::optional<std::string> compress_attr_value(uint64_t flags) {
  const uint8_t t = inode_compress_type(flags);
  if (t == 0) return std::nullopt;
  if (t == kInodeCompressNever) return "none";
  return compress_spec_name(CompressSpec{t, inode_compress_level(flags)});
}

const std::string kAclDefault = "system.posix_acl_default";

bool is_acl_name(const std::string& n) { return n == kAclAccess || n == kAclDefault; }
bool supported_name(const std::string& n) {
  return n.rfind("user.", 0) == 0 || n.rfind("trusted.", 0) == 0 || n.rfind("security.", 0) == 0 || is_acl_name(n);
}
Key xattr_key(uint64_t ino, const std::string& name) { return Key{ino, kXattrItem, name_hash(name)}; }
Key chunk_key(uint64_t ino, uint64_t hash, uint64_t idx) { return Key{ino, kXattrChunk, (hash << 20) | idx}; }

// Mode bits carried by an access ACL (user::, mask:: or group::, other::).
std::optional<uint32_t> acl_mode_bits(const Bytes& b, bool* equivalent) {
  if (b.size() < 4 || (b.size() - 4) % 8 || get_le32(b.data()) != 2) return std::nullopt;
  uint32_t u = 0, g = 0, o = 0, m = 0;
  bool has_mask = false;
  size_t n = 0;
  for (size_t at = 4; at < b.size(); at += 8, n++) {
    uint16_t tag = get_le16(&b[at]), perm = get_le16(&b[at + 2]) & 7;
    if (tag == 1) u = perm;
    else if (tag == 4) g = perm;
    else if (tag == 0x20) o = perm;
    else if (tag == 0x10) m = perm, has_mask = true;
  }
  *equivalent = n <= 3;
  return (u << 6) | ((has_mask ? m : g) << 3) | o;
}
}  // namespace

// Engine mutex held. The value of one entry, following its chunks if spilled.
static Result<Bytes> entry_value(Engine& e, const Inode& in, const DirEntry& de) {
  const uint64_t ino = in.ino;
  if (de.type != kXattrSpilled) return de.data;
  if (de.data.size() != 4) return Status::Corruption("spilled xattr with a bad length field");
  const uint32_t len = get_le32(de.data.data());
  Bytes out;
  const uint64_t h = name_hash(de.name);
  for (uint64_t i = 0; out.size() < len; i++) {
    // The index has 20 bits in the key: beyond it, another name's chunks.
    if (i >= (1u << 20)) return Status::Corruption("xattr value spans more chunks than the key allows");
    ASSIGN_OR_RETURN(Bytes part, e.tree(in.root).lookup(chunk_key(ino, h, i)));
    if (part.empty()) return Status::Corruption("empty xattr chunk");
    out.insert(out.end(), part.begin(), part.end());
  }
  if (out.size() != len) return Status::Corruption("xattr chunks do not add up to the value length");
  return out;
}

// Write back an XATTR_ITEM's entry list, or remove the item when it is empty.
static Status store_entries(BTree& fs, const Key& k, const std::vector<DirEntry>& list) {
  if (list.empty()) return fs.remove(k);
  return fs.update(k, encode_dir_entries(list));
}

static Status drop_chunks(Engine& e, const Inode& in, const std::string& name) {
  const uint64_t h = name_hash(name), ino = in.ino;
  ASSIGN_OR_RETURN(uint64_t n, e.tree(in.root).remove_range(chunk_key(ino, h, 0), chunk_key(ino, h, (1 << 20) - 1)));
  (void)n;
  return Status::Ok();
}

Status Filesystem::setxattr(uint64_t ino, const std::string& name, const Bytes& value, int flags, const Caller& c) {
  if (!supported_name(name)) return Status::Error(EOPNOTSUPP, "unsupported attribute namespace");
  if (!posix_acl_ && is_acl_name(name)) return Status::Error(EOPNOTSUPP, "POSIX ACLs are off (-o noacl)");
  if (name.size() > 255) return Status::Error(ERANGE, "attribute name too long");
  if (value.size() > kMaxXattrValue) return Status::Error(E2BIG, "attribute value too large");
  std::lock_guard lk(engine_->mutex());
  if (name == kCompressAttr) {
    std::string v(value.begin(), value.end());
    while (!v.empty() && (v.back() == '\n' || v.back() == '\0')) v.pop_back();
    ASSIGN_OR_RETURN(CompressSpec spec, parse_compress_spec(v));
    return modify(4, [&]() -> Status {
      ASSIGN_OR_RETURN(auto in, get_inode(ino));
      RETURN_IF_ERROR(writable(*in));
      const bool set = inode_compress_type(in->item.flags) != 0;
      if (set && (flags & XATTR_CREATE)) return Status::Error(EEXIST, "attribute exists");
      if (!set && (flags & XATTR_REPLACE)) return Status::Error(ENODATA, "no such attribute");
      const uint64_t t = spec.enabled() ? spec.type : kInodeCompressNever;
      in->item.flags = (in->item.flags & ~kInodeCompressMask) | (t << kInodeCompressShift) |
                       (uint64_t(spec.level) << kInodeCompressLevelShift);
      // A new choice gets a new chance: the heuristic forgets its misses.
      in->compress_misses = 0;
      in->compress_skip = 0;
      in->compress_backoffs = 0;
      in->item.ctime = current_time();
      mark_dirty(*in);
      return Status::Ok();
    });
  }
  if (name == kDropbehindAttr) {
    const std::string v(value.begin(), value.end());
    if (v != "1" && v != "0") return Status::Invalid("user.cairn.dropbehind takes 1 or 0");
    return modify(4, [&]() -> Status {
      ASSIGN_OR_RETURN(auto in, get_inode(ino));
      RETURN_IF_ERROR(writable(*in));
      const bool on = in->item.flags & kInodeFlagDropbehind;
      if (on && (flags & XATTR_CREATE)) return Status::Error(EEXIST, "attribute exists");
      if (!on && (flags & XATTR_REPLACE)) return Status::Error(ENODATA, "no such attribute");
      if (v == "1") in->item.flags |= kInodeFlagDropbehind;
      else in->item.flags &= ~kInodeFlagDropbehind;
      in->item.ctime = current_time();
      mark_dirty(*in);
      return Status::Ok();
    });
  }
  return modify(16 + value.size() / 2048, [&]() -> Status {
    ASSIGN_OR_RETURN(auto in, get_inode(ino));
    RETURN_IF_ERROR(writable(*in));
    in->log.needs_commit = engine_->transid();  // xattr items are not in the fsync log
    BTree fs = engine_->tree(in->root);
    const Key k = xattr_key(in->ino, name);
    std::vector<DirEntry> list;
    auto raw = fs.lookup(k);
    if (raw.ok()) {
      ASSIGN_OR_RETURN(list, decode_dir_entries(raw.value()));
    } else if (!raw.status().is_not_found()) {
      return raw.status();
    }
    auto it = std::find_if(list.begin(), list.end(), [&](const DirEntry& e) { return e.name == name; });
    if (it != list.end() && (flags & XATTR_CREATE)) return Status::Error(EEXIST, "attribute exists");
    if (it == list.end() && (flags & XATTR_REPLACE)) return Status::Error(ENODATA, "no such attribute");
    const bool spill = value.size() > kSpillThreshold;
    if (spill)
      for (auto& other : list)
        if (other.name != name && other.type == kXattrSpilled)
          return Status::Error(E2BIG, "another large attribute has the same name hash");
    Bytes acl_value = value;
    if (name == kAclAccess) {
      // Userspace owns the mode <-> access ACL link under FUSE_POSIX_ACL: the
      // mode takes the ACL's bits, and an ACL the mode says fully is not kept.
      bool equivalent = false;
      auto bits = acl_mode_bits(value, &equivalent);
      if (!bits) return Status::Invalid("malformed access ACL");
      in->item.mode = mode_after(SetidChange::kAcl, (in->item.mode & ~0777u) | *bits, in->item.gid, c);
      if (equivalent) {
        if (it != list.end()) {
          list.erase(it);
          RETURN_IF_ERROR(store_entries(fs, k, list));
        }
        in->item.ctime = current_time();
        mark_dirty(*in);
        return Status::Ok();
      }
    }
    if (it != list.end() && it->type == kXattrSpilled) RETURN_IF_ERROR(drop_chunks(*engine_, *in, name));
    DirEntry e;
    e.transid = engine_->transid();
    e.name = name;
    if (spill) {
      e.type = kXattrSpilled;
      e.data.resize(4);
      put_le32(e.data.data(), uint32_t(value.size()));
      const size_t chunk = fs.half_leaf_item_size();
      const uint64_t h = name_hash(name);
      for (size_t off = 0, i = 0; off < value.size(); off += chunk, i++)
        RETURN_IF_ERROR(fs.insert(chunk_key(in->ino, h, i),
                                  Bytes(value.begin() + long(off), value.begin() + long(std::min(value.size(), off + chunk)))));
    } else {
      e.data = value;
    }
    if (it != list.end()) *it = e;
    else list.push_back(e);
    Bytes enc = encode_dir_entries(list);
    if (enc.size() > fs.max_item_size()) return Status::Error(E2BIG, "attribute value too large for this filesystem");
    if (raw.ok()) RETURN_IF_ERROR(fs.update(k, enc));
    else RETURN_IF_ERROR(fs.insert(k, enc));
    in->item.ctime = current_time();
    mark_dirty(*in);
    return Status::Ok();
  });
}

Result<Bytes> Filesystem::getxattr(uint64_t ino, const std::string& name) {
  if (!supported_name(name)) return Status::Error(ENODATA, "no such attribute");
  if (!posix_acl_ && is_acl_name(name)) return Status::Error(EOPNOTSUPP, "POSIX ACLs are off (-o noacl)");
  std::lock_guard lk(engine_->mutex());
  ASSIGN_OR_RETURN(auto in, get_inode(ino));
  if (name == kDropbehindAttr) {
    if (!(in->item.flags & kInodeFlagDropbehind)) return Status::Error(ENODATA, "no such attribute");
    return Bytes{'1'};
  }
  if (name == kCompressAttr) {
    auto v = compress_attr_value(in->item.flags);
    if (!v) return Status::Error(ENODATA, "no such attribute");
    return Bytes(v->begin(), v->end());
  }
  auto raw = engine_->tree(in->root).lookup(xattr_key(in->ino, name));
  if (!raw.ok()) {
    if (raw.status().is_not_found()) return Status::Error(ENODATA, "no such attribute");
    return raw.status();
  }
  ASSIGN_OR_RETURN(auto list, decode_dir_entries(raw.value()));
  for (auto& e : list)
    if (e.name == name) return entry_value(*engine_, *in, e);
  return Status::Error(ENODATA, "no such attribute");
}

Result<std::vector<std::string>> Filesystem::listxattr(uint64_t ino, bool privileged) {
  std::lock_guard lk(engine_->mutex());
  ASSIGN_OR_RETURN(auto in, get_inode(ino));
  std::vector<std::string> names;
  BTree fs = engine_->tree(in->root);
  Cursor c = fs.cursor();
  RETURN_IF_ERROR(c.seek(Key{in->ino, kXattrItem, 0}));
  for (; c.valid() && c.key().objectid == in->ino && c.key().type == kXattrItem; c.advance()) {
    ASSIGN_OR_RETURN(auto list, decode_dir_entries(c.data()));
    // As local filesystems do, trusted.* is listed only to privileged callers.
    for (auto& e : list)
      if ((privileged || e.name.rfind("trusted.", 0) != 0) && (posix_acl_ || !is_acl_name(e.name)))
        names.push_back(e.name);
  }
  RETURN_IF_ERROR(c.status());
  if (in->item.flags & kInodeFlagDropbehind) names.push_back(kDropbehindAttr);
  if (compress_attr_value(in->item.flags)) names.push_back(kCompressAttr);
  return names;
}

Status Filesystem::removexattr(uint64_t ino, const std::string& name) {
  if (!supported_name(name)) return Status::Error(ENODATA, "no such attribute");
  if (!posix_acl_ && is_acl_name(name)) return Status::Error(EOPNOTSUPP, "POSIX ACLs are off (-o noacl)");
  std::lock_guard lk(engine_->mutex());
  return modify(16, [&]() -> Status {
    ASSIGN_OR_RETURN(auto in, get_inode(ino));
    RETURN_IF_ERROR(writable(*in));
    in->log.needs_commit = engine_->transid();  // xattr items are not in the fsync log
    if (name == kCompressAttr) {
      if (!inode_compress_type(in->item.flags)) return Status::Error(ENODATA, "no such attribute");
      in->item.flags &= ~kInodeCompressMask;
      in->compress_misses = 0;
      in->item.ctime = current_time();
      mark_dirty(*in);
      return Status::Ok();
    }
    if (name == kDropbehindAttr) {
      if (!(in->item.flags & kInodeFlagDropbehind)) return Status::Error(ENODATA, "no such attribute");
      in->item.flags &= ~kInodeFlagDropbehind;
      in->item.ctime = current_time();
      mark_dirty(*in);
      return Status::Ok();
    }
    BTree fs = engine_->tree(in->root);
    const Key k = xattr_key(in->ino, name);
    auto raw = fs.lookup(k);
    if (!raw.ok()) {
      if (raw.status().is_not_found()) return Status::Error(ENODATA, "no such attribute");
      return raw.status();
    }
    ASSIGN_OR_RETURN(auto list, decode_dir_entries(raw.value()));
    auto it = std::find_if(list.begin(), list.end(), [&](const DirEntry& e) { return e.name == name; });
    if (it == list.end()) return Status::Error(ENODATA, "no such attribute");
    if (it->type == kXattrSpilled) RETURN_IF_ERROR(drop_chunks(*engine_, *in, name));
    list.erase(it);
    RETURN_IF_ERROR(store_entries(fs, k, list));
    in->item.ctime = current_time();
    mark_dirty(*in);
    return Status::Ok();
  });
}

}  // namespace cairn

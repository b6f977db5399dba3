// Filesystem: POSIX ACL inheritance at creation. With FUSE_CAP_POSIX_ACL
// the kernel enforces ACLs, but inheriting a directory's default ACL (and
// deciding whether the umask applies) is the filesystem's job, as in
// posix_acl_create() of the kernel.
#include <sys/stat.h>

#include "util/endian.h"
#include "vfs/filesystem.h"

namespace cairn {

namespace {
constexpr uint32_t kAclVersion = 2;
enum : uint16_t { kUserObj = 1, kUser = 2, kGroupObj = 4, kGroup = 8, kMask = 0x10, kOther = 0x20 };
struct AclEntry {
  uint16_t tag, perm;
  uint32_t id;
};

std::optional<std::vector<AclEntry>> parse_acl(const Bytes& b) {
  if (b.size() < 4 || (b.size() - 4) % 8 || get_le32(b.data()) != kAclVersion) return std::nullopt;
  std::vector<AclEntry> out;
  for (size_t at = 4; at < b.size(); at += 8) out.push_back({get_le16(&b[at]), get_le16(&b[at + 2]), get_le32(&b[at + 4])});
  return out;
}

Bytes encode_acl(const std::vector<AclEntry>& acl) {
  Bytes b(4 + acl.size() * 8);
  put_le32(b.data(), kAclVersion);
  for (size_t i = 0; i < acl.size(); i++) {
    put_le16(&b[4 + i * 8], acl[i].tag);
    put_le16(&b[4 + i * 8 + 2], acl[i].perm);
    put_le32(&b[4 + i * 8 + 4], acl[i].id);
  }
  return b;
}
}  // namespace

Status Filesystem::inherit_acl(Inode& parent, Inode& child, uint32_t* mode, const Caller& c) {
  const uint32_t type = *mode & S_IFMT;
  if (type == S_IFLNK) return Status::Ok();
  if (!posix_acl_) {
    *mode = type | (*mode & 07777 & ~c.umask);
    return Status::Ok();
  }
  auto def = engine_->tree(parent.root).lookup(Key{parent.ino, kXattrItem, name_hash("system.posix_acl_default")});
  std::optional<std::vector<AclEntry>> acl;
  if (def.ok()) {
    ASSIGN_OR_RETURN(auto list, decode_dir_entries(def.value()));
    for (auto& e : list)
      if (e.name == "system.posix_acl_default") acl = parse_acl(e.data);
  } else if (!def.status().is_not_found()) {
    return def.status();
  }
  if (!acl) {
    *mode = type | (*mode & 07777 & ~c.umask);
    return Status::Ok();
  }
  auto store = [&](const std::string& name, const Bytes& value) -> Status {
    DirEntry e;
    e.transid = engine_->transid();
    e.name = name;
    e.data = value;
    return engine_->tree(child.root).insert(Key{child.ino, kXattrItem, name_hash(name)}, encode_dir_entries({e}));
  };
  if (type == S_IFDIR) RETURN_IF_ERROR(store("system.posix_acl_default", encode_acl(*acl)));
  // The access ACL is the default one with its permissions limited by the mode.
  std::vector<AclEntry> access = *acl;
  AclEntry* group_like = nullptr;
  bool extended = false;
  for (auto& e : access) {
    if (e.tag == kMask) group_like = &e;
    if (e.tag == kUser || e.tag == kGroup) extended = true;
  }
  if (!group_like)
    for (auto& e : access)
      if (e.tag == kGroupObj) group_like = &e;
  uint32_t m = *mode & 07777;
  for (auto& e : access) {
    if (e.tag == kUserObj) {
      e.perm &= uint16_t((m >> 6) & 7);
      m = (m & ~0700u) | (uint32_t(e.perm) << 6);
    } else if (e.tag == kOther) {
      e.perm &= uint16_t(m & 7);
      m = (m & ~07u) | e.perm;
    }
  }
  if (group_like) {
    group_like->perm &= uint16_t((m >> 3) & 7);
    m = (m & ~070u) | (uint32_t(group_like->perm) << 3);
  }
  *mode = type | m;
  if (extended) RETURN_IF_ERROR(store("system.posix_acl_access", encode_acl(access)));
  return Status::Ok();
}

Status Filesystem::chmod_acl(Inode& in) {
  if (!posix_acl_) return Status::Ok();  // -o noacl: stored ACLs are left as they were
  in.log.needs_commit = engine_->transid();  // xattr items are not in the fsync log
  // Under FUSE_POSIX_ACL the kernel leaves posix_acl_chmod() to us: the
  // access ACL's owner, mask (or group) and other entries follow the mode.
  const Key k{in.ino, kXattrItem, name_hash("system.posix_acl_access")};
  BTree fs = engine_->tree(in.root);
  auto raw = fs.lookup(k);
  if (!raw.ok()) return raw.status().is_not_found() ? Status::Ok() : raw.status();
  ASSIGN_OR_RETURN(auto list, decode_dir_entries(raw.value()));
  for (auto& e : list) {
    if (e.name != "system.posix_acl_access") continue;
    auto acl = parse_acl(e.data);
    if (!acl) return Status::Corruption("malformed access ACL on inode " + std::to_string(in.ino));
    const uint32_t m = in.item.mode;
    bool has_mask = false;
    for (auto& a : *acl) has_mask |= a.tag == kMask;
    for (auto& a : *acl) {
      if (a.tag == kUserObj) a.perm = uint16_t((m >> 6) & 7);
      else if (a.tag == kOther) a.perm = uint16_t(m & 7);
      else if (a.tag == kMask || (a.tag == kGroupObj && !has_mask)) a.perm = uint16_t((m >> 3) & 7);
    }
    e.data = encode_acl(*acl);
  }
  return fs.update(k, encode_dir_entries(list));
}

}  // namespace cairn

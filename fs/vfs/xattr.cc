// Filesystem: extended attributes. XATTR_ITEMs keyed by name hash hold a
// list of (name, value) entries (docs/format.md, "DIR_ITEM / XATTR_ITEM").
#include <sys/xattr.h>

#include <mutex>

#include "vfs/filesystem.h"

namespace cairn {

namespace {
bool supported_name(const std::string& n) {
  return n.rfind("user.", 0) == 0 || n.rfind("trusted.", 0) == 0 || n.rfind("security.", 0) == 0 ||
         n == "system.posix_acl_access" || n == "system.posix_acl_default";
}
Key xattr_key(uint64_t ino, const std::string& name) { return Key{ino, kXattrItem, name_hash(name)}; }
}  // namespace

Status Filesystem::setxattr(uint64_t ino, const std::string& name, const Bytes& value, int flags) {
  if (!supported_name(name)) return Status::Error(EOPNOTSUPP, "unsupported attribute namespace");
  if (name.size() > 255) return Status::Error(ERANGE, "attribute name too long");
  std::lock_guard lk(engine_->mutex());
  return modify(16, [&]() -> Status {
    ASSIGN_OR_RETURN(auto in, get_inode(ino));
    BTree fs = engine_->tree(kFsTreeId);
    const Key k = xattr_key(ino, name);
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
    if (it != list.end()) {
      it->data = value;
    } else {
      DirEntry e;
      e.transid = engine_->transid();
      e.name = name;
      e.data = value;
      list.push_back(std::move(e));
    }
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
  std::lock_guard lk(engine_->mutex());
  ASSIGN_OR_RETURN(auto in, get_inode(ino));
  auto raw = engine_->tree(kFsTreeId).lookup(xattr_key(ino, name));
  if (!raw.ok()) {
    if (raw.status().is_not_found()) return Status::Error(ENODATA, "no such attribute");
    return raw.status();
  }
  ASSIGN_OR_RETURN(auto list, decode_dir_entries(raw.value()));
  for (auto& e : list)
    if (e.name == name) return e.data;
  return Status::Error(ENODATA, "no such attribute");
}

Result<std::vector<std::string>> Filesystem::listxattr(uint64_t ino) {
  std::lock_guard lk(engine_->mutex());
  ASSIGN_OR_RETURN(auto in, get_inode(ino));
  std::vector<std::string> names;
  BTree fs = engine_->tree(kFsTreeId);
  Cursor c = fs.cursor();
  RETURN_IF_ERROR(c.seek(Key{ino, kXattrItem, 0}));
  for (; c.valid() && c.key().objectid == ino && c.key().type == kXattrItem; c.advance()) {
    ASSIGN_OR_RETURN(auto list, decode_dir_entries(c.data()));
    for (auto& e : list) names.push_back(e.name);
  }
  RETURN_IF_ERROR(c.status());
  return names;
}

Status Filesystem::removexattr(uint64_t ino, const std::string& name) {
  if (!supported_name(name)) return Status::Error(ENODATA, "no such attribute");
  std::lock_guard lk(engine_->mutex());
  return modify(16, [&]() -> Status {
    ASSIGN_OR_RETURN(auto in, get_inode(ino));
    BTree fs = engine_->tree(kFsTreeId);
    const Key k = xattr_key(ino, name);
    auto raw = fs.lookup(k);
    if (!raw.ok()) {
      if (raw.status().is_not_found()) return Status::Error(ENODATA, "no such attribute");
      return raw.status();
    }
    ASSIGN_OR_RETURN(auto list, decode_dir_entries(raw.value()));
    size_t before = list.size();
    std::erase_if(list, [&](const DirEntry& e) { return e.name == name; });
    if (list.size() == before) return Status::Error(ENODATA, "no such attribute");
    if (list.empty()) RETURN_IF_ERROR(fs.remove(k));
    else RETURN_IF_ERROR(fs.update(k, encode_dir_entries(list)));
    in->item.ctime = current_time();
    mark_dirty(*in);
    return Status::Ok();
  });
}

}  // namespace cairn

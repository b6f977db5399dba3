// Filesystem: names. Lookup, creation, links, unlink, rmdir, rename, readdir.
// Directory entries are three items (docs/format.md, "Items"): DIR_ITEM by
// name hash, DIR_INDEX by sequence, INODE_REF from the child.
#include <dirent.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <mutex>

#include "vfs/filesystem.h"

namespace cairn {

namespace {
constexpr uint32_t kLinkMax = 65000;
Key dir_item_key(uint64_t dir, const std::string& name) { return Key{dir, kDirItem, name_hash(name)}; }
}  // namespace

Status Filesystem::check_name(const std::string& name) const {
  if (name.empty() || name == "." || name == "..") return Status::Invalid("invalid name");
  if (name.size() > 255) return Status::Error(ENAMETOOLONG, "name longer than 255 bytes");
  if (name.find('/') != std::string::npos) return Status::Invalid("name contains '/'");
  return Status::Ok();
}

uint64_t Filesystem::entry_vino(const Inode& dir, const DirEntry& de) {
  // An entry naming a subvolume leads to that tree's root directory.
  if (de.location.type == kRootItem) return vino_of(de.location.objectid, kFirstInode);
  return vino_of(dir.root, de.location.objectid);
}

Result<std::optional<DirEntry>> Filesystem::find_entry(const Inode& dir, const std::string& name) {
  auto raw = engine_->tree(dir.root).lookup(dir_item_key(dir.ino, name));
  if (!raw.ok()) {
    if (raw.status().is_not_found()) return std::optional<DirEntry>();
    return raw.status();
  }
  ASSIGN_OR_RETURN(auto entries, decode_dir_entries(raw.value()));
  for (auto& e : entries)
    if (e.name == name) return std::optional<DirEntry>(e);
  return std::optional<DirEntry>();
}

Result<uint64_t> Filesystem::insert_dir_entry(Inode& dir, const std::string& name, const Key& location, uint8_t type) {
  BTree fs = engine_->tree(dir.root);
  const uint64_t index = dir.item.sequence++;
  DirEntry de;
  de.location = location;
  de.transid = engine_->transid();
  de.type = type;
  de.name = name;
  const Key dk = dir_item_key(dir.ino, name);
  auto existing = fs.lookup(dk);
  if (existing.ok()) {
    ASSIGN_OR_RETURN(auto list, decode_dir_entries(existing.value()));
    list.push_back(de);
    RETURN_IF_ERROR(fs.update(dk, encode_dir_entries(list)));
  } else if (existing.status().is_not_found()) {
    RETURN_IF_ERROR(fs.insert(dk, encode_dir_entries({de})));
  } else {
    return existing.status();
  }
  RETURN_IF_ERROR(fs.insert(Key{dir.ino, kDirIndex, index}, encode_dir_entries({de})));
  Timespec now = current_time();
  dir.item.size += name.size() * 2;
  dir.item.mtime = dir.item.ctime = now;
  mark_dirty(dir);
  return index;
}

Status Filesystem::erase_dir_entry(Inode& dir, const std::string& name, uint64_t index) {
  BTree fs = engine_->tree(dir.root);
  const Key dk = dir_item_key(dir.ino, name);
  ASSIGN_OR_RETURN(Bytes raw, fs.lookup(dk));
  ASSIGN_OR_RETURN(auto list, decode_dir_entries(raw));
  std::erase_if(list, [&](const DirEntry& e) { return e.name == name; });
  if (list.empty()) RETURN_IF_ERROR(fs.remove(dk));
  else RETURN_IF_ERROR(fs.update(dk, encode_dir_entries(list)));
  RETURN_IF_ERROR(fs.remove(Key{dir.ino, kDirIndex, index}));
  Timespec now = current_time();
  dir.item.size -= std::min<uint64_t>(dir.item.size, name.size() * 2);
  dir.item.mtime = dir.item.ctime = now;
  mark_dirty(dir);
  return Status::Ok();
}

Status Filesystem::add_entry(Inode& dir, const std::string& name, Inode& child) {
  if (child.root != dir.root) return Status::Error(EXDEV, "a name and its inode live in one subvolume");
  BTree fs = engine_->tree(dir.root);
  child.log.needs_commit = engine_->transid();  // names are not in the fsync log
  ASSIGN_OR_RETURN(uint64_t index, insert_dir_entry(dir, name, Key{child.ino, kInodeItem, 0}, dtype_of(child.item.mode)));
  const Key rk{child.ino, kInodeRef, dir.ino};
  auto refs = fs.lookup(rk);
  if (refs.ok()) {
    ASSIGN_OR_RETURN(auto list, decode_inode_refs(refs.value()));
    list.push_back({index, name});
    RETURN_IF_ERROR(fs.update(rk, encode_inode_refs(list)));
  } else if (refs.status().is_not_found()) {
    RETURN_IF_ERROR(fs.insert(rk, encode_inode_refs({{index, name}})));
  } else {
    return refs.status();
  }
  return Status::Ok();
}

Status Filesystem::remove_entry(Inode& dir, const std::string& name, uint64_t child_ino) {
  BTree fs = engine_->tree(dir.root);
  const Key rk{child_ino, kInodeRef, dir.ino};
  ASSIGN_OR_RETURN(Bytes rraw, fs.lookup(rk));
  ASSIGN_OR_RETURN(auto refs, decode_inode_refs(rraw));
  std::optional<uint64_t> index;
  for (size_t i = 0; i < refs.size(); i++)
    if (refs[i].name == name) {
      index = refs[i].index;
      refs.erase(refs.begin() + long(i));
      break;
    }
  if (!index) return Status::Corruption("inode " + std::to_string(child_ino) + " has no back reference for \"" + name + "\"");
  if (refs.empty()) RETURN_IF_ERROR(fs.remove(rk));
  else RETURN_IF_ERROR(fs.update(rk, encode_inode_refs(refs)));
  return erase_dir_entry(dir, name, *index);
}

Status Filesystem::drop_link(Inode& in) {
  in.log.needs_commit = engine_->transid();
  if (in.item.nlink > 0) in.item.nlink--;
  if (in.is_dir()) in.item.nlink = 0;
  in.item.ctime = current_time();
  mark_dirty(in);
  if (in.item.nlink == 0) {
    if (in.nlookup > 0 || in.open_count > 0) {
      // Still in use: an orphan item makes sure a crash cannot leak it.
      RETURN_IF_ERROR(write_inode_item(in));
      RETURN_IF_ERROR(engine_->tree(in.root).insert(Key{kOrphanObjectId, kOrphanItem, in.ino}, {}));
      in.orphan = true;
    }
    RETURN_IF_ERROR(try_evict(in.vino()));
  }
  return Status::Ok();
}

Result<std::shared_ptr<Inode>> Filesystem::new_inode(uint32_t mode, uint64_t rdev, const Caller& c, const Inode& parent) {
  RootRef& root = engine_->root_ref(parent.root);
  if (root.last_objectid >= kMaxTreeInode) return Status::NoSpace("no inode numbers left in this subvolume");
  const uint64_t ino = ++root.last_objectid;
  root.dirty = true;
  auto in = std::make_shared<Inode>(vino_of(parent.root, ino));
  in->log.needs_commit = engine_->transid();  // not in the last commit: fsync commits
  InodeItem& it = in->item;
  Timespec now = current_time();
  it.generation = engine_->transid();
  it.transid = engine_->transid();
  it.mode = mode;
  it.rdev = rdev;
  it.uid = c.uid;
  it.gid = c.gid;
  if (parent.item.mode & S_ISGID) {
    // BSD group semantics in a setgid directory; subdirectories inherit the bit.
    it.gid = parent.item.gid;
    if (S_ISDIR(mode)) it.mode |= S_ISGID;
  }
  it.nlink = S_ISDIR(mode) ? 2 : 1;
  // New files and directories inherit the directory's dropbehind and
  // compression settings.
  it.flags |= parent.item.flags & (kInodeFlagDropbehind | kInodeCompressMask);
  it.atime = it.mtime = it.ctime = it.otime = now;
  if (S_ISDIR(mode)) it.sequence = 2;
  RETURN_IF_ERROR(engine_->tree(parent.root).insert(Key{ino, kInodeItem, 0}, it.encode()));
  inodes_[in->vino()] = in;
  return in;
}

Result<std::shared_ptr<Inode>> Filesystem::dir_for_new_name(uint64_t parent, const std::string& name) {
  RETURN_IF_ERROR(check_name(name));
  ASSIGN_OR_RETURN(auto dir, get_inode(parent));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  if (dir->item.nlink == 0) return Status::NotFound("directory was removed");
  RETURN_IF_ERROR(writable(*dir));
  ASSIGN_OR_RETURN(auto existing, find_entry(*dir, name));
  if (existing) return Status::Error(EEXIST, "exists");
  return dir;
}

Result<Entry> Filesystem::create_common(uint64_t parent, const std::string& name, uint32_t mode, uint64_t rdev,
                                        const Caller& c, const std::string* target) {
  RETURN_IF_ERROR(check_name(name));
  std::lock_guard lk(engine_->mutex());
  Entry out;
  RETURN_IF_ERROR(modify(48, [&]() -> Status {
    ASSIGN_OR_RETURN(auto dir, dir_for_new_name(parent, name));
    if (S_ISDIR(mode) && dir->item.nlink >= kLinkMax) return Status::Error(EMLINK, "too many links");
    ASSIGN_OR_RETURN(auto child, new_inode(mode, rdev, c, *dir));
    uint32_t final_mode = child->item.mode;
    RETURN_IF_ERROR(inherit_acl(*dir, *child, &final_mode, c));
    child->item.mode = final_mode;
    if (target) {
      RETURN_IF_ERROR(data_->set_inline_locked(*child, *target));
      child->item.size = child->disk_size = target->size();
    }
    RETURN_IF_ERROR(add_entry(*dir, name, *child));
    if (S_ISDIR(mode)) dir->item.nlink++;
    child->nlookup++;
    mark_dirty(*child);
    out = entry_of(*child);
    return Status::Ok();
  }));
  return out;
}

Result<Entry> Filesystem::mknod(uint64_t parent, const std::string& name, uint32_t mode, uint64_t rdev, const Caller& c) {
  if (S_ISDIR(mode)) return Status::Invalid("mknod of a directory");
  if ((mode & S_IFMT) == 0) mode |= S_IFREG;
  return create_common(parent, name, mode, rdev, c, nullptr);
}

Result<Entry> Filesystem::mkdir(uint64_t parent, const std::string& name, uint32_t mode, const Caller& c) {
  return create_common(parent, name, S_IFDIR | (mode & 07777), 0, c, nullptr);
}

Result<Entry> Filesystem::symlink(uint64_t parent, const std::string& name, const std::string& target, const Caller& c) {
  if (target.empty() || target.size() >= 4096) return Status::Error(ENAMETOOLONG, "symlink target too long");
  return create_common(parent, name, S_IFLNK | 0777, 0, c, &target);
}

Result<Entry> Filesystem::lookup(uint64_t parent, const std::string& name) {
  if (name.size() > 255) return Status::Error(ENAMETOOLONG, "name too long");
  std::lock_guard lk(engine_->mutex());
  maybe_park();
  ASSIGN_OR_RETURN(auto dir, get_inode(parent));
  if (name == ".") {
    // The kernel asks for "." of any inode to open a file handle whose
    // inode it has forgotten (open_by_handle_at, NFS export); a deleted
    // inode is not found, which the kernel answers with ESTALE.
    if (dir->item.nlink == 0) return Status::NotFound("inode was deleted");
    dir->nlookup++;
    return entry_of(*dir);
  }
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  uint64_t ino;
  if (name == "..") {
    ASSIGN_OR_RETURN(ino, parent_of(*dir));
  } else {
    ASSIGN_OR_RETURN(auto e, find_entry(*dir, name));
    if (!e) return Status::NotFound();
    ino = entry_vino(*dir, *e);
  }
  ASSIGN_OR_RETURN(auto in, get_inode(ino));
  in->nlookup++;
  return entry_of(*in);
}

Result<Entry> Filesystem::link(uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  RETURN_IF_ERROR(check_name(new_name));
  std::lock_guard lk(engine_->mutex());
  Entry out;
  RETURN_IF_ERROR(modify(32, [&]() -> Status {
    ASSIGN_OR_RETURN(auto in, get_inode(ino));
    if (in->is_dir()) return Status::Error(EPERM, "hard link to a directory");
    if (in->item.nlink >= kLinkMax) return Status::Error(EMLINK, "too many links");
    if (in->item.nlink == 0) return Status::NotFound("file was removed");
    ASSIGN_OR_RETURN(auto dir, get_inode(new_parent));
    if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
    RETURN_IF_ERROR(writable(*dir));
    if (dir->root != in->root) return Status::Error(EXDEV, "hard links stay within a subvolume");
    ASSIGN_OR_RETURN(auto existing, find_entry(*dir, new_name));
    if (existing) return Status::Error(EEXIST, "exists");
    RETURN_IF_ERROR(add_entry(*dir, new_name, *in));
    in->item.nlink++;
    in->item.ctime = current_time();
    in->nlookup++;
    mark_dirty(*in);
    out = entry_of(*in);
    return Status::Ok();
  }));
  return out;
}

Status Filesystem::unlink(uint64_t parent, const std::string& name) {
  Status st = do_unlink(parent, name);
  discard_deleted();
  return st;
}

Status Filesystem::do_unlink(uint64_t parent, const std::string& name) {
  std::lock_guard lk(engine_->mutex());
  return modify(32, [&]() -> Status {
    ASSIGN_OR_RETURN(auto dir, get_inode(parent));
    RETURN_IF_ERROR(writable(*dir));
    ASSIGN_OR_RETURN(auto e, find_entry(*dir, name));
    if (!e) return Status::NotFound();
    if (e->location.type == kRootItem) return Status::Error(EISDIR, "is a subvolume");
    ASSIGN_OR_RETURN(auto in, get_inode(entry_vino(*dir, *e)));
    if (in->is_dir()) return Status::Error(EISDIR, "is a directory");
    RETURN_IF_ERROR(remove_entry(*dir, name, in->ino));
    return drop_link(*in);
  }, true);
}

Result<bool> Filesystem::dir_is_empty(const Inode& dir) {
  BTree fs = engine_->tree(dir.root);
  Cursor c = fs.cursor();
  RETURN_IF_ERROR(c.seek(Key{dir.ino, kDirIndex, 0}));
  RETURN_IF_ERROR(c.status());
  return !(c.valid() && c.key().objectid == dir.ino && c.key().type == kDirIndex);
}

Status Filesystem::rmdir(uint64_t parent, const std::string& name) {
  if (name == ".") return Status::Invalid("cannot remove '.'");
  if (name == "..") return Status::Error(ENOTEMPTY, "cannot remove '..'");
  std::lock_guard lk(engine_->mutex());
  return modify(32, [&]() -> Status {
    ASSIGN_OR_RETURN(auto dir, get_inode(parent));
    RETURN_IF_ERROR(writable(*dir));
    ASSIGN_OR_RETURN(auto e, find_entry(*dir, name));
    if (!e) return Status::NotFound();
    if (e->location.type == kRootItem) return Status::Error(EPERM, "a subvolume: cairnctl subvolume delete removes it");
    ASSIGN_OR_RETURN(auto in, get_inode(entry_vino(*dir, *e)));
    if (!in->is_dir()) return Status::Error(ENOTDIR, "not a directory");
    ASSIGN_OR_RETURN(bool empty, dir_is_empty(*in));
    if (!empty) return Status::Error(ENOTEMPTY, "directory not empty");
    RETURN_IF_ERROR(remove_entry(*dir, name, in->ino));
    dir->item.nlink--;
    return drop_link(*in);
  }, true);
}

Result<uint64_t> Filesystem::parent_of(const Inode& dir) {
  const uint64_t v = dir.vino();
  if (v == root_vino_) return v;
  // A subvolume's root: the directory holding its entry, in the tree above.
  if (dir.ino == kFirstInode) return subvolume_parent(dir.root);
  BTree fs = engine_->tree(dir.root);
  Cursor c = fs.cursor();
  RETURN_IF_ERROR(c.seek(Key{dir.ino, kInodeRef, 0}));
  RETURN_IF_ERROR(c.status());
  if (!c.valid() || c.key().objectid != dir.ino || c.key().type != kInodeRef)
    return Status::Corruption("directory " + std::to_string(dir.ino) + " has no parent reference");
  return vino_of(dir.root, c.key().offset);
}

Result<bool> Filesystem::is_ancestor(uint64_t anc, uint64_t dir) {
  // Within one subvolume (renames never cross one): up to its root.
  for (int depth = 0; depth < 4096; depth++) {
    if (dir == anc) return true;
    if (ino_of_vino(dir) == kFirstInode) return false;
    ASSIGN_OR_RETURN(auto in, get_inode(dir));
    ASSIGN_OR_RETURN(dir, parent_of(*in));
  }
  return Status::Corruption("directory loop");
}

Status Filesystem::rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                          unsigned flags) {
  if (flags & ~unsigned(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Status::Invalid("unsupported rename flags");
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return Status::Invalid("conflicting rename flags");
  RETURN_IF_ERROR(check_name(new_name));
  Status st = do_rename(parent, name, new_parent, new_name, flags);
  discard_deleted();
  return st;
}

Status Filesystem::do_rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                                 const std::string& new_name, unsigned flags) {
  std::lock_guard lk(engine_->mutex());
  return modify(64, [&]() -> Status {
    ASSIGN_OR_RETURN(auto sdir, get_inode(parent));
    ASSIGN_OR_RETURN(auto ddir, get_inode(new_parent));
    if (!ddir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
    RETURN_IF_ERROR(writable(*sdir));
    RETURN_IF_ERROR(writable(*ddir));
    // Names move within a subvolume only (mv copies across, as between
    // btrfs subvolumes).
    if (sdir->root != ddir->root) return Status::Error(EXDEV, "rename across subvolumes");
    ASSIGN_OR_RETURN(auto se, find_entry(*sdir, name));
    if (!se) return Status::NotFound();
    ASSIGN_OR_RETURN(auto de, find_entry(*ddir, new_name));
    if (se->location.type == kRootItem) {
      if (flags & RENAME_EXCHANGE) return Status::Error(EXDEV, "cannot exchange a subvolume");
      if (de) return Status::Error(EEXIST, "cannot rename a subvolume over another name");
      return rename_subvolume_entry(*sdir, name, *ddir, new_name, se->location.objectid);
    }
    if (de && de->location.type == kRootItem) return Status::Error(EBUSY, "the target is a subvolume");
    ASSIGN_OR_RETURN(auto src, get_inode(entry_vino(*sdir, *se)));
    std::shared_ptr<Inode> dst;
    if (de) {
      ASSIGN_OR_RETURN(dst, get_inode(entry_vino(*ddir, *de)));
    }
    if (dst && dst->ino == src->ino) return Status::Ok();  // same file: nothing to do
    const Timespec now = current_time();
    if (flags & RENAME_EXCHANGE) {
      if (!dst) return Status::NotFound("exchange target does not exist");
      if (src->is_dir() && parent != new_parent) {
        ASSIGN_OR_RETURN(bool loop, is_ancestor(src->vino(), new_parent));
        if (loop) return Status::Invalid("cannot move a directory into itself");
      }
      if (dst->is_dir() && parent != new_parent) {
        ASSIGN_OR_RETURN(bool loop, is_ancestor(dst->vino(), parent));
        if (loop) return Status::Invalid("cannot move a directory into itself");
      }
      RETURN_IF_ERROR(remove_entry(*sdir, name, src->ino));
      RETURN_IF_ERROR(remove_entry(*ddir, new_name, dst->ino));
      RETURN_IF_ERROR(add_entry(*ddir, new_name, *src));
      RETURN_IF_ERROR(add_entry(*sdir, name, *dst));
      if (parent != new_parent) {
        if (src->is_dir()) sdir->item.nlink--, ddir->item.nlink++;
        if (dst->is_dir()) ddir->item.nlink--, sdir->item.nlink++;
      }
      src->item.ctime = dst->item.ctime = now;
      mark_dirty(*src);
      mark_dirty(*dst);
      return Status::Ok();
    }
    if (dst && (flags & RENAME_NOREPLACE)) return Status::Error(EEXIST, "target exists");
    if (src->is_dir()) {
      ASSIGN_OR_RETURN(bool loop, is_ancestor(src->vino(), new_parent));
      if (loop) return Status::Invalid("cannot move a directory into itself");
    }
    if (dst) {
      if (src->is_dir()) {
        if (!dst->is_dir()) return Status::Error(ENOTDIR, "target is not a directory");
        ASSIGN_OR_RETURN(bool empty, dir_is_empty(*dst));
        if (!empty) return Status::Error(ENOTEMPTY, "target directory not empty");
      } else if (dst->is_dir()) {
        return Status::Error(EISDIR, "target is a directory");
      }
      RETURN_IF_ERROR(remove_entry(*ddir, new_name, dst->ino));
      if (dst->is_dir()) ddir->item.nlink--;
      RETURN_IF_ERROR(drop_link(*dst));
    }
    RETURN_IF_ERROR(remove_entry(*sdir, name, src->ino));
    RETURN_IF_ERROR(add_entry(*ddir, new_name, *src));
    if (src->is_dir() && parent != new_parent) {
      sdir->item.nlink--;
      ddir->item.nlink++;
    }
    src->item.ctime = now;
    mark_dirty(*src);
    return Status::Ok();
  });
}

Result<uint64_t> Filesystem::opendir(uint64_t ino, bool* atime_changed) {
  std::lock_guard lk(engine_->mutex());
  ASSIGN_OR_RETURN(auto dir, get_inode(ino));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  if (atime_changed) *atime_changed = touch_atime(*dir);
  return dir->item.sequence;
}

Status Filesystem::readdir(uint64_t ino, uint64_t offset, bool plus,
                           const std::function<bool(const DirEntryOut&)>& emit, uint64_t end_index) {
  std::lock_guard lk(engine_->mutex());
  if (plus) maybe_park();
  ASSIGN_OR_RETURN(auto dir, get_inode(ino));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  if (offset == 0) {
    if (!emit(DirEntryOut{".", ino, DT_DIR, 1, entry_of(*dir)})) return Status::Ok();
    offset = 1;
  }
  if (offset == 1) {
    ASSIGN_OR_RETURN(uint64_t p, parent_of(*dir));
    ASSIGN_OR_RETURN(auto pin, get_inode(p));
    if (!emit(DirEntryOut{"..", p, DT_DIR, 2, entry_of(*pin)})) return Status::Ok();
    offset = 2;
  }
  BTree fs = engine_->tree(dir->root);
  Cursor c = fs.cursor();
  const uint64_t local = dir->ino;
  RETURN_IF_ERROR(c.seek(Key{local, kDirIndex, offset}));
  // Indexes only grow (a rename gives the name a new one), so stopping at
  // the index the directory had when it was opened ends every read, and an
  // entry present throughout is returned once (btrfs does the same).
  for (; c.valid() && c.key().objectid == local && c.key().type == kDirIndex && c.key().offset < end_index; c.advance()) {
    ASSIGN_OR_RETURN(auto list, decode_dir_entries(c.data()));
    const DirEntry& de = list.front();
    DirEntryOut out{de.name, entry_vino(*dir, de), de.type, c.key().offset + 1, {}};
    std::shared_ptr<Inode> child;
    if (plus) {
      ASSIGN_OR_RETURN(child, get_inode(out.ino));
      out.entry = entry_of(*child);
    }
    if (!emit(out)) break;
    if (plus) child->nlookup++;
  }
  return c.status();
}

}  // namespace cairn

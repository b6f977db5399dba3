// Filesystem: subvolumes and snapshots (docs/design.md, "Subvolumes").
//
// A subvolume is an fs tree of its own (ids from 256) whose root directory
// appears in its parent subvolume under a directory entry whose location
// is the tree's ROOT_ITEM key; ROOT_REF and ROOT_BACKREF items in the root
// tree record that entry from both sides. A snapshot is a subvolume made
// by Engine::snapshot_tree: it shares every block of its source until
// either side changes. Deleting one marks its tree dead; the drop runs in
// the background (drop_dead_subvolumes).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <mutex>

#include <thread>

#include "scrub/backrefs.h"
#include "tree/tree_space.h"
#include "vfs/filesystem.h"

namespace cairn {

Result<uint64_t> Filesystem::resolve_subvolume(Engine& e, const std::string& path) {
  std::lock_guard lk(e.mutex());
  uint64_t tree = kFsTreeId, ino = kFirstInode;
  size_t at = 0;
  while (at < path.size()) {
    const size_t slash = path.find('/', at);
    const std::string name = path.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
    at = slash == std::string::npos ? path.size() : slash + 1;
    if (name.empty() || name == ".") continue;
    if (name == "..") return Status::Invalid("subvol=: '..' is not allowed");
    auto raw = e.tree(tree).lookup(Key{ino, kDirItem, name_hash(name)});
    if (!raw.ok()) {
      if (raw.status().is_not_found()) return Status::NotFound("subvol=" + path + ": no " + name);
      return raw.status();
    }
    ASSIGN_OR_RETURN(auto entries, decode_dir_entries(raw.value()));
    auto it = std::find_if(entries.begin(), entries.end(), [&](const DirEntry& d) { return d.name == name; });
    if (it == entries.end()) return Status::NotFound("subvol=" + path + ": no " + name);
    if (it->location.type == kRootItem) {
      tree = it->location.objectid;
      ino = kFirstInode;
      if (!e.has_tree(tree) || (e.root_ref(tree).flags & kRootFlagDead))
        return Status::NotFound("subvol=" + path + ": the subvolume was deleted");
    } else {
      if (it->type != DT_DIR) return Status::Error(ENOTDIR, "subvol=" + path + ": " + name + " is not a directory");
      ino = it->location.objectid;
    }
  }
  if (ino != kFirstInode) return Status::Invalid("subvol=" + path + " is a directory, not a subvolume");
  return vino_of(tree, ino);
}

Status Filesystem::writable(const Inode& in) const {
  if (engine_->read_only()) return Status::Error(EROFS, "read-only filesystem");
  if (engine_->aborted()) return Status::Error(EROFS, "filesystem is read-only after an error");
  if (engine_->has_tree(in.root) && (engine_->root_ref(in.root).flags & kRootFlagReadOnly))
    return Status::Error(EROFS, "read-only snapshot");
  return Status::Ok();
}

Result<std::optional<std::pair<uint64_t, RootRefItem>>> Filesystem::subvolume_backref(uint64_t tree) {
  using Found = std::optional<std::pair<uint64_t, RootRefItem>>;
  BTree rt = engine_->tree(kRootTreeId);
  Cursor c = rt.cursor();
  RETURN_IF_ERROR(c.seek(Key{tree, kRootBackref, 0}));
  RETURN_IF_ERROR(c.status());
  if (!c.valid() || c.key().objectid != tree || c.key().type != kRootBackref) return Found();
  ASSIGN_OR_RETURN(RootRefItem rr, RootRefItem::decode(c.data()));
  return Found(std::pair{c.key().offset, rr});
}

Result<uint64_t> Filesystem::subvolume_parent(uint64_t tree) {
  ASSIGN_OR_RETURN(auto back, subvolume_backref(tree));
  // Mounted as the root (-o subvol=), or with no entry: its own parent.
  if (!back || vino_of(tree, kFirstInode) == root_vino_) return vino_of(tree, kFirstInode);
  return vino_of(back->first, back->second.dirid);
}

uint64_t Filesystem::next_subvolume_id() const {
  uint64_t next = kFirstSubvolumeId;
  for (uint64_t id : engine_->tree_ids())
    if (id >= kFirstSubvolumeId && id + 1 > next) next = id + 1;
  return next;
}

Status Filesystem::add_subvolume_entry(Inode& dir, const std::string& name, uint64_t tree) {
  ASSIGN_OR_RETURN(uint64_t index, insert_dir_entry(dir, name, Key{tree, kRootItem, 0}, DT_DIR));
  RootRefItem rr{dir.ino, index, name};
  BTree rt = engine_->tree(kRootTreeId);
  RETURN_IF_ERROR(rt.insert(Key{dir.root, kRootRef, tree}, rr.encode()));
  return rt.insert(Key{tree, kRootBackref, dir.root}, rr.encode());
}

Status Filesystem::remove_subvolume_entry(Inode& dir, const std::string& name, uint64_t tree) {
  BTree rt = engine_->tree(kRootTreeId);
  ASSIGN_OR_RETURN(Bytes raw, rt.lookup(Key{dir.root, kRootRef, tree}));
  ASSIGN_OR_RETURN(RootRefItem rr, RootRefItem::decode(raw));
  if (rr.dirid != dir.ino || rr.name != name)
    return Status::Corruption("subvolume " + std::to_string(tree) + " is recorded under another name");
  RETURN_IF_ERROR(erase_dir_entry(dir, name, rr.sequence));
  RETURN_IF_ERROR(rt.remove(Key{dir.root, kRootRef, tree}));
  return rt.remove(Key{tree, kRootBackref, dir.root});
}

Status Filesystem::rename_subvolume_entry(Inode& sdir, const std::string& name, Inode& ddir,
                                          const std::string& new_name, uint64_t tree) {
  RETURN_IF_ERROR(remove_subvolume_entry(sdir, name, tree));
  return add_subvolume_entry(ddir, new_name, tree);
}

Result<std::vector<std::pair<uint64_t, RootRefItem>>> Filesystem::nested_subvolumes(uint64_t tree) {
  std::vector<std::pair<uint64_t, RootRefItem>> out;
  BTree rt = engine_->tree(kRootTreeId);
  Cursor cur = rt.cursor();
  RETURN_IF_ERROR(cur.seek(Key{tree, kRootRef, 0}));
  for (; cur.valid() && cur.key().objectid == tree && cur.key().type == kRootRef; cur.advance()) {
    ASSIGN_OR_RETURN(RootRefItem rr, RootRefItem::decode(cur.data()));
    out.emplace_back(cur.key().offset, rr);
  }
  RETURN_IF_ERROR(cur.status());
  return out;
}

Result<Entry> Filesystem::subvolume_root_entry(uint64_t tree) {
  // A lookup reference, as a creating request gives the kernel.
  ASSIGN_OR_RETURN(auto root, get_inode(vino_of(tree, kFirstInode)));
  root->nlookup++;
  return entry_of(*root);
}

Result<Entry> Filesystem::create_subvolume(uint64_t parent, const std::string& name, const Caller& c) {
  std::lock_guard lk(engine_->mutex());
  Entry out;
  RETURN_IF_ERROR(modify(64, [&]() -> Status {
    ASSIGN_OR_RETURN(auto dir, dir_for_new_name(parent, name));
    const uint64_t id = next_subvolume_id();
    if (root_of_vino(vino_of(id, kFirstInode)) != id) return Status::NoSpace("no subvolume ids left");
    RETURN_IF_ERROR(engine_->create_tree(id, 0));
    RETURN_IF_ERROR(engine_->init_root_directory(id, S_IFDIR | 0755, c.uid, c.gid));
    RETURN_IF_ERROR(add_subvolume_entry(*dir, name, id));
    ASSIGN_OR_RETURN(out, subvolume_root_entry(id));
    return Status::Ok();
  }));
  RETURN_IF_ERROR(commit_locked());
  return out;
}

Result<Entry> Filesystem::snapshot_subvolume(uint64_t source, uint64_t parent, const std::string& name,
                                             bool read_only, const Caller& c) {
  if (ino_of_vino(source) != kFirstInode) return Status::Invalid("the source is not a subvolume");
  // Everything written so far belongs in the snapshot: data on disk and
  // in the tree before the tree is shared.
  RETURN_IF_ERROR(writeback_->flush_all(true));
  std::lock_guard lk(engine_->mutex());
  Entry out;
  const uint64_t src_tree = root_of_vino(source);
  RETURN_IF_ERROR(modify(128, [&]() -> Status {
    ASSIGN_OR_RETURN(auto src, get_inode(source));
    if (c.uid != 0 && c.uid != src->item.uid) return Status::Error(EPERM, "only the owner of a subvolume snapshots it");
    ASSIGN_OR_RETURN(auto dir, dir_for_new_name(parent, name));
    const uint64_t id = next_subvolume_id();
    if (root_of_vino(vino_of(id, kFirstInode)) != id) return Status::NoSpace("no subvolume ids left");
    RETURN_IF_ERROR(flush_dirty_inodes());
    RETURN_IF_ERROR(engine_->snapshot_tree(src_tree, id));
    // Subvolumes inside the source are not part of it (as in btrfs): their
    // entries are taken out of the snapshot.
    ASSIGN_OR_RETURN(auto nested, nested_subvolumes(src_tree));
    for (const auto& [sub, rr] : nested) {
      ASSIGN_OR_RETURN(auto d, get_inode(vino_of(id, rr.dirid)));
      RETURN_IF_ERROR(erase_dir_entry(*d, rr.name, rr.sequence));
    }
    if (read_only) {
      engine_->root_ref(id).flags |= kRootFlagReadOnly;
      engine_->root_ref(id).dirty = true;
    }
    ASSIGN_OR_RETURN(dir, get_inode(parent));  // the snapshot's commit may have written it
    RETURN_IF_ERROR(add_subvolume_entry(*dir, name, id));
    ASSIGN_OR_RETURN(out, subvolume_root_entry(id));
    return Status::Ok();
  }));
  RETURN_IF_ERROR(commit_locked());
  return out;
}

Status Filesystem::delete_subvolume(uint64_t parent, const std::string& name, const Caller& c) {
  // Written data first: a file being written back is in use, one written
  // back is not (its pages leave the cache).
  RETURN_IF_ERROR(writeback_->flush_all(true));
  writeback_->workers().drain();
  std::lock_guard lk(engine_->mutex());
  RETURN_IF_ERROR(flush_dirty_inodes());
  RETURN_IF_ERROR(modify(64, [&]() -> Status {
    ASSIGN_OR_RETURN(auto dir, get_inode(parent));
    if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
    RETURN_IF_ERROR(writable(*dir));
    ASSIGN_OR_RETURN(auto e, find_entry(*dir, name));
    if (!e) return Status::NotFound();
    if (e->location.type != kRootItem) return Status::Invalid("not a subvolume");
    const uint64_t id = e->location.objectid;
    {
      ASSIGN_OR_RETURN(auto root, get_inode(vino_of(id, kFirstInode)));
      if (c.uid != 0 && c.uid != root->item.uid) return Status::Error(EPERM, "only the owner of a subvolume deletes it");
    }
    if (vino_of(id, kFirstInode) == root_vino_) return Status::Error(EBUSY, "the subvolume is the mount's root");
    // Subvolumes inside it first (btrfs refuses the same way).
    ASSIGN_OR_RETURN(auto nested, nested_subvolumes(id));
    if (!nested.empty()) return Status::Error(ENOTEMPTY, "the subvolume holds other subvolumes");
    // Nothing of it may be in use: its tree stops being readable now.
    std::vector<uint64_t> mine;
    for (auto& [v, in] : inodes_) {
      if (in->root != id) continue;
      if (in->open_count > 0 || in->dirty || in.use_count() > 1)
        return Status::Error(EBUSY, "files of the subvolume are open or being written");
      std::unique_lock ck(in->cache.mu, std::try_to_lock);
      if (!ck.owns_lock() || !in->cache.pages.empty() || in->cache.inflight_extents > 0)
        return Status::Error(EBUSY, "files of the subvolume are being written");
      mine.push_back(v);
    }
    RETURN_IF_ERROR(remove_subvolume_entry(*dir, name, id));
    RETURN_IF_ERROR(engine_->delete_tree(id));
    // The kernel's references to its inodes now find nothing (ESTALE).
    for (uint64_t v : mine) {
      inodes_.erase(v);
      unused_.erase(v);
    }
    std::erase_if(parked_, [&](const auto& p) { return root_of_vino(p.first) == id; });
    return Status::Ok();
  }, true));
  RETURN_IF_ERROR(commit_locked());
  cleaner_cv_.notify_all();
  return Status::Ok();
}

Status Filesystem::commit_locked() {
  RETURN_IF_ERROR(flush_dirty_inodes());
  return engine_->commit();
}

Result<bool> Filesystem::drop_dead_subvolumes(size_t steps) {
  std::lock_guard lk(engine_->mutex());
  if (engine_->read_only() || engine_->aborted()) return false;
  for (uint64_t id : engine_->dead_trees()) {
    // Dropping frees space, but each step copies a path first: with
    // metadata tight, a commit makes the space freed so far usable.
    Status room = engine_->reserve_metadata(16, true);
    if (room.code() == ENOSPC && engine_->commit_makes_room()) {
      RETURN_IF_ERROR(commit_locked());
      room = engine_->reserve_metadata(16, true);
    }
    if (!room.ok()) return false;  // try again after the next commit
    auto gone = engine_->drop_tree_steps(id, steps);
    if (!gone.ok()) {
      engine_->abort(gone.status());
      return gone.status();
    }
    return true;  // more work may remain (this tree or another)
  }
  return false;
}

void Filesystem::clean_dead_subvolumes() {
  std::unique_lock lk(cleaner_mu_);
  while (!cleaner_stop_) {
    lk.unlock();
    auto more = drop_dead_subvolumes(64);
    lk.lock();
    if (more.ok() && more.value()) continue;  // keep going while there is work; commits happen on schedule
    cleaner_cv_.wait_for(lk, std::chrono::seconds(1));
  }
}

Status Filesystem::wait_subvolumes_dropped() {
  for (;;) {
    {
      std::lock_guard lk(engine_->mutex());
      if (engine_->aborted()) return engine_->abort_reason();
      if (engine_->dead_trees().empty()) return commit_locked();
    }
    cleaner_cv_.notify_all();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<SubvolumeInfo> Filesystem::subvolume_info_locked(uint64_t tree) {
  if (!engine_->has_tree(tree) || !is_subvolume_id(tree)) return Status::NotFound("no subvolume " + std::to_string(tree));
  const RootRef& r = engine_->root_ref(tree);
  SubvolumeInfo s;
  s.id = tree;
  s.read_only = r.flags & kRootFlagReadOnly;
  s.generation = r.generation;
  s.dead = r.flags & kRootFlagDead;
  if (tree != kFsTreeId) {
    ASSIGN_OR_RETURN(auto back, subvolume_backref(tree));
    if (back) s.parent = back->first;
    if (auto p = cairn::subvolume_path(*engine_, tree)) s.path = *p;
  } else {
    s.path = "/";
  }
  return s;
}

Result<std::vector<SubvolumeInfo>> Filesystem::list_subvolumes() {
  std::lock_guard lk(engine_->mutex());
  std::vector<SubvolumeInfo> out;
  for (uint64_t id : engine_->tree_ids()) {
    if (!is_subvolume_id(id) || (engine_->root_ref(id).flags & kRootFlagKeyValue)) continue;
    ASSIGN_OR_RETURN(SubvolumeInfo s, subvolume_info_locked(id));
    out.push_back(s);
  }
  return out;
}

Result<TreeSpace> Filesystem::file_space(uint64_t vino) {
  // What is on disk: written back first.
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(in, get_inode(vino));
  }
  if (in->is_reg()) RETURN_IF_ERROR(writeback_->flush_inode(in, true));
  std::lock_guard lk(engine_->mutex());
  return file_data_space(*engine_, in->root, in->ino);
}

Result<SubvolumeInfo> Filesystem::subvolume_show(uint64_t vino) {
  std::lock_guard lk(engine_->mutex());
  const uint64_t tree = root_of_vino(vino);
  ASSIGN_OR_RETURN(SubvolumeInfo s, subvolume_info_locked(tree));
  ASSIGN_OR_RETURN(TreeSpace space, tree_data_space(*engine_, tree));
  s.referenced_bytes = space.referenced;
  s.exclusive_bytes = space.exclusive;
  return s;
}

}  // namespace cairn

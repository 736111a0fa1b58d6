#include "fusefs/nodes/mount_nodes.h"

#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace imagefs {

Error Errno(int e, std::string msg) {
  return Error{e == ENOENT ? Code::kNotFound : Code::kIo, e, std::move(msg)};
}

MountNodes::MountNodes(Store& store, const FsOptions& options, RemoteImages* remote,
                       std::shared_ptr<ImportDir> import, Stats& stats)
    : store_(store),
      options_(options),
      trees_(store, options.cache_nodes),
      inodes_(options.import_only ? VKind::kImportDir : VKind::kRoot),
      remote_(remote),
      import_(std::move(import)),
      stats_(stats),
      start_time_(time(nullptr)),
      mounter_uid_(getuid()),
      mounter_gid_(getgid()) {}

Result<std::pair<VNode, const NodeKind*>> MountNodes::SyntheticNode(fuse_ino_t ino) {
  auto v = inodes_.GetSynthetic(ino);
  if (!v) return Fail(Errno(ESTALE, "unknown node"));
  const NodeKind* kind = KindOf(v->kind);
  if (kind == nullptr) return Fail(Errno(EIO, "unknown node kind"));
  return std::make_pair(std::move(*v), kind);
}

Result<NodeEntry> MountNodes::Describe(fuse_ino_t ino, RemoteAccess access) {
  if (uint32_t serial = InodeTable::SerialOf(ino); serial != 0) {
    ASSIGN_OR_RETURN(auto tree_node, TreeAndNode(ino));
    NodeEntry e;
    e.ino = ino;
    FillTreeAttr(*tree_node.first, serial, tree_node.second, &e.attr);
    e.timeout = options_.tree_timeout;
    return e;
  }
  ASSIGN_OR_RETURN(auto node, SyntheticNode(ino));
  return node.second->Attributes(*this, ino, node.first, access);
}

Result<NodeEntry> MountNodes::LookupSynthetic(fuse_ino_t parent, const std::string& name,
                                              RemoteAccess access) {
  ASSIGN_OR_RETURN(auto dir, SyntheticNode(parent));
  return dir.second->Lookup(*this, dir.first, name, access);
}

Result<std::vector<DirEntry>> MountNodes::ListSynthetic(fuse_ino_t ino, RemoteAccess access) {
  ASSIGN_OR_RETURN(auto dir, SyntheticNode(ino));
  return dir.second->List(*this, dir.first, access);
}

Result<std::vector<std::pair<std::string, std::string>>> MountNodes::SyntheticXattrs(
    fuse_ino_t ino, RemoteAccess access) {
  ASSIGN_OR_RETURN(auto node, SyntheticNode(ino));
  return node.second->Xattrs(*this, node.first, access);
}

void MountNodes::WatchStream(const std::string& image_key,
                             const std::shared_ptr<StreamingRootfs>& rootfs) {
  {
    std::lock_guard lock(streams_mu_);
    auto& watched = watched_streams_[image_key];
    if (watched.lock() == rootfs) return;
    watched = rootfs;
  }
  {
    std::lock_guard lock(stream_watch_->mu);
    if (stream_watch_->stopped) return;
    stream_watch_->nodes = this;
  }
  rootfs->OnFailure([watch = stream_watch_, image_key] {
    std::thread([watch, image_key] {
      std::lock_guard lock(watch->mu);
      MountNodes* self = watch->nodes;
      if (self == nullptr) return;
      const std::string prefix = image_key + "\n";
      for (const auto& [key, ino] : self->inodes_.SyntheticOfKind(VKind::kRegistryStreamNode)) {
        if (key.compare(0, prefix.size(), prefix) == 0 && self->invalidate_inode_)
          self->invalidate_inode_(ino);
      }
      auto dir = self->inodes_.FindSynthetic(VKind::kRegistryImage, image_key);
      if (dir && self->invalidate_entry_) self->invalidate_entry_(*dir, "rootfs");
    }).detach();
  });
}

void MountNodes::StopWatchingStreams() {
  std::lock_guard lock(stream_watch_->mu);
  stream_watch_->nodes = nullptr;
  stream_watch_->stopped = true;
}

MountNodes::~MountNodes() { StopWatchingStreams(); }

void MountNodes::Settle(fuse_ino_t ino, const char* name) {
  if (auto dir = SyntheticNode(ino)) dir->second->Settle(*this, dir->first, name);
}

Result<std::string> MountNodes::ReadLink(fuse_ino_t ino, RemoteAccess access) {
  if (InodeTable::SerialOf(ino) != 0) {
    ASSIGN_OR_RETURN(auto tree_node, TreeAndNode(ino));
    std::string target(tree_node.first->SymlinkTarget(tree_node.second));
    if (target.empty()) return Fail(Code::kInvalid, "not a symlink");
    return target;
  }
  ASSIGN_OR_RETURN(auto link, SyntheticNode(ino));
  return link.second->ReadLink(*this, link.first, access);
}

// The same for an OPEN (daemon-handled opens keep it in a handle) and for a READ without
// one (kernel-handled opens: built per request, which costs a hash probe for tree files).
Result<NodeSource> MountNodes::Open(fuse_ino_t ino, RemoteAccess access) {
  if (InodeTable::SerialOf(ino) != 0) {
    ASSIGN_OR_RETURN(auto tree_node, TreeAndNode(ino));
    auto& [tree, node] = tree_node;
    TreeAttr attr = tree->Attr(node);
    if (!S_ISREG(attr.mode))
      return Fail(Errno(S_ISDIR(attr.mode) ? EISDIR : EACCES, tree->Path(node)));
    auto extent = tree->ContiguousData(node);
    if (extent && extent->fd < 0) {
      return Fail(Error{Code::kIo, EIO, "layer blob missing for " + tree->Path(node)});
    }
    return NodeSource{NodeSource::TreeFile{tree, node, extent, attr.size}};
  }
  ASSIGN_OR_RETURN(auto file, SyntheticNode(ino));
  return file.second->Open(*this, ino, file.first, access);
}

Result<std::shared_ptr<const Tree>> MountNodes::TreeOf(uint32_t serial) {
  auto key = inodes_.GetTree(serial);
  if (!key) return Fail(Errno(ESTALE, "unknown tree"));
  if (key->kind == TreeKind::kRemote) {
    if (remote_ == nullptr) return Fail(Errno(ESTALE, "no registry"));
    return remote_->ServedRootfs(key->owner.substr(key->owner.find(':') + 1));
  }
  return trees_.Get(key->kind, key->top);
}

Result<std::pair<std::shared_ptr<const Tree>, uint32_t>> MountNodes::TreeAndNode(fuse_ino_t ino) {
  ASSIGN_OR_RETURN(auto tree, TreeOf(InodeTable::SerialOf(ino)));
  uint32_t node = InodeTable::TreeNodeOf(ino);
  if (node >= tree->size()) return Fail(Errno(ESTALE, "stale node"));
  return std::make_pair(std::move(tree), node);
}

fuse_ino_t MountNodes::TreeRoot(TreeCache::Kind kind, const std::optional<Digest>& top,
                                const std::string& owner) {
  return InodeTable::TreeIno(inodes_.TreeSerial({kind, top, owner}), Tree::kRoot);
}

void MountNodes::FillTreeAttr(const Tree& tree, uint32_t serial, uint32_t node,
                              struct stat* st) const {
  TreeAttr a = tree.Attr(node);
  std::memset(st, 0, sizeof *st);
  st->st_ino = InodeTable::TreeIno(serial, a.inode);
  st->st_mode = a.mode;
  st->st_nlink = a.nlink;
  st->st_uid = options_.uid.value_or(a.uid);
  st->st_gid = options_.gid.value_or(a.gid);
  st->st_size = static_cast<off_t>(a.size);
  st->st_blocks = static_cast<blkcnt_t>(a.blocks);
  st->st_blksize = 4096;
  st->st_rdev = makedev(a.rdev_major, a.rdev_minor);
  st->st_mtim = {a.mtime_sec, a.mtime_nsec};
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

NodeEntry MountNodes::Base(fuse_ino_t ino) const {
  NodeEntry e;
  e.ino = ino;
  struct stat& st = e.attr;
  st.st_ino = ino;
  // The mount's own directories are the mounter's (a user's mount is theirs to use).
  st.st_uid = options_.uid.value_or(mounter_uid_);
  st.st_gid = options_.gid.value_or(mounter_gid_);
  st.st_mtim = st.st_ctim = st.st_atim = {start_time_, 0};
  st.st_blksize = 4096;
  st.st_mode = S_IFDIR | 0555;
  st.st_nlink = 2;
  e.timeout = options_.tree_timeout;
  return e;
}

NodeEntry MountNodes::FileEntry(fuse_ino_t ino, uint64_t size) const {
  NodeEntry e = Base(ino);
  e.attr.st_mode = S_IFREG | 0444;
  e.attr.st_nlink = 1;
  e.attr.st_size = static_cast<off_t>(size);
  e.attr.st_blocks = static_cast<blkcnt_t>((size + 511) / 512);
  return e;
}

NodeEntry MountNodes::LinkEntry(fuse_ino_t ino, size_t target_length) const {
  NodeEntry e = Base(ino);
  AsLink(e, target_length);
  return e;
}

void MountNodes::AsLink(NodeEntry& e, size_t target_length) {
  e.attr.st_mode = S_IFLNK | 0777;
  e.attr.st_nlink = 1;
  e.attr.st_size = static_cast<off_t>(target_length);
}

// At once through the store watcher's invalidation, or, without a watcher, at every access
// (nothing cached).
void MountNodes::FollowStore(NodeEntry& e) const {
  uint64_t g = store_.generation();
  e.attr.st_mtim = {start_time_ + static_cast<time_t>(g / 1000000000),
                    static_cast<long>(g % 1000000000)};
  e.timeout = watching_ ? options_.tree_timeout : 0;
}

double MountNodes::StoreTimeout() const {
  return watching_ ? options_.tree_timeout : options_.store_timeout;
}

Result<std::string> MountNodes::Materialized(const std::string& key, RemoteAccess access) {
  if (remote_ == nullptr) return Fail(Errno(ENOENT, key));
  return remote_->Materialize(key, access);
}

Result<size_t> MountNodes::ChainLength(const std::string& image_id) {
  ASSIGN_OR_RETURN(ImageInfo image, store_.GetImage(image_id));
  if (!image.top_layer) return size_t{0};
  ASSIGN_OR_RETURN(auto chain, store_.LayerChain(*image.top_layer));
  return chain.size();
}

Result<LayerInfo> MountNodes::LayerOf(const std::string& chain_hex) {
  ASSIGN_OR_RETURN(Digest chain, Digest::FromHex(chain_hex));
  return store_.GetLayer(chain);
}

Result<NodeEntry> MountNodes::LookupLayerLink(VKind link_kind, const std::string& key,
                                              const std::string& name, size_t count,
                                              RemoteAccess access) {
  // "0", "1", … as listed: no sign, no leading zero.
  bool plain = !name.empty() && name.size() <= 9 && (name[0] != '0' || name.size() == 1) &&
               name.find_first_not_of("0123456789") == std::string::npos;
  uint32_t index = plain ? static_cast<uint32_t>(std::stoul(name)) : 0;
  if (!plain || index >= count) return Fail(Errno(ENOENT, name));
  return Describe(inodes_.Synthetic(link_kind, key, index), access);
}

std::vector<DirEntry> MountNodes::LayerLinks(VKind link_kind, const std::string& key,
                                             size_t count) {
  std::vector<DirEntry> out;
  for (uint32_t i = 0; i < count; ++i)
    out.emplace_back(std::to_string(i), inodes_.Synthetic(link_kind, key, i));
  return out;
}

Result<Digest> MountNodes::ChainAt(const std::string& image_id, uint32_t index) {
  ASSIGN_OR_RETURN(ImageInfo image, store_.GetImage(image_id));
  if (!image.top_layer) return Fail(Errno(ENOENT, "image " + image_id + " has no layers"));
  ASSIGN_OR_RETURN(auto chain, store_.LayerChain(*image.top_layer));
  if (index >= chain.size()) return Fail(Errno(ENOENT, "no layer " + std::to_string(index)));
  return chain[index].chain_id;
}

Result<std::shared_ptr<const ImageArchive>> MountNodes::ArchiveOf(const std::string& image_id) {
  {
    std::lock_guard lock(archives_mu_);
    if (auto it = archives_.find(image_id); it != archives_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(auto archive, ImageArchive::Build(store_, image_id));
  std::lock_guard lock(archives_mu_);
  if (archives_.size() > 256) archives_.clear();  // small objects; a crude bound suffices
  archives_[image_id] = archive;
  return archive;
}

Result<uint64_t> MountNodes::ArchiveSize(const std::string& image_id) {
  {
    std::lock_guard lock(archives_mu_);
    if (auto it = archives_.find(image_id); it != archives_.end()) return it->second->size();
  }
  return ImageArchive::Measure(store_, image_id);
}

void MountNodes::ForgetArchive(const std::string& image_id) {
  std::lock_guard lock(archives_mu_);
  archives_.erase(image_id);
}

}  // namespace imagefs

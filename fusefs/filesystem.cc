#include "fusefs/filesystem.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <variant>

#include "graph/base/log.h"

namespace imagefs {
namespace {

auto Log() { return Logger("fusefs"); }

constexpr const char* kTopLevel[] = {"images", "layers", "tags", "import"};

Error Errno(int e, std::string msg) {
  return Error{e == ENOENT ? Code::kNotFound : Code::kIo, e, std::move(msg)};
}

}  // namespace

struct ImageFs::Entry {
  fuse_ino_t ino = 0;
  struct stat attr {};
  double timeout = 0;
};

// What a file's bytes come from.
struct ImageFs::Source {
  struct TreeFile {
    std::shared_ptr<const Tree> tree;
    uint32_t node;
    std::optional<Tree::Extent> extent;  // contiguous data: spliced from the blob
    uint64_t size;
  };
  struct Bytes {
    std::string data;
  };
  struct Blob {
    std::shared_ptr<const LayerBlob> blob;
  };
  struct Archive {
    std::shared_ptr<const ImageArchive> archive;
  };
  struct Import {
    std::string name;
  };
  std::variant<TreeFile, Bytes, Blob, Archive, Import> v;
};

// An open file (daemon-handled opens, and uploads created in import/).
struct ImageFs::Handle {
  struct Upload {
    UniqueFd fd;
    std::string name;
    bool written = false;
    bool finished = false;
  };
  Source source;
  std::optional<Upload> upload;
  fuse_ino_t counted_ino =
      0;  // non-zero for Passthrough::Mode::kServeCounted: tell it of the close
};

Result<std::unique_ptr<ImageFs>> ImageFs::Create(Store& store, const FsOptions& options,
                                                 RemoteImages* remote,
                                                 std::shared_ptr<ImportDir> import) {
  std::unique_ptr<ImageFs> fs(new ImageFs(store, options));
  fs->remote_ = remote;
  if (import) {
    fs->import_ = std::move(import);
  } else {
    ASSIGN_OR_RETURN(fs->import_, ImportDir::Create(store));
  }
  fs->start_time_ = time(nullptr);
  fs->mounter_uid_ = getuid();
  return fs;
}

void ImageFs::Init(fuse_conn_info* conn) {
  // Large requests: reads of 1 MiB, splice from the blob fds where the kernel allows.
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  for (unsigned cap : {FUSE_CAP_SPLICE_WRITE, FUSE_CAP_CACHE_SYMLINKS, FUSE_CAP_PARALLEL_DIROPS,
                       FUSE_CAP_ASYNC_READ, FUSE_CAP_READDIRPLUS}) {
    if (conn->capable & cap) conn->want |= cap;
  }
  no_opendir_ = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  // Content never changes: no attribute revalidation on every cached read.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // Every listing carries attributes (readdirplus), not only its first reply: with the
  // "auto" mode libfuse asks for, a directory of thousands of entries cost one LOOKUP per
  // entry past the first reply when stat'ed (find -printf, ls -l).
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (options_.kernel_opens && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)) {
    conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
    kernel_opens_ = true;
  } else {
    passthrough_.OfferInInit();
  }
  Log()->info("mount ready: store={} opens={}", store_.root().string(),
              kernel_opens_ ? "kernel" : "daemon");
}

void ImageFs::ReplyError(fuse_req_t req, const Error& error, const char* tag) {
  int e = error.ToErrno();
  if (e == EIO) {
    stats_.Bump(tag);
    Log()->error("{}: {}", tag, error.msg);
  } else {
    Log()->debug("{}: {}", tag, error.msg);
  }
  fuse_reply_err(req, e);
}

RemoteAccess ImageFs::Access(fuse_req_t req) const {
  // The mounter's credentials serve the mounter; other users get what anyone may pull,
  // unless the mounter lent them on purpose (-o share_credentials).
  if (options_.share_credentials || fuse_req_ctx(req)->uid == mounter_uid_)
    return RemoteAccess::kMounter;
  return RemoteAccess::kAnonymous;
}

Result<std::shared_ptr<const Tree>> ImageFs::TreeOf(uint32_t serial) {
  auto key = inodes_.GetTree(serial);
  if (!key) return Fail(Errno(ESTALE, "unknown tree"));
  return trees_.Get(key->kind, key->top);
}

Result<std::pair<std::shared_ptr<const Tree>, uint32_t>> ImageFs::TreeNode(fuse_ino_t ino) {
  ASSIGN_OR_RETURN(auto tree, TreeOf(InodeTable::SerialOf(ino)));
  uint32_t node = InodeTable::TreeNodeOf(ino);
  if (node >= tree->size()) return Fail(Errno(ESTALE, "stale node"));
  return std::make_pair(std::move(tree), node);
}

fuse_ino_t ImageFs::TreeRoot(TreeCache::Kind kind, const std::optional<Digest>& top,
                             const std::string& owner) {
  return InodeTable::TreeIno(inodes_.TreeSerial({kind, top, owner}), Tree::kRoot);
}

void ImageFs::FillTreeAttr(const Tree& tree, uint32_t serial, uint32_t node,
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

Result<std::shared_ptr<const ImageArchive>> ImageFs::ArchiveOf(const std::string& image_id) {
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

namespace {

// A tag link's key: "<canonical reference>\n<image id>".
std::pair<std::string, std::string> TagLinkKey(const std::string& key) {
  size_t nl = key.find('\n');
  return {key.substr(0, nl), nl == std::string::npos ? std::string() : key.substr(nl + 1)};
}

std::string TagLinkTarget(const Reference& ref, const std::string& id) {
  std::string up;
  std::string name = ref.Name();
  size_t components = 1 + std::count(name.begin(), name.end(), '/');
  for (size_t i = 0; i <= components; ++i) up += "../";
  return up + "images/" + id;
}

// registry/<path>/layers/N -> ../…/layers/<chain>, up to the mount's root.
std::string RegistryLayerTarget(const std::string& key, const std::string& chain_hex) {
  std::string path = key.substr(0, key.find('@'));
  size_t components = 1 + std::count(path.begin(), path.end(), '/');
  std::string up;
  for (size_t i = 0; i < components + 2; ++i) up += "../";
  return up + "layers/" + chain_hex;
}

}  // namespace

Result<size_t> ImageFs::ChainLength(const std::string& image_id) {
  ASSIGN_OR_RETURN(ImageInfo image, store_.GetImage(image_id));
  if (!image.top_layer) return size_t{0};
  ASSIGN_OR_RETURN(auto chain, store_.LayerChain(*image.top_layer));
  return chain.size();
}

Result<std::string> ImageFs::Materialized(const std::string& key, RemoteAccess access) {
  if (remote_ == nullptr) return Fail(Errno(ENOENT, key));
  return remote_->Materialize(key, access);
}

Result<ImageFs::Entry> ImageFs::Describe(fuse_ino_t ino, RemoteAccess access) {
  Entry e;
  e.ino = ino;
  uint32_t serial = InodeTable::SerialOf(ino);
  if (serial != 0) {
    ASSIGN_OR_RETURN(auto tree, TreeOf(serial));
    uint32_t node = InodeTable::TreeNodeOf(ino);
    if (node >= tree->size()) return Fail(Errno(ESTALE, "stale node"));
    FillTreeAttr(*tree, serial, node, &e.attr);
    e.timeout = options_.tree_timeout;
    return e;
  }
  auto v = inodes_.GetSynthetic(ino);
  if (!v) return Fail(Errno(ESTALE, "unknown node"));
  struct stat& st = e.attr;
  st.st_ino = ino;
  st.st_uid = options_.uid.value_or(0);
  st.st_gid = options_.gid.value_or(0);
  st.st_mtim = st.st_ctim = st.st_atim = {start_time_, 0};
  st.st_blksize = 4096;
  // What the store decides (which images, layers and tags there are) may be cached for as
  // long as the store watcher drops it when the store changes; else briefly.
  const double store_timeout = watcher_ ? options_.tree_timeout : options_.store_timeout;
  e.timeout = options_.tree_timeout;
  auto file = [&](uint64_t size) {
    st.st_mode = S_IFREG | 0444;
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(size);
    st.st_blocks = static_cast<blkcnt_t>((size + 511) / 512);
  };
  auto link = [&](const std::string& target) {
    st.st_mode = S_IFLNK | 0777;
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(target.size());
  };
  st.st_mode = S_IFDIR | 0555;
  st.st_nlink = 2;
  // A directory's mtime moves with every change to the store, so that the kernel drops its
  // cached listing once it learns the new attributes: at once through the store watcher's
  // invalidation, or, without a watcher, at every access (nothing cached).
  auto follows_store = [&] {
    uint64_t g = store_.generation();
    st.st_mtim = {start_time_ + static_cast<time_t>(g / 1000000000),
                  static_cast<long>(g % 1000000000)};
    e.timeout = watcher_ ? options_.tree_timeout : 0;
  };
  switch (v->kind) {
    case VKind::kRoot:
    case VKind::kMetaDir: return e;
    case VKind::kRegistryDir:
      // registry/ lists the hosts looked up so far: its mtime moves as the list grows, so
      // the kernel drops its cached listing.
      if (v->key.empty() && remote_ != nullptr)
        st.st_mtim.tv_nsec = static_cast<long>(remote_->Hosts().size());
      e.timeout = 0;
      return e;
    case VKind::kRegistryImage:
      e.timeout = options_.tree_timeout;  // the key names a digest: immutable
      return e;
    case VKind::kRegistryLayersDir: {
      ASSIGN_OR_RETURN(std::string id, Materialized(v->key, access));
      return e;
    }
    case VKind::kRegistryConfig: {
      if (remote_ == nullptr) return Fail(Errno(ENOENT, v->key));
      ASSIGN_OR_RETURN(RemoteImage image, remote_->Image(v->key, access));
      file(image.config.size());
      e.timeout = options_.tree_timeout;
      return e;
    }
    case VKind::kRegistryLayerLink:
      link(RegistryLayerTarget(v->key, std::string(64, 'x')));
      e.timeout = options_.tree_timeout;
      return e;
    case VKind::kMetaFile: {
      file(StatusSnapshot(ino, v->key).size());
      // Pull status and errors name private repositories and quote registries: the
      // mounter's to read. The EIO counters are no secret.
      if (StatusFileName(v->key) != "stats") {
        st.st_mode = S_IFREG | 0400;
        st.st_uid = options_.uid.value_or(mounter_uid_);
      }
      e.timeout = 0;
      return e;
    }
    case VKind::kImagesDir:
    case VKind::kLayersDir:
    case VKind::kTagsDir: follows_store(); return e;
    case VKind::kImportDir: {
      // The mounter's: others may not upload (nor, where it is its own mount, look in).
      st.st_mode = S_IFDIR | (options_.import_only ? 0700 : 0755);
      st.st_uid = options_.uid.value_or(mounter_uid_);
      e.timeout = 0;
      if (auto real = import_->DirStat()) st.st_mtim = real->st_mtim;
      return e;
    }
    case VKind::kImageDir:
    case VKind::kImageLayersDir:
      RETURN_IF_ERROR(store_.GetImage(v->key));  // an image's own listing never changes
      e.timeout = store_timeout;                 // but the image may go
      return e;
    case VKind::kLayerDir:
      RETURN_IF_ERROR(LayerOf(v->key));
      e.timeout = store_timeout;
      return e;
    case VKind::kImageConfig: {
      ASSIGN_OR_RETURN(std::string config, store_.ReadConfig(v->key));
      file(config.size());
      e.timeout = options_.tree_timeout;  // an image's config never changes
      return e;
    }
    case VKind::kImageTar: {
      ASSIGN_OR_RETURN(auto archive, ArchiveOf(v->key));
      file(archive->size());
      e.timeout = store_timeout;
      return e;
    }
    case VKind::kLayerTar: {
      ASSIGN_OR_RETURN(LayerInfo layer, LayerOf(v->key));
      file(layer.tar_size);
      e.timeout = options_.tree_timeout;
      return e;
    }
    case VKind::kImportLink:
      link(options_.import_link);
      e.timeout = options_.tree_timeout;
      return e;
    // Link targets end in a 64-hex ID, so their length is known without resolving them.
    case VKind::kImageLayerLink: {
      ASSIGN_OR_RETURN(ImageInfo image, store_.GetImage(v->key));
      link("../../../layers/" + std::string(64, 'x'));
      e.timeout = store_timeout;
      return e;
    }
    case VKind::kLayerParent:
      RETURN_IF_ERROR(LayerOf(v->key));
      link("../" + std::string(64, 'x'));
      e.timeout = store_timeout;
      return e;
    case VKind::kTagLink: {
      auto [canonical, id] = TagLinkKey(v->key);
      auto ref = ParseReference(canonical);
      if (!ref) return Fail(Errno(ENOENT, "tag gone"));
      link(TagLinkTarget(*ref, id));
      e.timeout = store_timeout;  // a tag may move: the watcher drops its entry then
      return e;
    }
    case VKind::kImportFile: {
      ASSIGN_OR_RETURN(struct stat real, import_->Stat(v->key));
      st.st_mode = real.st_mode;
      st.st_nlink = 1;
      st.st_size = real.st_size;
      st.st_blocks = real.st_blocks;
      st.st_mtim = real.st_mtim;
      st.st_ctim = real.st_ctim;
      e.timeout = 0;
      return e;
    }
  }
  return Fail(Errno(EIO, "unknown node kind"));
}

Result<std::vector<std::pair<std::string, fuse_ino_t>>> ImageFs::SyntheticChildren(
    const VNode& dir, RemoteAccess access) {
  std::vector<std::pair<std::string, fuse_ino_t>> out;
  switch (dir.kind) {
    case VKind::kRoot:
      out.emplace_back("images", inodes_.Synthetic(VKind::kImagesDir, ""));
      out.emplace_back("layers", inodes_.Synthetic(VKind::kLayersDir, ""));
      out.emplace_back("tags", inodes_.Synthetic(VKind::kTagsDir, ""));
      out.emplace_back(
          "import", inodes_.Synthetic(
                        options_.import_link.empty() ? VKind::kImportDir : VKind::kImportLink, ""));
      out.emplace_back("registry", inodes_.Synthetic(VKind::kRegistryDir, ""));
      break;
    case VKind::kImagesDir:
      for (const ImageInfo& image : store_.Images()) {
        out.emplace_back(image.id, inodes_.Synthetic(VKind::kImageDir, image.id));
      }
      break;
    case VKind::kLayersDir:
      for (const LayerInfo& layer : store_.Layers()) {
        out.emplace_back(layer.chain_id.hex(),
                         inodes_.Synthetic(VKind::kLayerDir, layer.chain_id.hex()));
      }
      break;
    case VKind::kMetaDir:
      for (auto& [name, text] : StatusFiles())
        out.emplace_back(name, SnapshotIno(name, std::move(text)));
      break;
    case VKind::kRegistryDir:
      if (dir.key.empty() && remote_ != nullptr) {
        for (const std::string& host : remote_->Hosts())
          out.emplace_back(host, inodes_.Synthetic(VKind::kRegistryDir, host));
      }
      break;  // below a host, names resolve on lookup only: registries cannot list them all
    case VKind::kRegistryImage: {
      if (remote_ == nullptr) return Fail(Errno(ENOENT, dir.key));
      ASSIGN_OR_RETURN(RemoteImage image, remote_->Image(dir.key, access));
      std::optional<Digest> top = image.top_layer;
      if (!top) {  // schema1: the chain is known only once pulled
        ASSIGN_OR_RETURN(std::string id, Materialized(dir.key, access));
        ASSIGN_OR_RETURN(ImageInfo info, store_.GetImage(id));
        top = info.top_layer;
      }
      out.emplace_back("config.json", inodes_.Synthetic(VKind::kRegistryConfig, dir.key));
      out.emplace_back("image.tar", inodes_.Synthetic(VKind::kImageTar, image.image_id));
      out.emplace_back("layers", inodes_.Synthetic(VKind::kRegistryLayersDir, dir.key));
      out.emplace_back("rootfs", TreeRoot(TreeCache::Kind::kMerged, top, "registry:" + dir.key));
      break;
    }
    case VKind::kRegistryLayersDir: {
      ASSIGN_OR_RETURN(std::string id, Materialized(dir.key, access));
      ASSIGN_OR_RETURN(size_t count, ChainLength(id));
      for (uint32_t i = 0; i < count; ++i) {
        out.emplace_back(std::to_string(i),
                         inodes_.Synthetic(VKind::kRegistryLayerLink, dir.key, i));
      }
      break;
    }
    case VKind::kImportDir:
      for (const std::string& name : import_->List()) {
        out.emplace_back(name, inodes_.Synthetic(VKind::kImportFile, name));
      }
      break;
    case VKind::kImageDir: {
      ASSIGN_OR_RETURN(ImageInfo image, store_.GetImage(dir.key));
      out.emplace_back("config.json", inodes_.Synthetic(VKind::kImageConfig, dir.key));
      out.emplace_back("image.tar", inodes_.Synthetic(VKind::kImageTar, dir.key));
      out.emplace_back("layers", inodes_.Synthetic(VKind::kImageLayersDir, dir.key));
      out.emplace_back("rootfs",
                       TreeRoot(TreeCache::Kind::kMerged, image.top_layer, "image:" + dir.key));
      break;
    }
    case VKind::kImageLayersDir: {
      ASSIGN_OR_RETURN(size_t count, ChainLength(dir.key));
      for (uint32_t i = 0; i < count; ++i) {
        out.emplace_back(std::to_string(i), inodes_.Synthetic(VKind::kImageLayerLink, dir.key, i));
      }
      break;
    }
    case VKind::kLayerDir: {
      ASSIGN_OR_RETURN(Digest chain, Digest::FromHex(dir.key));
      ASSIGN_OR_RETURN(LayerInfo layer, store_.GetLayer(chain));
      out.emplace_back("diff", TreeRoot(TreeCache::Kind::kDiff, chain, "layer:" + dir.key));
      out.emplace_back("layer.tar", inodes_.Synthetic(VKind::kLayerTar, dir.key));
      if (layer.parent) out.emplace_back("parent", inodes_.Synthetic(VKind::kLayerParent, dir.key));
      out.emplace_back("rootfs", TreeRoot(TreeCache::Kind::kMerged, chain, "layer:" + dir.key));
      break;
    }
    case VKind::kTagsDir: {
      const std::string& prefix = dir.key;
      std::set<std::string> seen;
      for (const auto& [canonical, id] : store_.Tags()) {
        auto ref = ParseReference(canonical);
        if (!ref) continue;
        std::string name = ref->Name();
        if (name == prefix) {
          if (seen.insert(ref->tag).second) {
            // One node per (tag, image): a tag that moves is a new symlink, so the
            // target the kernel cached for the old one is never shown for the new.
            out.emplace_back(ref->tag, inodes_.Synthetic(VKind::kTagLink, canonical + "\n" + id));
          }
        } else if (prefix.empty() || name.rfind(prefix + "/", 0) == 0) {
          std::string rest = prefix.empty() ? name : name.substr(prefix.size() + 1);
          std::string comp = rest.substr(0, rest.find('/'));
          if (seen.insert(comp).second) {
            out.emplace_back(comp, inodes_.Synthetic(VKind::kTagsDir,
                                                     prefix.empty() ? comp : prefix + "/" + comp));
          }
        }
      }
      break;
    }
    default: return Fail(Errno(ENOTDIR, "not a directory"));
  }
  return out;
}

Result<ImageFs::Entry> ImageFs::ResolveChild(fuse_ino_t parent, const std::string& name,
                                             RemoteAccess access) {
  uint32_t serial = InodeTable::SerialOf(parent);
  if (serial != 0) {
    ASSIGN_OR_RETURN(auto tree, TreeOf(serial));
    uint32_t node = InodeTable::TreeNodeOf(parent);
    if (node >= tree->size()) return Fail(Errno(ESTALE, "stale node"));
    auto child = tree->Lookup(node, name);
    if (!child) return Fail(Errno(ENOENT, name));
    return Describe(InodeTable::TreeIno(serial, *child), access);
  }
  auto dir = inodes_.GetSynthetic(parent);
  if (!dir) return Fail(Errno(ESTALE, "unknown node"));
  if (dir->kind == VKind::kRoot && name == ".imagefs")
    return Describe(inodes_.Synthetic(VKind::kMetaDir, ""), access);
  if (dir->kind == VKind::kImagesDir || dir->kind == VKind::kLayersDir) {
    // A unique ID prefix resolves too, without being listed.
    // A prefix may become ambiguous as the store grows: its entry is trusted only briefly.
    if (dir->kind == VKind::kImagesDir) {
      auto id = store_.ResolveImageId(name);
      if (!id) return Fail(Errno(ENOENT, name));
      ASSIGN_OR_RETURN(Entry e, Describe(inodes_.Synthetic(VKind::kImageDir, *id), access));
      if (*id != name) e.timeout = std::min(e.timeout, options_.store_timeout);
      return e;
    }
    auto chain = store_.ResolveLayerId(name);
    if (!chain) return Fail(Errno(ENOENT, name));
    ASSIGN_OR_RETURN(Entry e, Describe(inodes_.Synthetic(VKind::kLayerDir, chain->hex()), access));
    if (chain->hex() != name) e.timeout = std::min(e.timeout, options_.store_timeout);
    return e;
  }
  if (dir->kind == VKind::kRegistryDir) {
    if (remote_ == nullptr) return Fail(Errno(ENOENT, name));
    ASSIGN_OR_RETURN(RemoteEntry entry, remote_->Lookup(dir->key, name, access));
    VKind kind =
        entry.kind == RemoteEntry::Kind::kImage ? VKind::kRegistryImage : VKind::kRegistryDir;
    ASSIGN_OR_RETURN(Entry e, Describe(inodes_.Synthetic(kind, entry.key), access));
    e.timeout = entry.ttl;  // a tag may move: the kernel asks again after its cache time
    // When users whose requests may not use the mounter's credentials can enter, every
    // walk through an image entry comes here, so that a dentry the mounter's lookup left
    // in the kernel's cache does not let them into a private image.
    if (entry.kind == RemoteEntry::Kind::kImage && options_.others_may_enter &&
        !options_.share_credentials) {
      e.timeout = 0;
    }
    return e;
  }
  if (dir->kind == VKind::kRegistryImage && name != "config.json") {
    // The first access to anything but the config pulls the image.
    ASSIGN_OR_RETURN(std::string id, Materialized(dir->key, access));
  }
  if (dir->kind == VKind::kImportDir) {
    if (!import_->Stat(name)) return Fail(Errno(ENOENT, name));
    return Describe(inodes_.Synthetic(VKind::kImportFile, name), access);
  }
  ASSIGN_OR_RETURN(auto children, SyntheticChildren(*dir, access));
  for (const auto& [child, ino] : children) {
    if (child == name) return Describe(ino, access);
  }
  return Fail(Errno(ENOENT, name));
}

// Another process (or this one) committed a change to the store. Attributes and listings
// of the store's directories go first, before the store is even read again, so that a
// listing right after the change is fresh; then each name whose entry changed.
void ImageFs::OnStoreChanged() {
  if (session_ == nullptr) return;
  auto inval_dir = [&](fuse_ino_t ino) { fuse_lowlevel_notify_inval_inode(session_, ino, 0, 0); };
  for (VKind kind : {VKind::kImagesDir, VKind::kLayersDir}) {
    if (auto ino = inodes_.FindSynthetic(kind, "")) inval_dir(*ino);
  }
  auto tag_dirs = inodes_.SyntheticOfKind(VKind::kTagsDir);
  for (const auto& [key, ino] : tag_dirs) inval_dir(ino);
  RefreshStore();
  StoreView now;
  for (const ImageInfo& image : store_.Images()) now.images.insert(image.id);
  for (const LayerInfo& layer : store_.Layers()) now.layers.insert(layer.chain_id.hex());
  now.tags = store_.Tags();
  std::lock_guard lock(seen_mu_);
  auto inval_entry = [&](VKind dir_kind, const std::string& dir_key, const std::string& name) {
    if (auto dir = inodes_.FindSynthetic(dir_kind, dir_key)) {
      fuse_lowlevel_notify_inval_entry(session_, *dir, name.c_str(), name.size());
    }
  };
  for (const std::string& id : seen_.images) {
    if (!now.images.count(id)) inval_entry(VKind::kImagesDir, "", id);
  }
  for (const std::string& chain : seen_.layers) {
    if (!now.layers.count(chain)) inval_entry(VKind::kLayersDir, "", chain);
  }
  // A tag added, moved or removed: each directory on its path under tags/ may have
  // gained or lost the name below it.
  // image.tar lists an image's tags: the archives of images whose tags changed go.
  std::set<std::string> retagged;
  auto tag_changed = [&](const std::string& canonical) {
    auto ref = ParseReference(canonical);
    if (!ref) return;
    std::string dir, name = ref->Name();
    for (size_t start = 0; start <= name.size();) {
      size_t slash = std::min(name.find('/', start), name.size());
      std::string component = name.substr(start, slash - start);
      inval_entry(VKind::kTagsDir, dir, component);
      dir = dir.empty() ? component : dir + "/" + component;
      start = slash + 1;
    }
    inval_entry(VKind::kTagsDir, dir, ref->tag);
  };
  for (const auto& [ref, id] : seen_.tags) {
    auto it = now.tags.find(ref);
    if (it == now.tags.end() || it->second != id) {
      tag_changed(ref);
      retagged.insert(id);
      if (it != now.tags.end()) retagged.insert(it->second);
    }
  }
  for (const auto& [ref, id] : now.tags) {
    if (!seen_.tags.count(ref)) {
      tag_changed(ref);
      retagged.insert(id);
    }
  }
  seen_ = std::move(now);
  for (const std::string& id : retagged) {
    {
      std::lock_guard archives(archives_mu_);
      archives_.erase(id);
    }
    if (auto ino = inodes_.FindSynthetic(VKind::kImageTar, id))
      fuse_lowlevel_notify_inval_inode(session_, *ino, 0, 0);
  }
}

Status ImageFs::WatchStore() {
  {
    std::lock_guard lock(seen_mu_);
    for (const ImageInfo& image : store_.Images()) seen_.images.insert(image.id);
    for (const LayerInfo& layer : store_.Layers()) seen_.layers.insert(layer.chain_id.hex());
    seen_.tags = store_.Tags();
  }
  auto watcher = std::make_unique<StoreWatcher>([this] { OnStoreChanged(); });
  RETURN_IF_ERROR(watcher->Start(store_));
  watcher_ = std::move(watcher);
  return {};
}

// The store's directories show loads of import/ only once they are done: where the
// writer's close() does not wait for its load (kernel-handled opens), a lookup does.
void ImageFs::WaitForImports(const VNode& dir, const char* name) {
  if (dir.kind == VKind::kImportDir) {
    name ? import_->WaitForLoad(name) : import_->WaitForLoads();
  } else if (dir.kind == VKind::kImagesDir || dir.kind == VKind::kLayersDir ||
             dir.kind == VKind::kTagsDir) {
    import_->WaitForLoads();
  }
}

// Status files (.imagefs/) change, and where the kernel handles opens it caches their
// pages like any file's: so each content they have had is its own node, a snapshot made
// when it is looked up or listed. A new open after a change finds a new node; an open
// file keeps reading the snapshot it opened.
std::map<std::string, std::string> ImageFs::StatusFiles() {
  auto files = remote_ ? remote_->StatusFiles() : std::map<std::string, std::string>();
  files["stats"] = stats_.Json();
  return files;
}

std::string ImageFs::StatusFileName(const std::string& key) { return key.substr(0, key.find('@')); }

// A file's snapshots take turns among kSnapshotSlots nodes, so that a pull watched for an
// hour does not grow the node table: a node given a new content has its cached pages
// and attributes dropped first.
fuse_ino_t ImageFs::SnapshotIno(const std::string& name, std::string content) {
  constexpr uint32_t kSnapshotSlots = 16;
  std::lock_guard lock(snapshots_mu_);
  uint32_t& slot = snapshot_slot_[name];
  fuse_ino_t ino = inodes_.Synthetic(VKind::kMetaFile, name + "@" + std::to_string(slot));
  if (auto it = snapshots_.find(ino); it != snapshots_.end() && it->second == content) return ino;
  slot = (slot + 1) % kSnapshotSlots;
  ino = inodes_.Synthetic(VKind::kMetaFile, name + "@" + std::to_string(slot));
  snapshots_[ino] = std::move(content);
  if (kernel_opens_ && session_ != nullptr) fuse_lowlevel_notify_inval_inode(session_, ino, 0, 0);
  return ino;
}

std::string ImageFs::StatusSnapshot(fuse_ino_t ino, const std::string& key) {
  {
    std::lock_guard lock(snapshots_mu_);
    if (auto it = snapshots_.find(ino); it != snapshots_.end()) return it->second;
  }
  // Not handed out yet in this run (a node id from another listing): what it says now.
  auto files = StatusFiles();
  return files[StatusFileName(key)];
}

// Another process's commit is read before the store's directories answer. When that
// fails (a lock or a file the store could not read), the last view read is served and the
// failure is counted and logged: a listing a moment old beats an error for every lookup.
void ImageFs::RefreshStore() {
  if (auto st = store_.Refresh(); !st) {
    stats_.Note("store_refresh_failed");
    Log()->warn("store: {}", st.error().msg);
  }
}

void ImageFs::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (InodeTable::SerialOf(parent) == 0) {
    if (auto dir = inodes_.GetSynthetic(parent)) WaitForImports(*dir, name);
    RefreshStore();
  }
  if (uint32_t serial = InodeTable::SerialOf(parent); serial != 0) {
    auto tree_node = TreeNode(parent);
    if (!tree_node) return ReplyError(req, tree_node.error(), "lookup");
    auto& [tree, node] = *tree_node;
    auto child = tree->Lookup(node, name);
    if (!child) {
      // A tree never changes: the kernel may remember that the name is not there (a
      // negative entry), so that asking again costs no round trip. Only for a name the
      // tree lacks: a tree that failed to load is an error, not an answer.
      fuse_entry_param negative{};
      negative.entry_timeout = options_.tree_timeout;
      return (void)fuse_reply_entry(req, &negative);
    }
    fuse_entry_param p{};
    p.ino = InodeTable::TreeIno(serial, *child);
    FillTreeAttr(*tree, serial, *child, &p.attr);
    p.attr_timeout = p.entry_timeout = options_.tree_timeout;
    return (void)fuse_reply_entry(req, &p);
  }
  auto e = ResolveChild(parent, name, Access(req));
  if (!e) return ReplyError(req, e.error(), "lookup");
  fuse_entry_param p{};
  p.ino = e->ino;
  p.attr = e->attr;
  p.attr_timeout = p.entry_timeout = e->timeout;
  fuse_reply_entry(req, &p);
}

void ImageFs::GetAttr(fuse_req_t req, fuse_ino_t ino) {
  const RemoteAccess access = Access(req);
  if (InodeTable::SerialOf(ino) == 0) RefreshStore();
  auto e = Describe(ino, access);
  if (!e) return ReplyError(req, e.error(), "getattr");
  fuse_reply_attr(req, &e->attr, e->timeout);
}

void ImageFs::SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                      fuse_file_info*) {
  auto v = inodes_.GetSynthetic(ino);
  if (!v || v->kind != VKind::kImportFile) return (void)fuse_reply_err(req, EROFS);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (auto st = import_->Truncate(v->key, attr->st_size); !st)
      return ReplyError(req, st.error(), "import");
  }
  GetAttr(req, ino);  // modes and times of an upload do not matter: accepted, ignored
}

void ImageFs::ReadLink(fuse_req_t req, fuse_ino_t ino) {
  const RemoteAccess access = Access(req);
  uint32_t serial = InodeTable::SerialOf(ino);
  if (serial != 0) {
    auto tree_node = TreeNode(ino);
    if (!tree_node) return ReplyError(req, tree_node.error(), "tree_build_failed");
    auto& [tree, node] = *tree_node;
    std::string target(tree->SymlinkTarget(node));
    if (target.empty()) return (void)fuse_reply_err(req, EINVAL);
    return (void)fuse_reply_readlink(req, target.c_str());
  }
  auto v = inodes_.GetSynthetic(ino);
  if (!v) return (void)fuse_reply_err(req, ESTALE);
  auto target = LinkTarget(*v, access);
  if (!target) return ReplyError(req, target.error(), "readlink_failed");
  fuse_reply_readlink(req, target->c_str());
}

Result<LayerInfo> ImageFs::LayerOf(const std::string& chain_hex) {
  ASSIGN_OR_RETURN(Digest chain, Digest::FromHex(chain_hex));
  return store_.GetLayer(chain);
}

Result<Digest> ImageFs::ChainAt(const std::string& image_id, uint32_t index) {
  ASSIGN_OR_RETURN(ImageInfo image, store_.GetImage(image_id));
  if (!image.top_layer) return Fail(Errno(ENOENT, "image " + image_id + " has no layers"));
  ASSIGN_OR_RETURN(auto chain, store_.LayerChain(*image.top_layer));
  if (index >= chain.size()) return Fail(Errno(ENOENT, "no layer " + std::to_string(index)));
  return chain[index].chain_id;
}

Result<std::string> ImageFs::LinkTarget(const VNode& v, RemoteAccess access) {
  switch (v.kind) {
    case VKind::kImportLink: return options_.import_link;
    case VKind::kImageLayerLink: {
      ASSIGN_OR_RETURN(Digest chain, ChainAt(v.key, v.index));
      return "../../../layers/" + chain.hex();
    }
    case VKind::kRegistryLayerLink: {
      ASSIGN_OR_RETURN(std::string id, Materialized(v.key, access));
      ASSIGN_OR_RETURN(Digest chain, ChainAt(id, v.index));
      return RegistryLayerTarget(v.key, chain.hex());
    }
    case VKind::kLayerParent: {
      ASSIGN_OR_RETURN(LayerInfo layer, LayerOf(v.key));
      if (!layer.parent) return Fail(Errno(ENOENT, "layer " + v.key + " has no parent"));
      return "../" + layer.parent->hex();
    }
    case VKind::kTagLink: {
      auto [canonical, id] = TagLinkKey(v.key);
      auto ref = ParseReference(canonical);
      if (!ref) return Fail(Errno(ENOENT, "tag gone"));
      return TagLinkTarget(*ref, id);
    }
    default: return Fail(Code::kInvalid, "not a symlink");
  }
}

void ImageFs::OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const RemoteAccess access = Access(req);
  // With no opendir/releasedir round trips the kernel caches every directory's entries
  // (FOPEN_CACHE_DIR) and drops the cache when the directory's mtime moves: tree
  // directories never change, and synthetic ones move their mtime with the store.
  if (no_opendir_) return (void)fuse_reply_err(req, ENOSYS);
  auto e = Describe(ino, access);
  if (!e) return ReplyError(req, e.error(), "opendir");
  if (!S_ISDIR(e->attr.st_mode)) return (void)fuse_reply_err(req, ENOTDIR);
  fi->cache_readdir = InodeTable::SerialOf(ino) != 0;
  fi->keep_cache = fi->cache_readdir;
  fuse_reply_open(req, fi);
}

void ImageFs::ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*,
                      bool plus) {
  const RemoteAccess access = Access(req);
  std::shared_ptr<const Tree> tree;
  uint32_t serial = InodeTable::SerialOf(ino), node = 0;
  std::vector<std::pair<std::string, fuse_ino_t>> entries;
  bool lazy_image = false;
  if (serial != 0) {
    auto t = TreeOf(serial);
    if (!t) return ReplyError(req, t.error(), "tree_build_failed");
    tree = *t;
    node = InodeTable::TreeNodeOf(ino);
    if (node >= tree->size()) return (void)fuse_reply_err(req, ESTALE);
    if (!tree->IsDir(node)) return (void)fuse_reply_err(req, ENOTDIR);
  } else {
    auto v = inodes_.GetSynthetic(ino);
    if (!v) return (void)fuse_reply_err(req, ESTALE);
    if (off == 0) {
      WaitForImports(*v, nullptr);
      RefreshStore();
    }
    auto children = SyntheticChildren(*v, access);
    if (!children) return ReplyError(req, children.error(), "readdir");
    entries = std::move(*children);
    lazy_image =
        v->kind == VKind::kRegistryImage && remote_ != nullptr && !remote_->IsMaterialized(v->key);
  }
  std::vector<char> buf(size);
  size_t used = 0;
  // Offsets: 1 and 2 are "." and ".."; entry i is at i + 3.
  size_t count = tree ? tree->Children(node).size() : entries.size();
  for (size_t pos = static_cast<size_t>(off); pos < count + 2; ++pos) {
    std::string name;
    fuse_entry_param e{};
    bool dot = pos < 2;
    if (dot) {
      name = pos == 0 ? "." : "..";
      e.attr.st_ino = pos == 0 ? ino : FUSE_ROOT_ID;
      e.attr.st_mode = S_IFDIR;
    } else if (tree) {
      uint32_t child = tree->Children(node)[pos - 2];
      if (child >= tree->size()) continue;  // a damaged tree file
      name = std::string(tree->Name(child));
      e.ino = InodeTable::TreeIno(serial, child);
      FillTreeAttr(*tree, serial, child, &e.attr);
      e.attr_timeout = e.entry_timeout = options_.tree_timeout;
    } else if (lazy_image && entries[pos - 2].first != "config.json") {
      // Not pulled yet: a listing must not pull, so no attributes (ino 0 in a plus reply
      // makes the kernel look the name up when it is used).
      name = entries[pos - 2].first;
      e.attr.st_ino = entries[pos - 2].second;
      e.attr.st_mode = name == "image.tar" ? S_IFREG : S_IFDIR;
    } else {
      name = entries[pos - 2].first;
      auto d = Describe(entries[pos - 2].second, access);
      if (!d) continue;  // gone meanwhile
      e.ino = d->ino;
      e.attr = d->attr;
      e.attr_timeout = e.entry_timeout = d->timeout;
    }
    size_t need;
    // A readdirplus reply is all in the plus format; "." and ".." carry ino 0, so the
    // kernel takes no reference on them.
    if (plus) {
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e,
                                    static_cast<off_t>(pos + 1));
    } else {
      if (!dot) e.attr.st_ino = e.attr.st_ino ? e.attr.st_ino : e.ino;
      need = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &e.attr,
                               static_cast<off_t>(pos + 1));
    }
    if (need > size - used) break;  // the entry did not fit: the kernel asks again from here
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void ImageFs::ReleaseDir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

// What reads of node `ino` come from. The same for an OPEN (daemon-handled opens keep it
// in a handle) and for a READ without one (kernel-handled opens: built per request, which
// costs a hash probe for tree files).
Result<ImageFs::Source> ImageFs::SourceOf(fuse_ino_t ino, RemoteAccess access) {
  uint32_t serial = InodeTable::SerialOf(ino);
  if (serial != 0) {
    ASSIGN_OR_RETURN(auto tree_node, TreeNode(ino));
    auto& [tree, node] = tree_node;
    TreeAttr attr = tree->Attr(node);
    if (!S_ISREG(attr.mode))
      return Fail(Errno(S_ISDIR(attr.mode) ? EISDIR : EACCES, tree->Path(node)));
    auto extent = tree->ContiguousData(node);
    if (extent && extent->fd < 0) {
      return Fail(Error{Code::kIo, EIO, "layer blob missing for " + tree->Path(node)});
    }
    return Source{Source::TreeFile{tree, node, extent, attr.size}};
  }
  auto v = inodes_.GetSynthetic(ino);
  if (!v) return Fail(Errno(ESTALE, "unknown node"));
  switch (v->kind) {
    case VKind::kImageConfig: {
      ASSIGN_OR_RETURN(std::string config, store_.ReadConfig(v->key));
      return Source{Source::Bytes{std::move(config)}};
    }
    case VKind::kMetaFile: return Source{Source::Bytes{StatusSnapshot(ino, v->key)}};
    case VKind::kRegistryConfig: {
      if (remote_ == nullptr) return Fail(Errno(ENOENT, v->key));
      ASSIGN_OR_RETURN(RemoteImage image, remote_->Image(v->key, access));
      return Source{Source::Bytes{std::move(image.config)}};
    }
    case VKind::kLayerTar: {
      ASSIGN_OR_RETURN(Digest chain, Digest::FromHex(v->key));
      ASSIGN_OR_RETURN(LayerInfo layer, store_.GetLayer(chain));
      ASSIGN_OR_RETURN(auto blob, store_.OpenBlob(layer.diff_id));
      return Source{Source::Blob{std::move(blob)}};
    }
    case VKind::kImageTar: {
      ASSIGN_OR_RETURN(auto archive, ArchiveOf(v->key));
      return Source{Source::Archive{std::move(archive)}};
    }
    case VKind::kImportFile: return Source{Source::Import{v->key}};
    default: return Fail(Errno(EISDIR, "not a file"));
  }
}

Status ImageFs::CheckBlob(const Source& source) const {
  // A blob deleted or truncated behind our back: EIO, not a short file.
  const auto* file = std::get_if<Source::TreeFile>(&source.v);
  struct stat st;
  if (file && file->extent &&
      (fstat(file->extent->fd, &st) != 0 ||
       static_cast<uint64_t>(st.st_size) < file->extent->offset + file->size)) {
    return Fail(Error{Code::kIo, EIO,
                      "layer blob is shorter than its index says (truncated?) for " +
                          file->tree->Path(file->node)});
  }
  return {};
}

void ImageFs::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  // Kernel-handled opens: the first ENOSYS tells the kernel to open and close files
  // itself from now on, with their page cache kept; reads then come without a handle.
  if (kernel_opens_) return (void)fuse_reply_err(req, ENOSYS);
  bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
  auto v = InodeTable::SerialOf(ino) == 0 ? inodes_.GetSynthetic(ino) : std::nullopt;
  if (writing && !(v && v->kind == VKind::kImportFile)) return (void)fuse_reply_err(req, EROFS);
  auto source = SourceOf(ino, Access(req));
  if (!source) return ReplyError(req, source.error(), "open");
  auto handle = std::make_unique<Handle>();
  if (auto* t = std::get_if<Source::TreeFile>(&source->v)) {
    if (auto st = CheckBlob(*source); !st) {
      return ReplyError(req, st.error(),
                        t->extent && t->extent->fd >= 0 ? "blob_truncated" : "blob_missing");
    }
    auto mode = t->extent ? passthrough_.Open(ino, *t->extent, t->size) : Passthrough::Mode::kServe;
    handle->counted_ino = mode == Passthrough::Mode::kServeCounted ? ino : 0;
    fi->keep_cache = mode != Passthrough::Mode::kPassthrough;
    fi->noflush = 1;
  } else if (auto* i = std::get_if<Source::Import>(&source->v)) {
    auto fd = import_->Open(i->name, fi->flags & (O_ACCMODE | O_TRUNC | O_APPEND), 0644);
    if (!fd) return ReplyError(req, fd.error(), "import");
    handle->upload = Handle::Upload{std::move(*fd), i->name};
    fi->direct_io = 1;
  } else {
    fi->keep_cache = 1;
  }
  handle->source = std::move(*source);
  fi->fh = AddHandle(std::move(handle));
  fuse_reply_open(req, fi);
}

void ImageFs::Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                     fuse_file_info* fi) {
  const RemoteAccess access = Access(req);
  auto dir = inodes_.GetSynthetic(parent);
  if (!dir || dir->kind != VKind::kImportDir) return (void)fuse_reply_err(req, EROFS);
  auto fd = import_->Open(name, O_CREAT | O_TRUNC | (fi->flags & O_ACCMODE), mode);
  if (!fd) return ReplyError(req, fd.error(), "import");
  auto e = Describe(inodes_.Synthetic(VKind::kImportFile, name), access);
  if (!e) return ReplyError(req, e.error(), "import");
  auto handle = std::make_unique<Handle>();
  handle->source = Source{Source::Import{name}};
  handle->upload = Handle::Upload{std::move(*fd), name};
  fi->fh = AddHandle(std::move(handle));
  fi->direct_io = 1;
  fuse_entry_param p{};
  p.ino = e->ino;
  p.attr = e->attr;
  fuse_reply_create(req, &p, fi);
}

uint64_t ImageFs::AddHandle(std::unique_ptr<Handle> handle) {
  std::lock_guard lock(handles_mu_);
  uint64_t fh = ++last_fh_;
  handles_.emplace(fh, std::move(handle));
  return fh;
}

std::shared_ptr<ImageFs::Handle> ImageFs::GetHandle(uint64_t fh) {
  std::lock_guard lock(handles_mu_);
  auto it = handles_.find(fh);
  return it == handles_.end() ? nullptr : it->second;
}

void ImageFs::Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  std::shared_ptr<Handle> handle;
  Source built;
  const Source* source = nullptr;
  if (fi->fh != 0) {
    handle = GetHandle(fi->fh);
    if (!handle) return (void)fuse_reply_err(req, EBADF);
    if (handle->upload) {
      std::vector<char> buf(size);
      ssize_t n = pread(handle->upload->fd.get(), buf.data(), size, off);
      if (n < 0) return (void)fuse_reply_err(req, errno);
      return (void)fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
    }
    source = &handle->source;
  } else {
    auto s = SourceOf(ino, Access(req));
    if (!s) return ReplyError(req, s.error(), "read");
    built = std::move(*s);
    source = &built;
    if (auto st = CheckBlob(built); !st) return ReplyError(req, st.error(), "blob_truncated");
  }
  auto reply_fd = [&](int fd, uint64_t base, uint64_t file_size) {
    if (static_cast<uint64_t>(off) >= file_size) return (void)fuse_reply_buf(req, nullptr, 0);
    size_t n = static_cast<size_t>(std::min<uint64_t>(size, file_size - off));
    fuse_bufvec buf = FUSE_BUFVEC_INIT(n);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = fd;
    buf.buf[0].pos = static_cast<off_t>(base + off);
    fuse_reply_data(req, &buf, static_cast<fuse_buf_copy_flags>(0));
  };
  auto reply_read = [&](auto&& read_fn, const char* tag) {
    std::vector<char> buf(size);
    auto n = read_fn(static_cast<uint64_t>(off), size, buf.data());
    if (!n) return ReplyError(req, n.error(), tag);
    fuse_reply_buf(req, buf.data(), *n);
  };
  if (auto* t = std::get_if<Source::TreeFile>(&source->v)) {
    if (t->extent) return reply_fd(t->extent->fd, t->extent->offset, t->size);
    return reply_read(
        [&](uint64_t o, size_t l, char* b) { return t->tree->Read(t->node, o, l, b); },
        "blob_read_failed");
  }
  if (auto* b = std::get_if<Source::Bytes>(&source->v)) {
    if (static_cast<uint64_t>(off) >= b->data.size()) return (void)fuse_reply_buf(req, nullptr, 0);
    return (void)fuse_reply_buf(req, b->data.data() + off, std::min(size, b->data.size() - off));
  }
  if (auto* l = std::get_if<Source::Blob>(&source->v))
    return reply_fd(l->blob->fd.get(), 0, l->blob->index->tar_size());
  if (auto* a = std::get_if<Source::Archive>(&source->v)) {
    return reply_read(
        [&](uint64_t o, size_t len, char* buf) { return a->archive->Read(o, len, buf); },
        "archive_read_failed");
  }
  if (auto* i = std::get_if<Source::Import>(&source->v)) {
    // An upload read back without a handle (kernel-handled opens).
    auto fd = import_->Open(i->name, O_RDONLY, 0);
    if (!fd) return ReplyError(req, fd.error(), "import");
    std::vector<char> buf(size);
    ssize_t n = pread(fd->get(), buf.data(), size, off);
    if (n < 0) return (void)fuse_reply_err(req, errno);
    return (void)fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
  }
  fuse_reply_err(req, EBADF);
}

void ImageFs::Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                    fuse_file_info* fi) {
  auto h = fi->fh != 0 ? GetHandle(fi->fh) : nullptr;
  if (!h || !h->upload) {
    auto v = InodeTable::SerialOf(ino) == 0 ? inodes_.GetSynthetic(ino) : std::nullopt;
    if (!v || v->kind != VKind::kImportFile) return (void)fuse_reply_err(req, EROFS);
    // Kernel-handled opens: an upload opened again without O_CREAT, while its first
    // writer is still at it. Only the file's creator may write it.
    Log()->warn("import/{}: refusing a second writer while it is being uploaded", v->key);
    return (void)fuse_reply_err(req, EBUSY);
  }
  ssize_t n = pwrite(h->upload->fd.get(), buf, size, off);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  h->upload->written = true;
  fuse_reply_write(req, static_cast<size_t>(n));
}

void ImageFs::FinishUpload(fuse_req_t req, Handle& handle) {
  auto& upload = *handle.upload;
  if (!upload.written || upload.finished) return (void)fuse_reply_err(req, 0);
  upload.finished = true;
  upload.fd.Reset();
  if (auto st = import_->Finish(upload.name); !st)
    return ReplyError(req, st.error(), "import_failed");
  fuse_reply_err(req, 0);
}

void ImageFs::Flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // Kernel-handled opens: no FLUSH round trip on any close (the kernel remembers the
  // ENOSYS for the whole mount); uploads then load at RELEASE.
  if (kernel_opens_) return (void)fuse_reply_err(req, ENOSYS);
  auto h = GetHandle(fi->fh);
  // The writer's close(): load now, so that close() reports whether the image loaded.
  if (h && h->upload) return FinishUpload(req, *h);
  fuse_reply_err(req, 0);
}

void ImageFs::Release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // A request still running on the handle when the RELEASE arrives (ASan saw a READ of
  // .imagefs/stats do so) keeps it alive until it is done.
  std::shared_ptr<Handle> handle;
  {
    std::lock_guard lock(handles_mu_);
    auto it = handles_.find(fi->fh);
    if (it == handles_.end()) return (void)fuse_reply_err(req, 0);
    handle = std::move(it->second);
    handles_.erase(it);
  }
  if (handle->counted_ino != 0) {
    const auto& t = std::get<Source::TreeFile>(handle->source.v);
    passthrough_.CachedRelease(handle->counted_ino, *t.extent, t.size);
  }
  // Kernel-handled opens: the close() did not wait; this loads it (lookups of import/
  // and of the store's directories wait for it).
  if (handle->upload) return FinishUpload(req, *handle);
  fuse_reply_err(req, 0);
}

void ImageFs::Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto dir = inodes_.GetSynthetic(parent);
  if (!dir || dir->kind != VKind::kImportDir) return (void)fuse_reply_err(req, EROFS);
  if (auto st = import_->Unlink(name); !st) return ReplyError(req, st.error(), "import");
  fuse_reply_err(req, 0);
}

void ImageFs::StatFs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st;
  if (statvfs(store_.root().c_str(), &st) != 0) return (void)fuse_reply_err(req, errno);
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

void ImageFs::GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  uint32_t serial = InodeTable::SerialOf(ino);
  if (serial == 0) return (void)fuse_reply_err(req, ENODATA);
  auto tree_node = TreeNode(ino);
  if (!tree_node) return ReplyError(req, tree_node.error(), "tree_build_failed");
  auto& [tree, node] = *tree_node;
  for (const auto& [key, value] : tree->Xattrs(node)) {
    if (key != name) continue;
    if (size == 0) return (void)fuse_reply_xattr(req, value.size());
    if (size < value.size()) return (void)fuse_reply_err(req, ERANGE);
    return (void)fuse_reply_buf(req, value.data(), value.size());
  }
  fuse_reply_err(req, ENODATA);
}

void ImageFs::ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::string names;
  uint32_t serial = InodeTable::SerialOf(ino);
  if (serial != 0) {
    auto tree_node = TreeNode(ino);
    if (!tree_node) return ReplyError(req, tree_node.error(), "tree_build_failed");
    auto& [tree, node] = *tree_node;
    for (const auto& [key, value] : tree->Xattrs(node)) {
      names.append(key);
      names.push_back('\0');
    }
  }
  if (size == 0) return (void)fuse_reply_xattr(req, names.size());
  if (size < names.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, names.data(), names.size());
}

}  // namespace imagefs

// registry/: images of registries, resolved on lookup (registry/<host>/<repo>/<tag or
// digest>/) and pulled on first use of anything but their config, except a rootfs served
// before the pull, file by file (RemoteImages::LazyRootfs: eStargz images), or while it
// streams (RemoteImages::StreamedRootfs: registry_stream.cc). Directory keys
// are the path below registry/; an image's key names the digest its tag resolved to.
#include "fusefs/nodes/common_kinds.h"
#include "fusefs/nodes/kinds.h"

namespace imagefs::kinds {
namespace {

Result<RemoteImages*> Remote(MountNodes& m, const std::string& what) {
  if (m.remote() == nullptr) return Fail(Errno(ENOENT, what));
  return m.remote();
}

class RegistryDirKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    NodeEntry e = m.Base(ino);
    // registry/ lists the hosts looked up so far: its mtime moves as the list grows, so
    // the kernel drops its cached listing.
    if (v.key.empty() && m.remote() != nullptr)
      e.attr.st_mtim.tv_nsec = static_cast<long>(m.remote()->Hosts().size());
    e.timeout = 0;
    return e;
  }

  Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                           RemoteAccess access) const override {
    ASSIGN_OR_RETURN(RemoteImages * remote, Remote(m, name));
    ASSIGN_OR_RETURN(RemoteEntry entry, remote->Lookup(dir.key, name, access));
    bool image = entry.kind == RemoteEntry::Kind::kImage;
    VKind kind = image ? VKind::kRegistryImage : VKind::kRegistryDir;
    ASSIGN_OR_RETURN(NodeEntry e, m.Describe(m.inodes().Synthetic(kind, entry.key), access));
    e.timeout = entry.ttl;  // a tag may move: the kernel asks again after its cache time
    // When users whose requests may not use the mounter's credentials can enter, every
    // walk through an image entry comes here, so that a dentry the mounter's lookup left
    // in the kernel's cache does not let them into a private image.
    if (image && m.options().others_may_enter && !m.options().share_credentials) e.timeout = 0;
    return e;
  }

  // Below a host, names resolve on lookup only: registries cannot list them all.
  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir, RemoteAccess) const override {
    std::vector<DirEntry> out;
    if (dir.key.empty() && m.remote() != nullptr) {
      for (const std::string& host : m.remote()->Hosts())
        out.push_back({host, m.inodes().Synthetic(VKind::kRegistryDir, host)});
    }
    return out;
  }
};

constexpr const char* kImageChildren[] = {"config.json", "image.tar", "layers", "rootfs"};

// The key names a digest: immutable.
class RegistryImageKind : public FixedDirKind {
 public:
  // The first access to anything but the config pulls the image, unless its rootfs can be
  // served before (any failure there falls back to the pull, which verifies everything).
  Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                           RemoteAccess access) const override {
    if (name == "rootfs" && m.remote() != nullptr && !m.remote()->IsMaterialized(dir.key)) {
      if (auto lazy = m.remote()->LazyRootfs(dir.key, access)) {
        ASSIGN_OR_RETURN(RemoteImage image, m.remote()->Image(dir.key, access));
        return m.Describe(m.TreeRoot(TreeKind::kRemote, image.top_layer, "registry:" + dir.key),
                          access);
      }
      if (auto streamed = m.remote()->StreamedRootfs(dir.key, access)) {
        m.WatchStream(dir.key, *streamed);
        return m.Describe(m.inodes().Synthetic(VKind::kRegistryStreamNode, dir.key + "\n"), access);
      }
    }
    if (name != "config.json") RETURN_IF_ERROR(m.Materialized(dir.key, access));
    ASSIGN_OR_RETURN(auto ino, Child(m, dir.key, name, access));
    if (!ino) return Fail(Errno(ENOENT, name));
    return m.Describe(*ino, access);
  }

  // A listing must not pull: until the image is pulled, its entries but the config carry
  // no attributes (the kernel looks them up when used).
  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir,
                                     RemoteAccess access) const override {
    std::vector<DirEntry> out;
    for (const char* name : kImageChildren) {
      ASSIGN_OR_RETURN(auto ino, Child(m, dir.key, name, access));
      out.push_back({name, *ino});
    }
    if (!m.remote()->IsMaterialized(dir.key)) {
      for (DirEntry& entry : out) {
        if (entry.name != "config.json")
          entry.type_only = entry.name == "image.tar" ? S_IFREG : S_IFDIR;
      }
    }
    return out;
  }

 private:
  static Result<std::optional<fuse_ino_t>> Child(MountNodes& m, const std::string& key,
                                                 const std::string& name, RemoteAccess access) {
    ASSIGN_OR_RETURN(RemoteImages * remote, Remote(m, key));
    ASSIGN_OR_RETURN(RemoteImage image, remote->Image(key, access));
    InodeTable& inodes = m.inodes();
    if (name == "config.json") return inodes.Synthetic(VKind::kRegistryConfig, key);
    if (name == "image.tar") return inodes.Synthetic(VKind::kImageTar, image.image_id);
    if (name == "layers") return inodes.Synthetic(VKind::kRegistryLayersDir, key);
    if (name != "rootfs") return std::optional<fuse_ino_t>();
    std::optional<Digest> top = image.top_layer;
    if (!top) {  // schema1: the chain is known only once pulled
      ASSIGN_OR_RETURN(std::string id, m.Materialized(key, access));
      ASSIGN_OR_RETURN(ImageInfo info, m.store().GetImage(id));
      top = info.top_layer;
    }
    return m.TreeRoot(TreeCache::Kind::kMerged, top, "registry:" + key);
  }
};

class RegistryConfigKind : public NodeKind {
 public:
  // Resolving the image fetched the config already: this reads what RemoteImages keeps.
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess access) const override {
    ASSIGN_OR_RETURN(RemoteImages * remote, Remote(m, v.key));
    ASSIGN_OR_RETURN(RemoteImage image, remote->Image(v.key, access));
    NodeEntry e = m.FileEntry(ino, image.config.size());
    return e;
  }
  Result<NodeSource> Open(MountNodes& m, fuse_ino_t, const VNode& v,
                          RemoteAccess access) const override {
    ASSIGN_OR_RETURN(RemoteImages * remote, Remote(m, v.key));
    ASSIGN_OR_RETURN(RemoteImage image, remote->Image(v.key, access));
    return NodeSource{NodeSource::Bytes{std::move(image.config)}};
  }
};

// registry/<path>/layers/N -> ../…/layers/<chain>, up to the mount's root.
std::string LayerLinkTarget(const std::string& key, const std::string& chain_hex) {
  std::string path = key.substr(0, key.find('@'));
  size_t components = 1 + std::count(path.begin(), path.end(), '/');
  std::string up;
  for (size_t i = 0; i < components + 2; ++i) up += "../";
  return up + "layers/" + chain_hex;
}

// Reached only through a lookup of the image's "layers", which pulled it.
class RegistryLayersDirKind : public FixedDirKind {
 public:
  Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                           RemoteAccess access) const override {
    ASSIGN_OR_RETURN(std::string id, m.Materialized(dir.key, access));
    ASSIGN_OR_RETURN(size_t count, m.ChainLength(id));
    return m.LookupLayerLink(VKind::kRegistryLayerLink, dir.key, name, count, access);
  }
  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir,
                                     RemoteAccess access) const override {
    ASSIGN_OR_RETURN(std::string id, m.Materialized(dir.key, access));
    ASSIGN_OR_RETURN(size_t count, m.ChainLength(id));
    return m.LayerLinks(VKind::kRegistryLayerLink, dir.key, count);
  }
};

class RegistryLayerLinkKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    NodeEntry e = m.LinkEntry(ino, LayerLinkTarget(v.key, std::string(64, 'x')).size());
    return e;
  }
  Result<std::string> ReadLink(MountNodes& m, const VNode& v, RemoteAccess access) const override {
    ASSIGN_OR_RETURN(std::string id, m.Materialized(v.key, access));
    ASSIGN_OR_RETURN(Digest chain, m.ChainAt(id, v.index));
    return LayerLinkTarget(v.key, chain.hex());
  }
};

}  // namespace

const NodeKind& RegistryDir() { return The<RegistryDirKind>(); }
const NodeKind& RegistryImage() { return The<RegistryImageKind>(); }
const NodeKind& RegistryConfig() { return The<RegistryConfigKind>(); }
const NodeKind& RegistryLayersDir() { return The<RegistryLayersDirKind>(); }
const NodeKind& RegistryLayerLink() { return The<RegistryLayerLinkKind>(); }

}  // namespace imagefs::kinds

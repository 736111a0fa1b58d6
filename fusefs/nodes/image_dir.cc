// images/<id>/: config.json, image.tar (a docker-save tarball made on read), layers/ (one
// link per layer, base first) and rootfs/ (the merged tree). An image's own content never
// changes, but the image may go: entries are trusted as long as the store's.
#include "fusefs/nodes/kinds.h"
#include "fusefs/nodes/mount_nodes.h"

namespace imagefs::kinds {
namespace {

constexpr const char* kImageChildren[] = {"config.json", "image.tar", "layers", "rootfs"};

// A directory of an image: lasts as long as the image.
class ImagePartKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    return m.WhileStored(ino, m.store().GetImage(v.key));
  }
};

class ImageDirKind : public ImagePartKind {
 public:
  Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                           RemoteAccess access) const override {
    ASSIGN_OR_RETURN(fuse_ino_t ino, Child(m, dir.key, name));
    return m.Describe(ino, access);
  }

  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir, RemoteAccess) const override {
    std::vector<DirEntry> out;
    for (const char* name : kImageChildren) {
      ASSIGN_OR_RETURN(fuse_ino_t ino, Child(m, dir.key, name));
      out.push_back({name, ino});
    }
    return out;
  }

 private:
  static Result<fuse_ino_t> Child(MountNodes& m, const std::string& id, const std::string& name) {
    ASSIGN_OR_RETURN(ImageInfo image, m.store().GetImage(id));
    if (name == "config.json") return m.inodes().Synthetic(VKind::kImageConfig, id);
    if (name == "image.tar") return m.inodes().Synthetic(VKind::kImageTar, id);
    if (name == "layers") return m.inodes().Synthetic(VKind::kImageLayersDir, id);
    if (name == "rootfs")
      return m.TreeRoot(TreeCache::Kind::kMerged, image.top_layer, "image:" + id);
    return Fail(Errno(ENOENT, name));
  }
};

class ImageConfigKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    ASSIGN_OR_RETURN(std::string config, m.store().ReadConfig(v.key));
    NodeEntry e = m.FileEntry(ino, config.size());  // never changes: cached as long as trees
    return e;
  }
  Result<NodeSource> Open(MountNodes& m, fuse_ino_t, const VNode& v, RemoteAccess) const override {
    ASSIGN_OR_RETURN(std::string config, m.store().ReadConfig(v.key));
    return NodeSource{NodeSource::Bytes{std::move(config)}};
  }
};

class ImageLayersDirKind : public ImagePartKind {
 public:
  Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                           RemoteAccess access) const override {
    ASSIGN_OR_RETURN(size_t count, m.ChainLength(dir.key));
    return m.LookupLayerLink(VKind::kImageLayerLink, dir.key, name, count, access);
  }
  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir, RemoteAccess) const override {
    ASSIGN_OR_RETURN(size_t count, m.ChainLength(dir.key));
    return m.LayerLinks(VKind::kImageLayerLink, dir.key, count);
  }
};

class ImageLayerLinkKind : public NodeKind {
 public:
  // Link targets end in a 64-hex ID, so their length is known without resolving them.
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    ASSIGN_OR_RETURN(NodeEntry e, m.WhileStored(ino, m.store().GetImage(v.key)));
    MountNodes::AsLink(e, Target(std::string(64, 'x')).size());
    return e;
  }
  Result<std::string> ReadLink(MountNodes& m, const VNode& v, RemoteAccess) const override {
    ASSIGN_OR_RETURN(Digest chain, m.ChainAt(v.key, v.index));
    return Target(chain.hex());
  }

 private:
  static std::string Target(const std::string& chain_hex) { return "../../../layers/" + chain_hex; }
};

// Shared by images/<id>/ and registry/…/<tag>/ (once pulled): keyed by image ID.
class ImageTarKind : public NodeKind {
 public:
  // Measured from the store's records: a stat builds nothing; the open does.
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    ASSIGN_OR_RETURN(uint64_t size, m.ArchiveSize(v.key));
    NodeEntry e = m.FileEntry(ino, size);
    e.timeout = m.StoreTimeout();  // it lists the image's tags, which may change
    return e;
  }
  Result<NodeSource> Open(MountNodes& m, fuse_ino_t, const VNode& v, RemoteAccess) const override {
    ASSIGN_OR_RETURN(auto archive, m.ArchiveOf(v.key));
    return NodeSource{NodeSource::Archive{std::move(archive)}};
  }
};

}  // namespace

const NodeKind& ImageDir() { return The<ImageDirKind>(); }
const NodeKind& ImageConfig() { return The<ImageConfigKind>(); }
const NodeKind& ImageLayersDir() { return The<ImageLayersDirKind>(); }
const NodeKind& ImageLayerLink() { return The<ImageLayerLinkKind>(); }
const NodeKind& ImageTar() { return The<ImageTarKind>(); }

}  // namespace imagefs::kinds

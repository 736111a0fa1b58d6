// layers/<chain>/: diff/ (the layer's own tree), layer.tar (byte-identical to what was
// loaded or pulled), parent (a link to the layer below, if any) and rootfs/ (the merged
// tree up to this layer).
#include "fusefs/nodes/kinds.h"
#include "fusefs/nodes/mount_nodes.h"

namespace imagefs::kinds {
namespace {

// The child `name` of a layer's directory; "parent" only where there is one.
std::optional<fuse_ino_t> Child(MountNodes& m, const LayerInfo& layer, const std::string& name) {
  std::string hex = layer.chain_id.hex();
  if (name == "diff") return m.TreeRoot(TreeCache::Kind::kDiff, layer.chain_id, "layer:" + hex);
  if (name == "layer.tar") return m.inodes().Synthetic(VKind::kLayerTar, hex);
  if (name == "parent" && layer.parent) return m.inodes().Synthetic(VKind::kLayerParent, hex);
  if (name == "rootfs") return m.TreeRoot(TreeCache::Kind::kMerged, layer.chain_id, "layer:" + hex);
  return std::nullopt;
}

class LayerDirKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    return m.WhileStored(ino, m.LayerOf(v.key));
  }

  Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                           RemoteAccess access) const override {
    ASSIGN_OR_RETURN(LayerInfo layer, m.LayerOf(dir.key));
    auto ino = Child(m, layer, name);
    if (!ino) return Fail(Errno(ENOENT, name));
    return m.Describe(*ino, access);
  }

  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir, RemoteAccess) const override {
    ASSIGN_OR_RETURN(LayerInfo layer, m.LayerOf(dir.key));
    std::vector<DirEntry> out;
    for (const char* name : {"diff", "layer.tar", "parent", "rootfs"}) {
      if (auto ino = Child(m, layer, name)) out.push_back({name, *ino});
    }
    return out;
  }
};

class LayerTarKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    ASSIGN_OR_RETURN(LayerInfo layer, m.LayerOf(v.key));
    NodeEntry e = m.FileEntry(ino, layer.tar_size);
    return e;
  }
  Result<NodeSource> Open(MountNodes& m, fuse_ino_t, const VNode& v, RemoteAccess) const override {
    ASSIGN_OR_RETURN(LayerInfo layer, m.LayerOf(v.key));
    ASSIGN_OR_RETURN(auto blob, m.store().OpenBlob(layer.diff_id));
    return NodeSource{NodeSource::Blob{std::move(blob)}};
  }
};

class LayerParentKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    ASSIGN_OR_RETURN(NodeEntry e, m.WhileStored(ino, m.LayerOf(v.key)));
    MountNodes::AsLink(e, std::string("../").size() + 64);  // ends in a 64-hex ID
    return e;
  }
  Result<std::string> ReadLink(MountNodes& m, const VNode& v, RemoteAccess) const override {
    ASSIGN_OR_RETURN(LayerInfo layer, m.LayerOf(v.key));
    if (!layer.parent) return Fail(Errno(ENOENT, "layer " + v.key + " has no parent"));
    return "../" + layer.parent->hex();
  }
};

}  // namespace

const NodeKind& LayerDir() { return The<LayerDirKind>(); }
const NodeKind& LayerTar() { return The<LayerTarKind>(); }
const NodeKind& LayerParent() { return The<LayerParentKind>(); }

}  // namespace imagefs::kinds

// layers/: one directory per layer, named by its ChainID; a unique prefix resolves too.
#include "fusefs/nodes/common_kinds.h"
#include "fusefs/nodes/kinds.h"

namespace imagefs::kinds {
namespace {

class LayersDirKind : public StoreDirKind {
 public:
  Result<NodeEntry> Lookup(MountNodes& m, const VNode&, const std::string& name,
                           RemoteAccess access) const override {
    auto chain = m.store().ResolveLayerId(name);
    if (!chain) return Fail(Errno(ENOENT, name));
    ASSIGN_OR_RETURN(NodeEntry e,
                     m.Describe(m.inodes().Synthetic(VKind::kLayerDir, chain->hex()), access));
    if (chain->hex() != name) e.timeout = std::min(e.timeout, m.options().store_timeout);
    return e;
  }

  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode&, RemoteAccess) const override {
    std::vector<DirEntry> out;
    for (const LayerInfo& layer : m.store().Layers()) {
      std::string hex = layer.chain_id.hex();
      out.push_back({hex, m.inodes().Synthetic(VKind::kLayerDir, hex)});
    }
    return out;
  }
};

}  // namespace

const NodeKind& LayersDir() { return The<LayersDirKind>(); }

}  // namespace imagefs::kinds

// images/: one directory per image, named by its ID; a unique ID prefix resolves too,
// without being listed.
#include "fusefs/nodes/common_kinds.h"
#include "fusefs/nodes/kinds.h"

namespace imagefs::kinds {
namespace {

class ImagesDirKind : public StoreDirKind {
 public:
  Result<NodeEntry> Lookup(MountNodes& m, const VNode&, const std::string& name,
                           RemoteAccess access) const override {
    auto id = m.store().ResolveImageId(name);
    if (!id) return Fail(Errno(ENOENT, name));
    ASSIGN_OR_RETURN(NodeEntry e, m.Describe(m.inodes().Synthetic(VKind::kImageDir, *id), access));
    // A prefix may become ambiguous as the store grows: its entry is trusted only briefly.
    if (*id != name) e.timeout = std::min(e.timeout, m.options().store_timeout);
    return e;
  }

  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode&, RemoteAccess) const override {
    std::vector<DirEntry> out;
    for (const ImageInfo& image : m.store().Images())
      out.push_back({image.id, m.inodes().Synthetic(VKind::kImageDir, image.id)});
    return out;
  }
};

}  // namespace

const NodeKind& ImagesDir() { return The<ImagesDirKind>(); }

}  // namespace imagefs::kinds

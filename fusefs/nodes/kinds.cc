// The table of node kinds: adding a mount directory adds its line here.
#include "fusefs/nodes/kinds.h"

#include <array>
#include <utility>

#include "fusefs/nodes/mount_nodes.h"

namespace imagefs {

Result<NodeEntry> NodeKind::Lookup(MountNodes&, const VNode&, const std::string&,
                                   RemoteAccess) const {
  return Fail(Errno(ENOTDIR, "not a directory"));
}

Result<std::vector<DirEntry>> NodeKind::List(MountNodes&, const VNode&, RemoteAccess) const {
  return Fail(Errno(ENOTDIR, "not a directory"));
}

Result<std::string> NodeKind::ReadLink(MountNodes&, const VNode&, RemoteAccess) const {
  return Fail(Code::kInvalid, "not a symlink");
}

Result<NodeSource> NodeKind::Open(MountNodes&, fuse_ino_t, const VNode&, RemoteAccess) const {
  return Fail(Errno(EISDIR, "not a file"));
}

Result<std::vector<std::pair<std::string, std::string>>> NodeKind::Xattrs(MountNodes&, const VNode&,
                                                                          RemoteAccess) const {
  return std::vector<std::pair<std::string, std::string>>{};
}

namespace {

using KindFn = const NodeKind& (*)();
constexpr std::pair<VKind, KindFn> kKinds[] = {
    {VKind::kRoot, kinds::Root},
    {VKind::kImagesDir, kinds::ImagesDir},
    {VKind::kImageDir, kinds::ImageDir},
    {VKind::kImageConfig, kinds::ImageConfig},
    {VKind::kImageLayersDir, kinds::ImageLayersDir},
    {VKind::kImageLayerLink, kinds::ImageLayerLink},
    {VKind::kImageTar, kinds::ImageTar},
    {VKind::kLayersDir, kinds::LayersDir},
    {VKind::kLayerDir, kinds::LayerDir},
    {VKind::kLayerTar, kinds::LayerTar},
    {VKind::kLayerParent, kinds::LayerParent},
    {VKind::kTagsDir, kinds::TagsDir},
    {VKind::kTagLink, kinds::TagLink},
    {VKind::kImportDir, kinds::ImportDir},
    {VKind::kImportFile, kinds::ImportFile},
    {VKind::kImportLink, kinds::ImportLink},
    {VKind::kMetaDir, kinds::MetaDir},
    {VKind::kMetaFile, kinds::MetaFile},
    {VKind::kRegistryDir, kinds::RegistryDir},
    {VKind::kRegistryImage, kinds::RegistryImage},
    {VKind::kRegistryConfig, kinds::RegistryConfig},
    {VKind::kRegistryLayersDir, kinds::RegistryLayersDir},
    {VKind::kRegistryLayerLink, kinds::RegistryLayerLink},
    {VKind::kRegistryStreamNode, kinds::RegistryStreamNode},
};

}  // namespace

const NodeKind* KindOf(VKind kind) {
  static const auto table = [] {
    std::array<const NodeKind*, 256> t{};
    for (const auto& [k, fn] : kKinds) t[static_cast<uint8_t>(k)] = &fn();
    return t;
  }();
  return table[static_cast<uint8_t>(kind)];
}

}  // namespace imagefs

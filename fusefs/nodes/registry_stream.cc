// registry/…/<tag>/rootfs of an image served while its plain layers download
// (RemoteImages::StreamedRootfs, stream_unverified): every node is a path of the image, its
// key the image's key + "\n" + the path ("" is the root). Each answer waits until the
// layers decide it (graph/streaming_rootfs.h); decided answers never change, so the
// kernel keeps them as long as a tree's. Non-directories are named by their inode's first
// path, so hardlinks share an inode number.
#include "fusefs/nodes/kinds.h"
#include "fusefs/nodes/mount_nodes.h"
#include "graph/streaming_rootfs.h"

namespace imagefs::kinds {
namespace {

struct StreamPath {
  std::string image_key;
  std::string path;
};

StreamPath Split(const std::string& key) {
  size_t nl = key.find('\n');
  if (nl == std::string::npos) return {key, ""};
  return {key.substr(0, nl), key.substr(nl + 1)};
}

// What the rootfs lookup started (registry_dir.cc): a node's operations never start one.
Result<std::shared_ptr<StreamingRootfs>> RootfsOf(MountNodes& m, const std::string& image_key) {
  if (m.remote() == nullptr) return Fail(Errno(ESTALE, image_key + ": no registry"));
  auto rootfs = m.remote()->ServedStream(image_key);
  if (!rootfs) return Fail(Errno(ESTALE, rootfs.error().msg));
  return rootfs;
}

Result<StreamingRootfs::Node> Find(MountNodes& m, const VNode& v, RemoteAccess access,
                                   bool complete = false) {
  StreamPath p = Split(v.key);
  (void)access;  // checked by the image's lookup, as for every tree below it
  ASSIGN_OR_RETURN(std::shared_ptr<StreamingRootfs> rootfs, RootfsOf(m, p.image_key));
  auto node = complete ? rootfs->FindWhenComplete(p.path) : rootfs->Find(p.path);
  if (!node && node.error().code == Code::kNotFound) return Fail(Errno(ENOENT, node.error().msg));
  return node;
}

// The id of a node: a directory's path, or the first path of a file's inode.
fuse_ino_t NodeIno(MountNodes& m, const std::string& image_key, const StreamingRootfs::Node& n,
                   const std::string& path) {
  const Tree& tree = *n.tree;
  std::string name = tree.IsDir(n.id) ? path : tree.Path(tree.Attr(n.id).inode);
  return m.inodes().Synthetic(VKind::kRegistryStreamNode, image_key + "\n" + name);
}

NodeEntry EntryOf(MountNodes& m, fuse_ino_t ino, const StreamingRootfs::Node& n) {
  NodeEntry e;
  e.ino = ino;
  m.FillTreeAttr(*n.tree, 0, n.id, &e.attr);
  e.attr.st_ino = ino;
  e.timeout = n.settled ? m.options().tree_timeout : 0;
  return e;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

class RegistryStreamNodeKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess access) const override {
    ASSIGN_OR_RETURN(StreamingRootfs::Node n, Find(m, v, access));
    return EntryOf(m, ino, n);
  }

  Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                           RemoteAccess access) const override {
    StreamPath p = Split(dir.key);
    std::string path = Join(p.path, name);
    ASSIGN_OR_RETURN(StreamingRootfs::Node n,
                     Find(m, VNode{VKind::kRegistryStreamNode, p.image_key + "\n" + path}, access));
    return EntryOf(m, NodeIno(m, p.image_key, n, path), n);
  }

  // A listing can change until every layer is indexed: it waits for that.
  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir,
                                     RemoteAccess access) const override {
    ASSIGN_OR_RETURN(StreamingRootfs::Node n, Find(m, dir, access, /*complete=*/true));
    const Tree& tree = *n.tree;
    if (!tree.IsDir(n.id)) return Fail(Errno(ENOTDIR, "not a directory"));
    StreamPath p = Split(dir.key);
    std::vector<DirEntry> out;
    for (uint32_t child : tree.Children(n.id)) {
      if (child >= tree.size()) continue;
      std::string path = Join(p.path, std::string(tree.Name(child)));
      out.emplace_back(std::string(tree.Name(child)),
                       NodeIno(m, p.image_key, {n.tree, child}, path));
    }
    return out;
  }

  Result<std::string> ReadLink(MountNodes& m, const VNode& link,
                               RemoteAccess access) const override {
    ASSIGN_OR_RETURN(StreamingRootfs::Node n, Find(m, link, access));
    if (!S_ISLNK(n.tree->Attr(n.id).mode)) return Fail(Code::kInvalid, "not a symlink");
    return std::string(n.tree->SymlinkTarget(n.id));
  }

  // Reads of a layer still arriving wait for their bytes (no extent: nothing reads its file
  // unwritten); a stored layer's are spliced from its blob.
  Result<NodeSource> Open(MountNodes& m, fuse_ino_t, const VNode& file,
                          RemoteAccess access) const override {
    ASSIGN_OR_RETURN(StreamingRootfs::Node n, Find(m, file, access));
    TreeAttr a = n.tree->Attr(n.id);
    if (!S_ISREG(a.mode)) return Fail(Errno(EISDIR, "not a file"));
    return NodeSource{NodeSource::TreeFile{n.tree, n.id, n.tree->ContiguousData(n.id), a.size}};
  }

  Result<std::vector<std::pair<std::string, std::string>>> Xattrs(
      MountNodes& m, const VNode& v, RemoteAccess access) const override {
    ASSIGN_OR_RETURN(StreamingRootfs::Node n, Find(m, v, access));
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [name, value] : n.tree->Xattrs(n.id)) out.emplace_back(name, value);
    return out;
  }
};

}  // namespace

const NodeKind& RegistryStreamNode() { return The<RegistryStreamNodeKind>(); }

}  // namespace imagefs::kinds

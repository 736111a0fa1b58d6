// import/: the upload directory. A tarball copied in is loaded when its writer is done
// (see ImportDir); uploads are files of their own, not the store's. With kernel-handled
// opens, import is a link to a second mount serving only this directory.
#include "fusefs/nodes/kinds.h"
#include "fusefs/nodes/mount_nodes.h"

namespace imagefs::kinds {
namespace {

class ImportDirKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode&,
                               RemoteAccess) const override {
    NodeEntry e = m.Base(ino);
    // The mounter's: others may not upload (nor, where it is its own mount, look in).
    e.attr.st_mode = S_IFDIR | (m.options().import_only ? 0700 : 0755);
    e.timeout = 0;
    if (auto real = m.import().DirStat()) e.attr.st_mtim = real->st_mtim;
    return e;
  }
  Result<NodeEntry> Lookup(MountNodes& m, const VNode&, const std::string& name,
                           RemoteAccess access) const override {
    if (!m.import().Stat(name)) return Fail(Errno(ENOENT, name));
    return m.Describe(m.inodes().Synthetic(VKind::kImportFile, name), access);
  }
  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode&, RemoteAccess) const override {
    std::vector<DirEntry> out;
    for (const std::string& name : m.import().List())
      out.push_back({name, m.inodes().Synthetic(VKind::kImportFile, name)});
    return out;
  }
  // A name being loaded shows once its load is done (or failed).
  void Settle(MountNodes& m, const VNode&, const char* name) const override {
    name ? m.import().WaitForLoad(name) : m.import().WaitForLoads();
  }
};

class ImportFileKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    ASSIGN_OR_RETURN(struct stat real, m.import().Stat(v.key));
    NodeEntry e = m.Base(ino);
    e.attr.st_mode = real.st_mode;
    e.attr.st_nlink = 1;
    e.attr.st_size = real.st_size;
    e.attr.st_blocks = real.st_blocks;
    e.attr.st_mtim = real.st_mtim;
    e.attr.st_ctim = real.st_ctim;
    e.timeout = 0;
    return e;
  }
  Result<NodeSource> Open(MountNodes&, fuse_ino_t, const VNode& v, RemoteAccess) const override {
    return NodeSource{NodeSource::Import{v.key}};
  }
};

class ImportLinkKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode&,
                               RemoteAccess) const override {
    NodeEntry e = m.LinkEntry(ino, m.options().import_link.size());
    return e;
  }
  Result<std::string> ReadLink(MountNodes& m, const VNode&, RemoteAccess) const override {
    return m.options().import_link;
  }
};

}  // namespace

const NodeKind& ImportDir() { return The<ImportDirKind>(); }
const NodeKind& ImportFile() { return The<ImportFileKind>(); }
const NodeKind& ImportLink() { return The<ImportLinkKind>(); }

}  // namespace imagefs::kinds

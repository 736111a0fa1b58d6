// .imagefs/: status files (stats: the EIO counters; memory: the daemon's; pull status and
// recent errors of registry/). They change, and where the kernel handles opens it caches their
// pages like any file's: so each content they have had is its own node, a snapshot made when it is
// looked up or listed. A new open after a change finds a new node; an open file keeps
// reading the snapshot it opened. Key of a file: "NAME@SLOT".
#include "fusefs/nodes/common_kinds.h"
#include "fusefs/nodes/kinds.h"

namespace imagefs {
namespace {

std::string StatusFileName(const std::string& key) { return key.substr(0, key.find('@')); }

}  // namespace

std::map<std::string, std::string> MountNodes::StatusFiles() {
  auto files = remote_ ? remote_->StatusFiles() : std::map<std::string, std::string>();
  files["stats"] = stats_.Json();
  files["memory"] = Stats::MemoryJson();
  return files;
}

// A file's snapshots take turns among kSnapshotSlots nodes, so that a pull watched for an
// hour does not grow the node table: a node given a new content has its cached pages
// and attributes dropped first.
fuse_ino_t MountNodes::SnapshotIno(const std::string& name, std::string content) {
  constexpr uint32_t kSnapshotSlots = 16;
  std::lock_guard lock(snapshots_mu_);
  uint32_t& slot = snapshot_slot_[name];
  fuse_ino_t ino = inodes_.Synthetic(VKind::kMetaFile, name + "@" + std::to_string(slot));
  if (auto it = snapshots_.find(ino); it != snapshots_.end() && it->second == content) return ino;
  slot = (slot + 1) % kSnapshotSlots;
  ino = inodes_.Synthetic(VKind::kMetaFile, name + "@" + std::to_string(slot));
  snapshots_[ino] = std::move(content);
  if (invalidate_snapshot_) invalidate_snapshot_(ino);
  return ino;
}

std::string MountNodes::StatusSnapshot(fuse_ino_t ino, const std::string& key) {
  {
    std::lock_guard lock(snapshots_mu_);
    if (auto it = snapshots_.find(ino); it != snapshots_.end()) return it->second;
  }
  // Not handed out yet in this run (a node id from another listing): what it says now.
  auto files = StatusFiles();
  return files[StatusFileName(key)];
}

namespace kinds {
namespace {

class MetaDirKind : public FixedDirKind {
 public:
  Result<NodeEntry> Lookup(MountNodes& m, const VNode&, const std::string& name,
                           RemoteAccess access) const override {
    auto files = m.StatusFiles();
    auto it = files.find(name);
    if (it == files.end()) return Fail(Errno(ENOENT, name));
    return m.Describe(m.SnapshotIno(name, std::move(it->second)), access);
  }
  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode&, RemoteAccess) const override {
    std::vector<DirEntry> out;
    for (auto& [name, text] : m.StatusFiles())
      out.push_back({name, m.SnapshotIno(name, std::move(text))});
    return out;
  }
};

class MetaFileKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    NodeEntry e = m.FileEntry(ino, m.StatusSnapshot(ino, v.key).size());
    // Pull status and errors name private repositories and quote registries: the
    // mounter's to read. The EIO counters and memory figures are no secret.
    if (std::string name = StatusFileName(v.key); name != "stats" && name != "memory")
      e.attr.st_mode = S_IFREG | 0400;
    e.timeout = 0;
    return e;
  }
  Result<NodeSource> Open(MountNodes& m, fuse_ino_t ino, const VNode& v,
                          RemoteAccess) const override {
    return NodeSource{NodeSource::Bytes{m.StatusSnapshot(ino, v.key)}};
  }
};

}  // namespace

const NodeKind& MetaDir() { return The<MetaDirKind>(); }
const NodeKind& MetaFile() { return The<MetaFileKind>(); }

}  // namespace kinds
}  // namespace imagefs

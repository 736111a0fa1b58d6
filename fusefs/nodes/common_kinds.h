// Kinds several mount directories share.
#pragma once

#include "fusefs/nodes/mount_nodes.h"

namespace imagefs::kinds {

// A directory whose attributes never change: the root, .imagefs/, registry images.
class FixedDirKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode&,
                               RemoteAccess) const override {
    return m.Base(ino);
  }
};

// images/, layers/ and tags/: they show the store as committed (waiting for loads of
// import/ still running) and their attributes follow its changes.
class StoreDirKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode&,
                               RemoteAccess) const override {
    NodeEntry e = m.Base(ino);
    m.FollowStore(e);
    return e;
  }
  // Where the writer's close() does not wait for its load (kernel-handled opens), a
  // lookup or listing of the store does.
  void Settle(MountNodes& m, const VNode&, const char*) const override {
    m.import().WaitForLoads();
  }
};

}  // namespace imagefs::kinds

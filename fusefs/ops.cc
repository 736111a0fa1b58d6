// The C boundary: the fuse_lowlevel_ops table. Every callback is noexcept and turns an
// escaping exception into ENOMEM or EIO (logged), so none crosses into libfuse.
#include <new>
#include <string>

#include "fusefs/filesystem.h"
#include "graph/base/log.h"

namespace imagefs {
namespace {

ImageFs* Fs(fuse_req_t req) { return static_cast<ImageFs*>(fuse_req_userdata(req)); }

template <typename F>
void Guard(fuse_req_t req, F&& f) noexcept {
  ImageFs::Guarded(req, [&] { f(Fs(req)); });
}

// A request on ino that may wait (see RequestPool) runs on the pool: make() gives the task,
// its arguments copied (what libfuse's pointers point to lives only as long as the
// callback); it is called only then, so the hot path copies nothing. False when not posted.
template <typename MakeTask>
bool Offloaded(fuse_req_t req, fuse_ino_t ino, MakeTask make) noexcept {
  try {
    if (!Fs(req)->MayWait(ino)) return false;
    return Fs(req)->requests().Post([req, task = make()]() mutable { Guard(req, task); });
  } catch (...) {  // no memory for the task: serve it here
    return false;
  }
}

template <typename F>
void MayWait(fuse_req_t req, fuse_ino_t ino, F f) noexcept {
  if (Offloaded(req, ino, [&] { return f; })) return;
  Guard(req, f);
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = [](void* userdata, fuse_conn_info* conn) noexcept {
    try {
      static_cast<ImageFs*>(userdata)->Init(conn);
    } catch (...) {
    }
  };
  ops.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
    if (Offloaded(req, parent, [&] {
          return [req, parent, n = std::string(name)](ImageFs* fs) {
            fs->Lookup(req, parent, n.c_str());
          };
        })) {
      return;
    }
    Guard(req, [&](ImageFs* fs) { fs->Lookup(req, parent, name); });
  };
  // Node ids are computed, not allocated: nothing to free when the kernel forgets one.
  ops.forget = [](fuse_req_t req, fuse_ino_t, uint64_t) noexcept { fuse_reply_none(req); };
  ops.forget_multi = [](fuse_req_t req, size_t, fuse_forget_data*) noexcept {
    fuse_reply_none(req);
  };
  ops.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info*) noexcept {
    MayWait(req, ino, [req, ino](ImageFs* fs) { fs->GetAttr(req, ino); });
  };
  ops.setattr = [](fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                   fuse_file_info* fi) noexcept {
    Guard(req, [&](ImageFs* fs) { fs->SetAttr(req, ino, attr, to_set, fi); });
  };
  ops.readlink = [](fuse_req_t req, fuse_ino_t ino) noexcept {
    MayWait(req, ino, [req, ino](ImageFs* fs) { fs->ReadLink(req, ino); });
  };
  ops.opendir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
    MayWait(req, ino, [req, ino, f = *fi](ImageFs* fs) mutable { fs->OpenDir(req, ino, &f); });
  };
  ops.readdir = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   fuse_file_info* fi) noexcept {
    MayWait(req, ino, [req, ino, size, off, f = *fi](ImageFs* fs) mutable {
      fs->ReadDir(req, ino, size, off, &f, false);
    });
  };
  ops.readdirplus = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       fuse_file_info* fi) noexcept {
    MayWait(req, ino, [req, ino, size, off, f = *fi](ImageFs* fs) mutable {
      fs->ReadDir(req, ino, size, off, &f, true);
    });
  };
  ops.releasedir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
    Guard(req, [&](ImageFs* fs) { fs->ReleaseDir(req, ino, fi); });
  };
  ops.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
    MayWait(req, ino, [req, ino, f = *fi](ImageFs* fs) mutable { fs->Open(req, ino, &f); });
  };
  ops.create = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                  fuse_file_info* fi) noexcept {
    Guard(req, [&](ImageFs* fs) { fs->Create(req, parent, name, mode, fi); });
  };
  ops.read = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                fuse_file_info* fi) noexcept {
    MayWait(req, ino, [req, ino, size, off, f = *fi](ImageFs* fs) mutable {
      fs->Read(req, ino, size, off, &f);
    });
  };
  ops.write = [](fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                 fuse_file_info* fi) noexcept {
    Guard(req, [&](ImageFs* fs) { fs->Write(req, ino, buf, size, off, fi); });
  };
  ops.flush = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
    Guard(req, [&](ImageFs* fs) { fs->Flush(req, ino, fi); });
  };
  ops.release = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
    Guard(req, [&](ImageFs* fs) { fs->Release(req, ino, fi); });
  };
  ops.unlink = [](fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
    Guard(req, [&](ImageFs* fs) { fs->Unlink(req, parent, name); });
  };
  ops.statfs = [](fuse_req_t req, fuse_ino_t ino) noexcept {
    Guard(req, [&](ImageFs* fs) { fs->StatFs(req, ino); });
  };
  ops.getxattr = [](fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
    if (Offloaded(req, ino, [&] {
          return [req, ino, n = std::string(name), size](ImageFs* fs) {
            fs->GetXattr(req, ino, n.c_str(), size);
          };
        })) {
      return;
    }
    Guard(req, [&](ImageFs* fs) { fs->GetXattr(req, ino, name, size); });
  };
  ops.listxattr = [](fuse_req_t req, fuse_ino_t ino, size_t size) noexcept {
    MayWait(req, ino, [req, ino, size](ImageFs* fs) { fs->ListXattr(req, ino, size); });
  };
  // Everything else that would change the tree: a read-only file system.
  ops.mkdir = [](fuse_req_t req, fuse_ino_t, const char*, mode_t) noexcept {
    fuse_reply_err(req, EROFS);
  };
  ops.mknod = [](fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) noexcept {
    fuse_reply_err(req, EROFS);
  };
  ops.rmdir = [](fuse_req_t req, fuse_ino_t, const char*) noexcept { fuse_reply_err(req, EROFS); };
  ops.symlink = [](fuse_req_t req, const char*, fuse_ino_t, const char*) noexcept {
    fuse_reply_err(req, EROFS);
  };
  ops.link = [](fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) noexcept {
    fuse_reply_err(req, EROFS);
  };
  ops.rename = [](fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*,
                  unsigned) noexcept { fuse_reply_err(req, EROFS); };
  ops.setxattr = [](fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) noexcept {
    fuse_reply_err(req, EROFS);
  };
  ops.removexattr = [](fuse_req_t req, fuse_ino_t, const char*) noexcept {
    fuse_reply_err(req, EROFS);
  };
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& ImageFs::Ops() {
  static const fuse_lowlevel_ops ops = MakeOps();
  return ops;
}

}  // namespace imagefs

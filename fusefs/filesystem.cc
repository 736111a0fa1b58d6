#include "fusefs/filesystem.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <variant>

#include "graph/base/log.h"

namespace imagefs {
namespace {}  // namespace

// An open file (daemon-handled opens, and uploads created in import/).
struct ImageFs::Handle {
  struct Upload {
    UniqueFd fd;
    std::string name;
    bool written = false;
    bool finished = false;
  };
  NodeSource source;
  std::optional<Upload> upload;
  // Non-zero for Passthrough::Mode::kServeCounted: tell it of the close.
  fuse_ino_t counted_ino = 0;
};

Result<std::unique_ptr<ImageFs>> ImageFs::Create(Store& store, const FsOptions& options,
                                                 RemoteImages* remote,
                                                 std::shared_ptr<ImportDir> import) {
  if (!import) {
    ASSIGN_OR_RETURN(import, ImportDir::Create(store));
  }
  std::unique_ptr<ImageFs> fs(new ImageFs(store, options, remote, std::move(import)));
  // Where the kernel opens files itself it caches a status file's pages like any file's.
  ImageFs* self = fs.get();
  fs->nodes_.SetSnapshotInvalidator([self](fuse_ino_t ino) {
    if (self->kernel_opens_ && self->session_ != nullptr)
      fuse_lowlevel_notify_inval_inode(self->session_, ino, 0, 0);
  });
  fs->nodes_.SetInodeInvalidator([self](fuse_ino_t ino) {
    if (self->session_ != nullptr) fuse_lowlevel_notify_inval_inode(self->session_, ino, 0, 0);
  });
  fs->nodes_.SetEntryInvalidator([self](fuse_ino_t parent, const std::string& name) {
    if (self->session_ != nullptr)
      fuse_lowlevel_notify_inval_entry(self->session_, parent, name.c_str(), name.size());
  });
  return fs;
}

void ImageFs::Init(fuse_conn_info* conn) {
  // Large requests: reads of 1 MiB, splice from the blob fds where the kernel allows.
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  for (unsigned cap : {FUSE_CAP_SPLICE_WRITE, FUSE_CAP_CACHE_SYMLINKS, FUSE_CAP_PARALLEL_DIROPS,
                       FUSE_CAP_ASYNC_READ, FUSE_CAP_READDIRPLUS}) {
    if (conn->capable & cap) conn->want |= cap;
  }
  no_opendir_ = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  // Content never changes: no attribute revalidation on every cached read.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // Every listing carries attributes (readdirplus), not only its first reply: with the
  // "auto" mode libfuse asks for, a directory of thousands of entries cost one LOOKUP per
  // entry past the first reply when stat'ed (find -printf, ls -l).
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (options_.kernel_opens && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)) {
    conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
    kernel_opens_ = true;
  } else {
    passthrough_.OfferInInit();
  }
  FusefsLog()->info("mount ready: store={} opens={}", store_.root().string(),
                    kernel_opens_ ? "kernel" : "daemon");
}

void ImageFs::CountException(fuse_req_t req, const char* what) {
  static_cast<ImageFs*>(fuse_req_userdata(req))->stats().Bump("exception");
  FusefsLog()->error("internal error: {}", what);
}

bool ImageFs::MayWait(fuse_ino_t ino) const {
  if (InodeTable::SerialOf(ino) != 0) return false;  // tree files: Read decides
  auto kind = nodes_.inodes().KindOf(ino);
  return kind && *kind >= VKind::kRegistryDir && *kind <= VKind::kRegistryStreamNode;
}

void ImageFs::StopRequests() {
  while (!requests_->Stop(std::chrono::seconds(10))) {
    // Cancelled waits end at once: one that does not is a bug, and the session and this
    // ImageFs must outlive it.
    FusefsLog()->error("{} request(s) still running after the mount stopped; waiting",
                       requests_->threads());
  }
}

void ImageFs::ReplyError(fuse_req_t req, const Error& error, const char* tag) {
  int e = error.ToErrno();
  if (e == EIO) {
    stats_.Bump(tag);
    FusefsLog()->error("{}: {}", tag, error.msg);
  } else {
    FusefsLog()->debug("{}: {}", tag, error.msg);
  }
  fuse_reply_err(req, e);
}

RemoteAccess ImageFs::Access(fuse_req_t req) const {
  // The mounter's credentials serve the mounter; other users get what anyone may pull,
  // unless the mounter lent them on purpose (-o share_credentials).
  if (options_.share_credentials || fuse_req_ctx(req)->uid == nodes_.mounter_uid())
    return RemoteAccess::kMounter;
  return RemoteAccess::kAnonymous;
}

bool ImageFs::IsImportDir(fuse_ino_t ino) const {
  auto dir = InodeTable::SerialOf(ino) == 0 ? nodes_.inodes().GetSynthetic(ino) : std::nullopt;
  return dir && dir->kind == VKind::kImportDir;
}

void ImageFs::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (uint32_t serial = InodeTable::SerialOf(parent); serial != 0) {
    auto tree_node = nodes_.TreeAndNode(parent);
    if (!tree_node) return ReplyError(req, tree_node.error(), "lookup");
    auto& [tree, node] = *tree_node;
    auto child = tree->Lookup(node, name);
    if (!child) {
      // A tree never changes: the kernel may remember that the name is not there (a
      // negative entry), so that asking again costs no round trip. Only for a name the
      // tree lacks: a tree that failed to load is an error, not an answer.
      fuse_entry_param negative{};
      negative.entry_timeout = options_.tree_timeout;
      return (void)fuse_reply_entry(req, &negative);
    }
    fuse_entry_param p{};
    p.ino = InodeTable::TreeIno(serial, *child);
    nodes_.FillTreeAttr(*tree, serial, *child, &p.attr);
    p.attr_timeout = p.entry_timeout = options_.tree_timeout;
    return (void)fuse_reply_entry(req, &p);
  }
  nodes_.Settle(parent, name);
  RefreshStore();
  auto e = nodes_.LookupSynthetic(parent, name, Access(req));
  if (!e) return ReplyError(req, e.error(), "lookup");
  fuse_entry_param p{};
  p.ino = e->ino;
  p.attr = e->attr;
  p.attr_timeout = p.entry_timeout = e->timeout;
  fuse_reply_entry(req, &p);
}

void ImageFs::GetAttr(fuse_req_t req, fuse_ino_t ino) {
  const RemoteAccess access = Access(req);
  if (InodeTable::SerialOf(ino) == 0) RefreshStore();
  auto e = nodes_.Describe(ino, access);
  if (!e) return ReplyError(req, e.error(), "getattr");
  fuse_reply_attr(req, &e->attr, e->timeout);
}

void ImageFs::SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                      fuse_file_info*) {
  auto v = nodes_.inodes().GetSynthetic(ino);
  if (!v || v->kind != VKind::kImportFile) return (void)fuse_reply_err(req, EROFS);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (auto st = nodes_.import().Truncate(v->key, attr->st_size); !st)
      return ReplyError(req, st.error(), "import");
  }
  GetAttr(req, ino);  // modes and times of an upload do not matter: accepted, ignored
}

void ImageFs::ReadLink(fuse_req_t req, fuse_ino_t ino) {
  auto target = nodes_.ReadLink(ino, Access(req));
  if (!target) return ReplyError(req, target.error(), "readlink_failed");
  fuse_reply_readlink(req, target->c_str());
}

void ImageFs::OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const RemoteAccess access = Access(req);
  // With no opendir/releasedir round trips the kernel caches every directory's entries
  // (FOPEN_CACHE_DIR) and drops the cache when the directory's mtime moves: tree
  // directories never change, and synthetic ones move their mtime with the store.
  if (no_opendir_) return (void)fuse_reply_err(req, ENOSYS);
  auto e = nodes_.Describe(ino, access);
  if (!e) return ReplyError(req, e.error(), "opendir");
  if (!S_ISDIR(e->attr.st_mode)) return (void)fuse_reply_err(req, ENOTDIR);
  fi->cache_readdir = InodeTable::SerialOf(ino) != 0;
  fi->keep_cache = fi->cache_readdir;
  fuse_reply_open(req, fi);
}

void ImageFs::ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*,
                      bool plus) {
  const RemoteAccess access = Access(req);
  std::shared_ptr<const Tree> tree;
  uint32_t serial = InodeTable::SerialOf(ino), node = 0;
  std::vector<DirEntry> entries;
  if (serial != 0) {
    auto t = nodes_.TreeOf(serial);
    if (!t) return ReplyError(req, t.error(), "tree_build_failed");
    tree = *t;
    node = InodeTable::TreeNodeOf(ino);
    if (node >= tree->size()) return (void)fuse_reply_err(req, ESTALE);
    if (!tree->IsDir(node)) return (void)fuse_reply_err(req, ENOTDIR);
  } else {
    if (off == 0) {
      nodes_.Settle(ino, nullptr);
      RefreshStore();
    }
    auto children = nodes_.ListSynthetic(ino, access);
    if (!children) return ReplyError(req, children.error(), "readdir");
    entries = std::move(*children);
  }
  std::vector<char> buf(size);
  size_t used = 0;
  // Offsets: 1 and 2 are "." and ".."; entry i is at i + 3.
  size_t count = tree ? tree->Children(node).size() : entries.size();
  for (size_t pos = static_cast<size_t>(off); pos < count + 2; ++pos) {
    std::string name;
    fuse_entry_param e{};
    bool dot = pos < 2;
    if (dot) {
      name = pos == 0 ? "." : "..";
      e.attr.st_ino = pos == 0 ? ino : FUSE_ROOT_ID;
      e.attr.st_mode = S_IFDIR;
    } else if (tree) {
      uint32_t child = tree->Children(node)[pos - 2];
      if (child >= tree->size()) continue;  // a damaged tree file
      name = std::string(tree->Name(child));
      e.ino = InodeTable::TreeIno(serial, child);
      nodes_.FillTreeAttr(*tree, serial, child, &e.attr);
      e.attr_timeout = e.entry_timeout = options_.tree_timeout;
    } else if (const DirEntry& entry = entries[pos - 2]; entry.type_only) {
      // No attributes (ino 0 in a plus reply makes the kernel look the name up when it
      // is used).
      name = entry.name;
      e.attr.st_ino = entry.ino;
      e.attr.st_mode = *entry.type_only;
    } else {
      name = entry.name;
      auto d = nodes_.Describe(entry.ino, access);
      if (!d) continue;  // gone meanwhile
      e.ino = d->ino;
      e.attr = d->attr;
      e.attr_timeout = e.entry_timeout = d->timeout;
    }
    size_t need;
    // A readdirplus reply is all in the plus format; "." and ".." carry ino 0, so the
    // kernel takes no reference on them.
    if (plus) {
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e,
                                    static_cast<off_t>(pos + 1));
    } else {
      if (!dot) e.attr.st_ino = e.attr.st_ino ? e.attr.st_ino : e.ino;
      need = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &e.attr,
                               static_cast<off_t>(pos + 1));
    }
    if (need > size - used) break;  // the entry did not fit: the kernel asks again from here
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void ImageFs::ReleaseDir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

Status ImageFs::CheckBlob(const NodeSource& source) const {
  // A blob deleted or truncated behind our back: EIO, not a short file.
  const auto* file = std::get_if<NodeSource::TreeFile>(&source.v);
  struct stat st;
  if (file && file->extent &&
      (fstat(file->extent->fd, &st) != 0 ||
       static_cast<uint64_t>(st.st_size) < file->extent->offset + file->size)) {
    return Fail(Error{Code::kIo, EIO,
                      "layer blob is shorter than its index says (truncated?) for " +
                          file->tree->Path(file->node)});
  }
  return {};
}

void ImageFs::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  // Kernel-handled opens: the first ENOSYS tells the kernel to open and close files
  // itself from now on, with their page cache kept; reads then come without a handle.
  if (kernel_opens_) return (void)fuse_reply_err(req, ENOSYS);
  bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
  auto v = InodeTable::SerialOf(ino) == 0 ? nodes_.inodes().GetSynthetic(ino) : std::nullopt;
  if (writing && !(v && v->kind == VKind::kImportFile)) return (void)fuse_reply_err(req, EROFS);
  auto source = nodes_.Open(ino, Access(req));
  if (!source) return ReplyError(req, source.error(), "open");
  auto handle = std::make_unique<Handle>();
  if (auto* t = std::get_if<NodeSource::TreeFile>(&source->v)) {
    if (auto st = CheckBlob(*source); !st) {
      return ReplyError(req, st.error(),
                        t->extent && t->extent->fd >= 0 ? "blob_truncated" : "blob_missing");
    }
    auto mode = t->extent ? passthrough_.Open(ino, *t->extent, t->size) : Passthrough::Mode::kServe;
    handle->counted_ino = mode == Passthrough::Mode::kServeCounted ? ino : 0;
    fi->keep_cache = mode != Passthrough::Mode::kPassthrough;
    fi->noflush = 1;
  } else if (auto* i = std::get_if<NodeSource::Import>(&source->v)) {
    auto fd = nodes_.import().Open(i->name, fi->flags & (O_ACCMODE | O_TRUNC | O_APPEND), 0644);
    if (!fd) return ReplyError(req, fd.error(), "import");
    handle->upload = Handle::Upload{std::move(*fd), i->name};
    fi->direct_io = 1;
  } else {
    fi->keep_cache = 1;
  }
  handle->source = std::move(*source);
  fi->fh = AddHandle(std::move(handle));
  fuse_reply_open(req, fi);
}

void ImageFs::Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                     fuse_file_info* fi) {
  const RemoteAccess access = Access(req);
  if (!IsImportDir(parent)) return (void)fuse_reply_err(req, EROFS);
  auto fd = nodes_.import().Open(name, O_CREAT | O_TRUNC | (fi->flags & O_ACCMODE), mode);
  if (!fd) return ReplyError(req, fd.error(), "import");
  auto e = nodes_.Describe(nodes_.inodes().Synthetic(VKind::kImportFile, name), access);
  if (!e) return ReplyError(req, e.error(), "import");
  auto handle = std::make_unique<Handle>();
  handle->source = NodeSource{NodeSource::Import{name}};
  handle->upload = Handle::Upload{std::move(*fd), name};
  fi->fh = AddHandle(std::move(handle));
  fi->direct_io = 1;
  fuse_entry_param p{};
  p.ino = e->ino;
  p.attr = e->attr;
  fuse_reply_create(req, &p, fi);
}

uint64_t ImageFs::AddHandle(std::unique_ptr<Handle> handle) {
  std::lock_guard lock(handles_mu_);
  uint64_t fh = ++last_fh_;
  handles_.emplace(fh, std::move(handle));
  return fh;
}

std::shared_ptr<ImageFs::Handle> ImageFs::GetHandle(uint64_t fh) {
  std::lock_guard lock(handles_mu_);
  auto it = handles_.find(fh);
  return it == handles_.end() ? nullptr : it->second;
}

void ImageFs::Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  std::shared_ptr<Handle> handle;
  NodeSource built;
  const NodeSource* source = nullptr;
  if (fi->fh != 0) {
    handle = GetHandle(fi->fh);
    if (!handle) return (void)fuse_reply_err(req, EBADF);
    if (handle->upload) {
      std::vector<char> buf(size);
      ssize_t n = pread(handle->upload->fd.get(), buf.data(), size, off);
      if (n < 0) return (void)fuse_reply_err(req, errno);
      return (void)fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
    }
    source = &handle->source;
  } else {
    auto s = nodes_.Open(ino, Access(req));
    if (!s) return ReplyError(req, s.error(), "read");
    built = std::move(*s);
    source = &built;
    if (auto st = CheckBlob(built); !st) return ReplyError(req, st.error(), "blob_truncated");
  }
  auto reply_fd = [&](int fd, uint64_t base, uint64_t file_size) {
    if (static_cast<uint64_t>(off) >= file_size) return (void)fuse_reply_buf(req, nullptr, 0);
    size_t n = static_cast<size_t>(std::min<uint64_t>(size, file_size - off));
    fuse_bufvec buf = FUSE_BUFVEC_INIT(n);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = fd;
    buf.buf[0].pos = static_cast<off_t>(base + off);
    fuse_reply_data(req, &buf, static_cast<fuse_buf_copy_flags>(0));
  };
  auto reply_read = [&](auto&& read_fn, const char* tag) {
    std::vector<char> buf(size);
    auto n = read_fn(static_cast<uint64_t>(off), size, buf.data());
    if (!n) return ReplyError(req, n.error(), tag);
    fuse_reply_buf(req, buf.data(), *n);
  };
  if (auto* t = std::get_if<NodeSource::TreeFile>(&source->v)) {
    if (t->extent) return reply_fd(t->extent->fd, t->extent->offset, t->size);
    // Bytes of a lazily fetched or streaming layer may wait on the network: read them on the
    // pool, not on the session's loop.
    if (!RequestPool::OnPoolThread() && t->tree->MayFetch(t->node) &&
        requests_->Post([this, req, ino, size, off, f = *fi]() mutable {
          Guarded(req, [&] { Read(req, ino, size, off, &f); });
        })) {
      return;
    }
    return reply_read(
        [&](uint64_t o, size_t l, char* b) { return t->tree->Read(t->node, o, l, b); },
        "blob_read_failed");
  }
  if (auto* b = std::get_if<NodeSource::Bytes>(&source->v)) {
    if (static_cast<uint64_t>(off) >= b->data.size()) return (void)fuse_reply_buf(req, nullptr, 0);
    return (void)fuse_reply_buf(req, b->data.data() + off, std::min(size, b->data.size() - off));
  }
  if (auto* l = std::get_if<NodeSource::Blob>(&source->v))
    return reply_fd(l->blob->fd.get(), 0, l->blob->index->tar_size());
  if (auto* a = std::get_if<NodeSource::Archive>(&source->v)) {
    return reply_read(
        [&](uint64_t o, size_t len, char* buf) { return a->archive->Read(o, len, buf); },
        "archive_read_failed");
  }
  if (auto* i = std::get_if<NodeSource::Import>(&source->v)) {
    // An upload read back without a handle (kernel-handled opens).
    auto fd = nodes_.import().Open(i->name, O_RDONLY, 0);
    if (!fd) return ReplyError(req, fd.error(), "import");
    std::vector<char> buf(size);
    ssize_t n = pread(fd->get(), buf.data(), size, off);
    if (n < 0) return (void)fuse_reply_err(req, errno);
    return (void)fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
  }
  fuse_reply_err(req, EBADF);
}

void ImageFs::Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                    fuse_file_info* fi) {
  auto h = fi->fh != 0 ? GetHandle(fi->fh) : nullptr;
  if (!h || !h->upload) {
    auto v = InodeTable::SerialOf(ino) == 0 ? nodes_.inodes().GetSynthetic(ino) : std::nullopt;
    if (!v || v->kind != VKind::kImportFile) return (void)fuse_reply_err(req, EROFS);
    // Kernel-handled opens: an upload opened again without O_CREAT, while its first
    // writer is still at it. Only the file's creator may write it.
    FusefsLog()->warn("import/{}: refusing a second writer while it is being uploaded", v->key);
    return (void)fuse_reply_err(req, EBUSY);
  }
  ssize_t n = pwrite(h->upload->fd.get(), buf, size, off);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  h->upload->written = true;
  fuse_reply_write(req, static_cast<size_t>(n));
}

void ImageFs::FinishUpload(fuse_req_t req, Handle& handle) {
  auto& upload = *handle.upload;
  if (!upload.written || upload.finished) return (void)fuse_reply_err(req, 0);
  upload.finished = true;
  upload.fd.Reset();
  if (auto st = nodes_.import().Finish(upload.name); !st)
    return ReplyError(req, st.error(), "import_failed");
  fuse_reply_err(req, 0);
}

void ImageFs::Flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // Kernel-handled opens: no FLUSH round trip on any close (the kernel remembers the
  // ENOSYS for the whole mount); uploads then load at RELEASE.
  if (kernel_opens_) return (void)fuse_reply_err(req, ENOSYS);
  auto h = GetHandle(fi->fh);
  // The writer's close(): load now, so that close() reports whether the image loaded.
  if (h && h->upload) return FinishUpload(req, *h);
  fuse_reply_err(req, 0);
}

void ImageFs::Release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // A request still running on the handle when the RELEASE arrives (ASan saw a READ of
  // .imagefs/stats do so) keeps it alive until it is done.
  std::shared_ptr<Handle> handle;
  {
    std::lock_guard lock(handles_mu_);
    auto it = handles_.find(fi->fh);
    if (it == handles_.end()) return (void)fuse_reply_err(req, 0);
    handle = std::move(it->second);
    handles_.erase(it);
  }
  if (handle->counted_ino != 0) {
    const auto& t = std::get<NodeSource::TreeFile>(handle->source.v);
    passthrough_.CachedRelease(handle->counted_ino, *t.extent, t.size);
  }
  // Kernel-handled opens: the close() did not wait; this loads it (lookups of import/
  // and of the store's directories wait for it).
  if (handle->upload) return FinishUpload(req, *handle);
  fuse_reply_err(req, 0);
}

void ImageFs::Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (!IsImportDir(parent)) return (void)fuse_reply_err(req, EROFS);
  if (auto st = nodes_.import().Unlink(name); !st) return ReplyError(req, st.error(), "import");
  fuse_reply_err(req, 0);
}

void ImageFs::StatFs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st;
  if (statvfs(store_.root().c_str(), &st) != 0) return (void)fuse_reply_err(req, errno);
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

Result<std::vector<std::pair<std::string, std::string>>> ImageFs::XattrsOf(fuse_req_t req,
                                                                           fuse_ino_t ino) {
  if (InodeTable::SerialOf(ino) == 0) return nodes_.SyntheticXattrs(ino, Access(req));
  ASSIGN_OR_RETURN(auto tree_node, nodes_.TreeAndNode(ino));
  auto& [tree, node] = tree_node;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, value] : tree->Xattrs(node)) out.emplace_back(key, value);
  return out;
}

void ImageFs::GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  auto xattrs = XattrsOf(req, ino);
  if (!xattrs) return ReplyError(req, xattrs.error(), "tree_build_failed");
  for (const auto& [key, value] : *xattrs) {
    if (key != name) continue;
    if (size == 0) return (void)fuse_reply_xattr(req, value.size());
    if (size < value.size()) return (void)fuse_reply_err(req, ERANGE);
    return (void)fuse_reply_buf(req, value.data(), value.size());
  }
  fuse_reply_err(req, ENODATA);
}

void ImageFs::ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::string names;
  auto xattrs = XattrsOf(req, ino);
  if (!xattrs) return ReplyError(req, xattrs.error(), "tree_build_failed");
  for (const auto& [key, value] : *xattrs) {
    names.append(key);
    names.push_back('\0');
  }
  if (size == 0) return (void)fuse_reply_xattr(req, names.size());
  if (size < names.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, names.data(), names.size());
}

}  // namespace imagefs

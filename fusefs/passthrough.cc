#include "fusefs/passthrough.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/base/scope_guard.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

// Protocol 7.40 parts that libfuse 3.14's headers predate.
constexpr uint32_t kInitFlags2Passthrough = 1u << (37 - 32);  // FUSE_PASSTHROUGH
constexpr size_t kInitFlags2At = 32;                          // fuse_init_out.flags2
constexpr size_t kInitMaxStackDepthAt = 36;                   // fuse_init_out.max_stack_depth
constexpr uint32_t kOpenPassthrough = 1u << 7;                // FOPEN_PASSTHROUGH
constexpr size_t kOpenFlagsAt = 8, kOpenBackingIdAt = 12;     // in fuse_open_out (16 bytes)
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kIocBackingOpen = _IOW(229, 1, BackingMap);  // FUSE_DEV_IOC_BACKING_OPEN
constexpr unsigned long kIocBackingClose = _IOW(229, 2, uint32_t);   // FUSE_DEV_IOC_BACKING_CLOSE
// The backing files live on the store's file system, which is not itself stacked (a
// store on overlayfs is refused with ELOOP and served without passthrough); 1 keeps
// the mount usable as an overlayfs lower layer.
constexpr uint32_t kMaxStackDepth = 1;

// What the reply this thread writes next must say: set by the op that replies, in the
// same thread, right before libfuse writes the reply through HookedWritev.
thread_local bool t_offer_init = false;
thread_local int32_t t_backing_id = 0;

template <typename T>
void Put(const iovec& v, size_t at, T value) {
  std::memcpy(static_cast<char*>(v.iov_base) + at, &value, sizeof value);
}
template <typename T>
T Get(const iovec& v, size_t at) {
  T value;
  std::memcpy(&value, static_cast<const char*>(v.iov_base) + at, sizeof value);
  return value;
}

ssize_t HookedWritev(int fd, iovec* iov, int count, void*) {
  bool success = count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header) &&
                 static_cast<const fuse_out_header*>(iov[0].iov_base)->error == 0;
  if (success && t_offer_init && iov[1].iov_len >= kInitMaxStackDepthAt + sizeof(uint32_t)) {
    Put(iov[1], kInitFlags2At, Get<uint32_t>(iov[1], kInitFlags2At) | kInitFlags2Passthrough);
    Put(iov[1], kInitMaxStackDepthAt, kMaxStackDepth);
  }
  if (success && t_backing_id > 0 && iov[1].iov_len == sizeof(fuse_open_out)) {
    Put(iov[1], kOpenFlagsAt, Get<uint32_t>(iov[1], kOpenFlagsAt) | kOpenPassthrough);
    Put(iov[1], kOpenBackingIdAt, t_backing_id);
  }
  t_offer_init = false;
  t_backing_id = 0;
  return writev(fd, iov, count);
}

ssize_t PlainRead(int fd, void* buf, size_t len, void*) { return read(fd, buf, len); }

ssize_t PlainSplice(int fdin, off_t* offin, int fdout, off_t* offout, size_t len, unsigned flags,
                    void*) {
  return splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

Passthrough::Passthrough(Store& store, Stats& stats, uint64_t min_size)
    : store_(store), stats_(stats), min_size_(min_size) {
  if (const char* delay = std::getenv("IMAGEFS_TEST_COPY_DELAY_MS"))
    copy_delay_ms_ = std::atoi(delay);
}

Passthrough::~Passthrough() {
  {
    std::lock_guard lock(mu_);  // a waiting writer must see it
    stop_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
}

Status Passthrough::Attach(fuse_session* se) {
  if (min_size_ == 0) return {};
  fuse_custom_io io{};
  io.read = PlainRead;
  io.writev = HookedWritev;
  io.splice_send = PlainSplice;
  fuse_fd_ = fuse_session_fd(se);
  if (int rc = fuse_session_custom_io(se, &io, fuse_fd_); rc != 0) {
    return Fail(Error::FromErrno("cannot hook the FUSE session's replies", -rc));
  }
  return {};
}

void Passthrough::OfferInInit() const { t_offer_init = min_size_ != 0; }

Passthrough::Mode Passthrough::Open(fuse_ino_t ino, const Tree::Extent& extent, uint64_t size) {
  if (min_size_ == 0 || size < min_size_ || extent.fd < 0) return Mode::kServe;
  const std::string key = KeyOf(extent);
  bool look_for_copy = false;
  {
    std::lock_guard lock(mu_);
    if (!usable_) return Mode::kServe;
    if (cached_.count(ino) == 0) {
      if (auto it = backing_.find(key); it != backing_.end()) return PassthroughLocked(it->second);
      // Copies are named only once complete, so one being written is simply not found yet.
      look_for_copy = failed_.count(key) == 0;
    }
  }
  // The decision is taken under the lock; the calls (open, fstat, the ioctl) run outside it,
  // so that opens of other files never wait on this one's disk.
  int id = look_for_copy ? OpenBacking(extent, size) : 0;
  std::lock_guard lock(mu_);
  if (id > 0) {
    auto [it, added] = backing_.emplace(key, id);
    if (!added) {  // another open of the same copy got there first
      CloseBacking(id);
      id = it->second;
    }
    // A cached-mode open of this inode that came meanwhile rules passthrough out (kernel rule).
    if (cached_.count(ino) == 0) return PassthroughLocked(id);
  } else if (id < 0) {
    usable_ = false;
  }
  int cached = ++cached_[ino];
  int opens = ++opens_[key];
  FusefsLog()->debug("passthrough: node {:x} served ({} open now, {} opens so far)", ino, cached,
                     opens);
  return Mode::kServeCounted;
}

Passthrough::Mode Passthrough::PassthroughLocked(int backing_id) {
  t_backing_id = backing_id;
  stats_.Note("passthrough_opens");
  return Mode::kPassthrough;
}

void Passthrough::CachedRelease(fuse_ino_t ino, const Tree::Extent& extent, uint64_t size) {
  constexpr int kOpensBeforeCopy = 2;
  std::lock_guard lock(mu_);
  auto it = cached_.find(ino);
  if (it == cached_.end() || --it->second > 0) return;
  cached_.erase(it);
  if (usable_ && opens_[KeyOf(extent)] >= kOpensBeforeCopy) QueueLocked(extent, size);
}

int Passthrough::OpenBacking(const Tree::Extent& extent, uint64_t size) {
  fs::path path = store_.FileCopyPath(extent.diff_id, extent.offset);
  auto fd = OpenFile(path, O_RDONLY | O_CLOEXEC);
  if (!fd) return 0;
  struct stat st;
  if (fstat(fd->get(), &st) != 0 || static_cast<uint64_t>(st.st_size) != size) {
    FusefsLog()->warn("passthrough: {} is not {} bytes long: writing it again", path.string(),
                      size);
    unlink(path.c_str());
    return 0;
  }
  return BackingIdOf(fd->get());
}

int Passthrough::BackingIdOf(int fd) {
  BackingMap map{fd, 0, 0};
  int id = ioctl(fuse_fd_, kIocBackingOpen, &map);
  if (id > 0) return id;
  // EPERM without CAP_SYS_ADMIN, ENOTTY/EINVAL from a kernel without passthrough, ELOOP
  // for a store on a stacked file system: the same for every file.
  FusefsLog()->info(
      "passthrough off: the kernel refused a backing file ({}); files are served by the daemon",
      std::strerror(errno));
  return -1;
}

void Passthrough::CloseBacking(int backing_id) {
  auto id = static_cast<uint32_t>(backing_id);
  ioctl(fuse_fd_, kIocBackingClose, &id);
}

void Passthrough::QueueLocked(const Tree::Extent& extent, uint64_t size) {
  std::string key = KeyOf(extent);
  if (backing_.count(key) != 0 || pending_.count(key) != 0 || failed_.count(key) != 0) return;
  UniqueFd blob(fcntl(extent.fd, F_DUPFD_CLOEXEC, 0));
  if (!blob.valid()) return;
  pending_.insert(key);
  opens_.erase(key);
  queue_.push_back(Copy{std::move(key), extent.diff_id, std::move(blob), extent.offset, size});
  if (!writer_.joinable()) writer_ = std::thread([this] { Writer(); });
  wake_.notify_one();
}

bool Passthrough::KernelTakesBacking(int fd) {
  if (!kernel_takes_backing_) {
    // Asked once, with the layer blob (same file system as the copies), before any copy.
    int probe = BackingIdOf(fd);
    if (probe > 0) CloseBacking(probe);
    kernel_takes_backing_ = probe > 0;
  }
  return *kernel_takes_backing_;
}

void Passthrough::Writer() {
  // Copies are background work: the lowest best-effort I/O priority for this thread.
  constexpr int kIoprioClassBe = 2, kIoprioClassShift = 13, kIoprioWhoProcess = 1;
  syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, (kIoprioClassBe << kIoprioClassShift) | 7);
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Copy copy = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (!KernelTakesBacking(copy.blob.get())) {
      lock.lock();
      usable_ = false;
      pending_.erase(copy.key);
      continue;
    }
    if (copy_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(copy_delay_ms_));
    Result<bool> written = WriteCopy(copy);
    lock.lock();
    pending_.erase(copy.key);
    if (written) {
      if (*written) stats_.Note("passthrough_copies");
    } else if (!stop_) {
      failed_.insert(copy.key);
      stats_.Note("passthrough_copy_failed");
      FusefsLog()->warn("passthrough: cannot copy a file of layer {}: {}", copy.diff_id.str(),
                        written.error().msg);
    }
  }
}

Result<bool> Passthrough::WriteCopy(const Copy& copy) {
  fs::path tmp =
      store_.TmpDir() / ("copy-" + std::to_string(getpid()) + "-" +
                         copy.diff_id.hex().substr(0, 12) + "-" + std::to_string(copy.offset));
  fs::path dest = store_.FileCopyPath(copy.diff_id, copy.offset);
  // A copy made earlier (by this mount or another) is used as it is: copies are named only
  // once complete.
  if (struct stat st;
      stat(dest.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == copy.size) {
    return false;
  }
  ASSIGN_OR_RETURN(UniqueFd out, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400));
  ScopeGuard remove_tmp([&] { unlink(tmp.c_str()); });
  // Plain reads and writes of 8 MiB, not copy_file_range: large writes leave the copy in
  // the page cache as large folios, which is what makes reading it fast.
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(copy.size, 8u << 20)));
  for (uint64_t done = 0; done < copy.size;) {
    if (stop_) return Fail(Code::kIo, "stopped");
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(copy.size - done, buf.size()));
    ssize_t n = pread(copy.blob.get(), buf.data(), chunk, static_cast<off_t>(copy.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("read the layer blob");
    if (n == 0) return Fail(Code::kIo, "the layer blob ends early (truncated?)");
    RETURN_IF_ERROR(WriteAll(out.get(), buf.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  // A copy must never be shorter or staler than its size says, even after a crash.
  if (fdatasync(out.get()) != 0) return FailErrno("fdatasync " + tmp.string());
  // mkdir, not mkdir -p: a layer removed meanwhile must not be half re-created.
  if (mkdir(dest.parent_path().c_str(), 0700) != 0 && errno != EEXIST)
    return FailErrno("mkdir " + dest.parent_path().string());
  if (rename(tmp.c_str(), dest.c_str()) != 0) return FailErrno("rename to " + dest.string());
  remove_tmp.Dismiss();
  return true;
}

}  // namespace imagefs

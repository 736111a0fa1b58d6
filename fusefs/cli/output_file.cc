#include "fusefs/cli/output_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>

#include "graph/base/fs_util.h"

namespace imagefs {
namespace {

// The live temporary file, for the signal handler: Ctrl-C or a kill during a long export
// must not leave a stray ".name.imagefs-…" beside the user's file.
char g_live_tmp[PATH_MAX] = {0};

void RemoveTmpAndDie(int sig) {
  if (g_live_tmp[0] != '\0') ::unlink(g_live_tmp);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// The handlers go in before the file is made, so that no signal finds it unwatched.
void WatchSignals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, RemoveTmpAndDie);
}

void TrackTmp(const std::string& path) {
  if (path.size() >= sizeof g_live_tmp) return;
  std::memcpy(g_live_tmp, path.c_str(), path.size() + 1);
}

void UntrackTmp() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, SIG_DFL);
  g_live_tmp[0] = '\0';
}

bool UnderProc(const std::string& path) { return path == "/proc" || path.rfind("/proc/", 0) == 0; }

struct Target {
  std::string path;    // symlinks followed (the last one may name a missing file)
  bool magic = false;  // reached through /proc: a descriptor, not a name to replace
};

// Follows symlinks as open(2) would, so that -o LINK writes LINK's target and keeps the link.
Result<Target> ResolveTarget(const std::string& given) {
  Target t{given};
  for (int hops = 0; hops < 40; ++hops) {
    if (UnderProc(std::filesystem::absolute(t.path).lexically_normal().string())) t.magic = true;
    struct stat st;
    if (lstat(t.path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return t;
    if (t.magic) return t;  // /proc/self/fd/N: the link is the descriptor, not a name
    char buf[PATH_MAX];
    ssize_t n = readlink(t.path.c_str(), buf, sizeof buf - 1);
    if (n < 0) return FailErrno("readlink " + t.path);
    std::string link(buf, static_cast<size_t>(n));
    t.path = link[0] == '/' ? link : (std::filesystem::path(t.path).parent_path() / link).string();
  }
  return Fail(Error{Code::kInvalid, ELOOP, given + ": too many levels of symbolic links"});
}

}  // namespace

Result<OutputFile> OutputFile::Open(const std::string& path) {
  OutputFile out;
  if (path.empty() || path == "-") {
    out.name_ = "standard output";
    return out;
  }
  out.name_ = path;
  ASSIGN_OR_RETURN(Target target, ResolveTarget(path));
  struct stat st;
  bool exists = stat(target.path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return FailErrno(path);
  if (exists && S_ISDIR(st.st_mode))
    return Fail(Error{Code::kInvalid, EISDIR, path + ": is a directory"});
  if (target.magic || (exists && !S_ISREG(st.st_mode))) {
    // A device, FIFO, socket or descriptor: written where it is, never replaced.
    int flags = O_WRONLY | O_CLOEXEC | (exists && S_ISREG(st.st_mode) ? O_TRUNC : 0);
    int fd = ::open(path.c_str(), flags);
    if (fd < 0) return FailErrno(path);
    out.fd_.Reset(fd);
    struct stat opened;
    out.regular_ = fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode);
    return out;
  }
  std::filesystem::path dest(target.path);
  std::string dir = dest.has_parent_path() ? dest.parent_path().string() : ".";
  WatchSignals();
  for (int attempt = 0; attempt < 16 && !out.fd_.valid(); ++attempt) {
    std::string tmp = dir + "/." + dest.filename().string() + ".imagefs-" + RandomSuffix();
    // Blocked from create to tracking: a signal in between would leave the file behind.
    sigset_t block, old;
    sigemptyset(&block);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&block, sig);
    sigprocmask(SIG_BLOCK, &block, &old);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    int err = errno;
    if (fd >= 0) {
      out.fd_.Reset(fd);
      out.tmp_ = tmp;
      TrackTmp(tmp);
    }
    sigprocmask(SIG_SETMASK, &old, nullptr);
    if (fd < 0 && err == EEXIST) continue;
    if (fd < 0 && err == EACCES && exists) {
      // A file we may write in a directory we may not: written in place, as cp does
      // (not atomic, but never removed either).
      int in_place = ::open(target.path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
      if (in_place < 0) return FailErrno(path);
      out.fd_.Reset(in_place);
      out.regular_ = true;
      return out;
    }
    if (fd < 0) return Fail(Error::FromErrno(path + ": cannot create a file in " + dir, err));
  }
  if (!out.fd_.valid()) return Fail(Code::kIo, path + ": cannot create a temporary file in " + dir);
  if (exists) {
    // Replacing a file keeps what it was: its mode, and its owner where we may set it.
    (void)fchmod(out.fd_.get(), st.st_mode & 07777);
    if (fchown(out.fd_.get(), st.st_uid, st.st_gid) != 0) {
      // Not ours to give away (not root): the new file is the writer's, as with cp.
    }
  }
  out.target_ = target.path;
  out.regular_ = true;
  return out;
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : name_(std::move(other.name_)),
      fd_(std::move(other.fd_)),
      target_(std::move(other.target_)),
      tmp_(std::exchange(other.tmp_, std::string())),
      regular_(other.regular_) {}

OutputFile::~OutputFile() {
  if (tmp_.empty()) return;
  ::unlink(tmp_.c_str());
  UntrackTmp();
}

int OutputFile::fd() const { return fd_.valid() ? fd_.get() : STDOUT_FILENO; }

Status OutputFile::Commit() {
  // Devices, pipes and sockets have nothing to sync (fsync says EINVAL): not an error.
  if (fsync(fd()) != 0 && (regular_ || (errno != EINVAL && errno != EROFS && errno != ENOTSUP))) {
    return FailErrno("fsync " + name_);
  }
  if (tmp_.empty()) return {};
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) return FailErrno("rename to " + name_);
  tmp_.clear();
  UntrackTmp();
  std::string dir = std::filesystem::path(target_).has_parent_path()
                        ? std::filesystem::path(target_).parent_path().string()
                        : ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace imagefs

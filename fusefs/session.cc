#include "fusefs/session.h"

#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "fusefs/service_notify.h"
#include "graph/base/digest.h"
#include "graph/base/fs_util.h"
#include "graph/base/log.h"

namespace imagefs {
namespace {

// A mountpoint left by a killed daemon answers ENOTCONN: detach it before mounting again.
// statfs asks the file system every time; a stat may be answered from the kernel's cache.
Status RecoverDeadMount(const std::string& mountpoint) {
  struct stat st;
  struct statfs fs;
  if (statfs(mountpoint.c_str(), &fs) == 0 && stat(mountpoint.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return Fail(Code::kInvalid, "mountpoint " + mountpoint + " is not a directory");
    return {};
  }
  if (errno != ENOTCONN) return FailErrno("mountpoint " + mountpoint);
  FusefsLog()->warn("mount {}: stale FUSE mount (transport endpoint not connected): detaching it",
                    mountpoint);
  if (umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    pid_t pid = fork();
    if (pid == 0) {
      execlp("fusermount3", "fusermount3", "-u", "-z", mountpoint.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
  }
  if (stat(mountpoint.c_str(), &st) != 0)
    return FailErrno("mountpoint " + mountpoint + " (after detaching)");
  return {};
}

Status ParseOptions(MountOptions& options, std::string& fuse_opts) {
  for (const std::string& group : options.options) {
    std::stringstream ss(group);
    std::string opt;
    while (std::getline(ss, opt, ',')) {
      if (opt.empty()) continue;
      auto number = [&](size_t skip) -> Result<unsigned> {
        try {
          size_t used = 0;
          unsigned long v = std::stoul(opt.substr(skip), &used);
          if (used != opt.size() - skip || v > UINT32_MAX - 1) throw std::invalid_argument(opt);
          return static_cast<unsigned>(v);
        } catch (const std::exception&) {
          return Fail(Code::kInvalid, "invalid mount option \"" + opt + "\"");
        }
      };
      if (opt == "share_credentials") {
        options.fs.share_credentials = true;
      } else if (opt == "stream_unverified") {
        // Read by the CLI before the mount (fetch_commands.cc): not libfuse's.
      } else if (opt.rfind("uid=", 0) == 0) {
        ASSIGN_OR_RETURN(options.fs.uid, number(4));
      } else if (opt.rfind("gid=", 0) == 0) {
        ASSIGN_OR_RETURN(options.fs.gid, number(4));
      } else {
        if (opt == "allow_other") options.fs.others_may_enter = true;
        fuse_opts += "," + opt;
      }
    }
  }
  return {};
}

// The kernel reads ahead only as far as the mount's bdi allows (128 KiB by default):
// raise it to 1 MiB so that sequential reads arrive as 1 MiB requests. Found through
// mountinfo (a stat of the mountpoint would call into this not-yet-serving daemon).
void RaiseReadahead(const std::string& mountpoint) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  std::string target = std::filesystem::absolute(mountpoint).lexically_normal().string();
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point != target) continue;
    std::ofstream ra("/sys/class/bdi/" + dev + "/read_ahead_kb");
    ra << 1024;
    ra.flush();
    if (!ra) FusefsLog()->debug("mount {}: cannot raise readahead (not root?)", mountpoint);
    return;
  }
}

struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};

}  // namespace

// Every layer served keeps its blob open (fd and index cached per DiffID): a store of
// thousands of layers needs more than the usual 1024 descriptors.
static void RaiseFileLimit() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
      FusefsLog()->debug("raise RLIMIT_NOFILE: {}", std::strerror(errno));
  }
}

namespace {

using SessionPtr = std::unique_ptr<fuse_session, SessionDeleter>;

Result<SessionPtr> NewSession(ImageFs& fs, const std::string& fuse_opts) {
  std::vector<std::string> argv_storage = {"imagefs", "-o", fuse_opts};
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  SessionPtr se(fuse_session_new(&args, &ImageFs::Ops(), sizeof(fuse_lowlevel_ops), &fs));
  fuse_opt_free_args(&args);  // libfuse may have copied them while parsing
  if (!se) return Fail(Code::kInvalid, "cannot start a FUSE session (bad -o option?)");
  fs.SetSession(se.get());
  return se;
}

Status MountSession(fuse_session* se, const std::string& mountpoint) {
  if (fuse_session_mount(se, mountpoint.c_str()) != 0) {
    return Fail(Code::kIo,
                "cannot mount on " + mountpoint +
                    " (is /dev/fuse usable? allow_other needs user_allow_other in /etc/fuse.conf)");
  }
  return {};
}

int Loop(fuse_session* se) {
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 0);
  fuse_loop_cfg_set_max_threads(config, 16);
  fuse_loop_cfg_set_idle_threads(config, 4);
  int rc = fuse_session_loop_mt(se, config);
  fuse_loop_cfg_destroy(config);
  return rc;
}

// Where the kernel opens files itself it sends uploads no FLUSH and no RELEASE, so import/
// is served by a second session with the daemon's own opens, mounted inside the store
// (private to the mounter, as import/ is) and reached through the symlink MOUNT/import.
class ImportMount {
 public:
  static Result<std::unique_ptr<ImportMount>> Start(Store& store, const std::string& mountpoint,
                                                    const FsOptions& main_options) {
    std::unique_ptr<ImportMount> m(new ImportMount);
    std::string abs = std::filesystem::absolute(mountpoint).lexically_normal().string();
    m->path_ = (store.root() / "mounts" / Sha256::Of(abs).hex().substr(0, 16)).string();
    RETURN_IF_ERROR(MkdirAll(m->path_));
    RETURN_IF_ERROR(RecoverDeadMount(m->path_));
    FsOptions options = main_options;
    options.import_only = true;
    options.kernel_opens = false;
    options.passthrough_min = 0;
    ASSIGN_OR_RETURN(m->fs_, ImageFs::Create(store, options));
    ASSIGN_OR_RETURN(
        m->se_, NewSession(*m->fs_, "default_permissions,fsname=imagefs-import,subtype=imagefs"));
    RETURN_IF_ERROR(MountSession(m->se_.get(), m->path_));
    m->mounted_ = true;
    return m;
  }
  ~ImportMount() { Stop(); }

  const std::string& path() const { return path_; }
  std::shared_ptr<ImportDir> import_dir() const { return fs_->import_dir(); }
  // After daemonizing: threads start here.
  void Serve() {
    // libfuse's loop waits on a semaphore for its workers: a signal interrupts that wait,
    // and the loop, seeing the session exited, cancels its workers (Stop relies on it).
    struct sigaction wake {};
    wake.sa_handler = [](int) {};
    sigaction(SIGUSR1, &wake, nullptr);
    loop_ = std::thread([this] {
      Loop(se_.get());
      done_ = true;
    });
  }
  // Ends the loop before unmounting: an unmount is lazy, so with a shell still in the
  // directory it would not wake the loop's readers, and a join would wait forever.
  void Stop() {
    if (!mounted_) return;
    mounted_ = false;
    fuse_session_exit(se_.get());
    if (loop_.joinable()) {
      for (int i = 0; i < 100 && !done_;
           ++i) {  // until it is past its wait (a signal may land early)
        pthread_kill(loop_.native_handle(), SIGUSR1);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!done_) {
        FusefsLog()->error("import/: its loop did not stop; leaving it");
        loop_.detach();
        (void)fs_.release();  // still in use by the loop: never freed
        (void)se_.release();
        return;
      }
      loop_.join();
    }
    fs_->StopRequests();  // none are posted here (no registry/), but as for any ImageFs
    fuse_session_unmount(se_.get());
    ::rmdir(path_.c_str());
  }

 private:
  ImportMount() = default;
  std::string path_;
  std::unique_ptr<ImageFs> fs_;
  SessionPtr se_;
  std::thread loop_;
  std::atomic<bool> done_ = false;
  bool mounted_ = false;
};

}  // namespace

Result<int> RunMount(Store& store, MountOptions options) {
  RaiseFileLimit();
  // noatime: nothing to record in an immutable tree, and the relatime check costs warm
  // reads of a cached file about 15% (8 cats of a 256 MiB file: 217-234 ms against 257-292).
  std::string fuse_opts = "default_permissions,noatime,fsname=imagefs,subtype=imagefs";
  if (auto st = ParseOptions(options, fuse_opts); !st) return Fail(st.error());
  if (auto st = RecoverDeadMount(options.mountpoint); !st) return Fail(st.error());
  std::unique_ptr<ImportMount> import;
  if (options.fs.kernel_opens) {
    auto started = ImportMount::Start(store, options.mountpoint, options.fs);
    if (!started) return Fail(started.error().WithContext("import/"));
    import = std::move(*started);
    options.fs.import_link = import->path();
    // Nothing in it is writable now (uploads go to the other mount): the kernel refuses
    // writes at open, before they reach the daemon it no longer asks about opens.
    fuse_opts += ",ro";
  }
  auto fs =
      ImageFs::Create(store, options.fs, options.remote, import ? import->import_dir() : nullptr);
  if (!fs) return Fail(fs.error());
  auto se = NewSession(**fs, fuse_opts);
  if (!se) return Fail(se.error());
  if (fuse_set_signal_handlers(se->get()) != 0)
    return Fail(Error::Make(Code::kIo, "cannot set signal handlers"));
  if (auto st = MountSession(se->get(), options.mountpoint); !st) {
    fuse_remove_signal_handlers(se->get());
    return Fail(st.error());
  }
  if (auto st = (*fs)->passthrough().Attach(se->get()); !st)
    FusefsLog()->warn("passthrough off: {}", st.error().msg);
  FusefsLog()->info("mounted {} on {}", store.root().string(), options.mountpoint);
  RaiseReadahead(options.mountpoint);
  if (options.daemon) {
    // The mount is up: the parent exits 0 now, the child serves (threads start after this).
    if (fuse_daemonize(0) != 0) return Fail(Code::kIo, "cannot go to the background");
    InitLogging(Logger("fusefs")->level(), /*use_syslog=*/true);
  }
  if (auto st = (*fs)->WatchStore(); !st) {
    FusefsLog()->warn(
        "store watcher off, the store's directories are looked up on every access: {}",
        st.error().msg);
  }
  if (import) import->Serve();
  int rc;
  {
    ServiceNotifier notifier(options.mountpoint);
    rc = Loop(se->get());
  }
  (*fs)->StopWatchingStore();
  // Requests waiting on a registry answer (cancelled) while the session can still reply.
  if (options.remote != nullptr) options.remote->Close();
  (*fs)->StopRequests();
  fuse_session_unmount(se->get());
  if (import) import->Stop();
  fuse_remove_signal_handlers(se->get());
  FusefsLog()->info("unmounted {}", options.mountpoint);
  // libfuse returns the signal that ended the loop: SIGINT/SIGTERM/SIGHUP are a clean stop.
  return rc == 0 || rc == SIGINT || rc == SIGTERM || rc == SIGHUP ? 0 : 1;
}

}  // namespace imagefs

#include "fusefs/store_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstring>

#include "graph/base/log.h"

namespace imagefs {

Status StoreWatcher::Start(const Store& store) {
  int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return FailErrno("inotify_init1");
  inotify_.Reset(fd);
  if (inotify_add_watch(fd, store.root().c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    return FailErrno("inotify_add_watch " + store.root().string());
  }
  int efd = eventfd(0, EFD_CLOEXEC);
  if (efd < 0) return FailErrno("eventfd");
  stop_.Reset(efd);
  thread_ = std::thread([this] { Run(); });
  return {};
}

StoreWatcher::~StoreWatcher() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  if (write(stop_.get(), &one, sizeof one) != sizeof one) {
    Logger("fusefs")->error("stop store watcher: {}", std::strerror(errno));
  }
  thread_.join();
}

void StoreWatcher::Run() {
  alignas(inotify_event) char buf[4096];
  while (true) {
    pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      FusefsLog()->error("store watcher: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    bool changed = false;
    ssize_t n;
    while ((n = read(inotify_.get(), buf, sizeof buf)) > 0) {
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        if (ev->len > 0 && std::strcmp(ev->name, "generation") == 0) changed = true;
        if (ev->mask & IN_Q_OVERFLOW) changed = true;
        p += sizeof(inotify_event) + ev->len;
      }
    }
    if (changed) changed_();
  }
}

}  // namespace imagefs

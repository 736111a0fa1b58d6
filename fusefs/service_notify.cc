#include "fusefs/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "graph/base/log.h"

namespace imagefs {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;

void Send(const std::string& socket_path, const std::string& message) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // an abstract socket
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size());
  if (sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
             len) < 0)
    Logger("fusefs")->warn("cannot notify the service manager at {}: {}", socket_path,
                           std::strerror(errno));
  close(fd);
}

}  // namespace

ServiceNotifier::ServiceNotifier(std::string mountpoint) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr || *env == '\0') return;
  socket_ = env;
  waiter_ = std::thread([this, mountpoint = std::move(mountpoint)] {
    auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    struct statfs fs;
    while (statfs(mountpoint.c_str(), &fs) != 0 || fs.f_type != kFuseSuperMagic) {
      if (stopping_ || std::chrono::steady_clock::now() > give_up) return;
      usleep(10000);
    }
    Send(socket_, "READY=1\nMAINPID=" + std::to_string(getpid()));
  });
}

ServiceNotifier::~ServiceNotifier() {
  stopping_ = true;
  if (waiter_.joinable()) waiter_.join();
  if (!socket_.empty()) Send(socket_, "STOPPING=1");
}

}  // namespace imagefs

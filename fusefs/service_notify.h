// systemd's readiness protocol (Type=notify) without libsystemd: "READY=1" sent to the
// datagram socket named by $NOTIFY_SOCKET once the mount answers, "STOPPING=1" when it
// goes. Without $NOTIFY_SOCKET (not started by systemd) nothing is sent.
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace imagefs {

class ServiceNotifier {
 public:
  // Starts waiting, on its own thread, for the mount to answer a statfs (which needs the
  // session loop that starts after this), then says READY=1.
  explicit ServiceNotifier(std::string mountpoint);
  ~ServiceNotifier();  // says STOPPING=1 and joins
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

 private:
  std::string socket_;
  std::atomic<bool> stopping_ = false;
  std::thread waiter_;
};

}  // namespace imagefs

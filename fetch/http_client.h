// HttpClient: one blocking HTTP request at a time over libcurl (an easy handle per call),
// with the body either collected (bounded) or streamed to a sink. Redirects are
// followed (http/https only); curl does not send our Authorization header to another
// host. Thread-compatible: use one per thread or guard it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "graph/base/error.h"

namespace imagefs::fetch {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD or POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string ca_file;               // extra CA bundle (the system's are always used)
  std::string body = {};             // POST only (a token request's form); never logged
  // When set, aborts the transfer within a second, even while no byte arrives.
  const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // of the final response; names lowercased
  std::string body;                            // when no sink was given
  std::string effective_url;
};

// Receives body bytes as they arrive; an error aborts the transfer.
using BodySink = std::function<Status(const char* data, size_t len)>;

class HttpClient {
 public:
  // Called when each response's headers are complete (the last call before any body
  // bytes is the final response's), so a sink can tell an error page or a wrong range
  // from data. Header names are lowercased.
  using StatusHook =
      std::function<void(long status, const std::map<std::string, std::string>& headers)>;

  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  // max_body bounds a collected body (hostile servers); a sink gets the whole stream.
  // Thread-safe. Requests reuse idle curl handles, and with them their open connections
  // (and TLS sessions): a registry is not dialled, or handshaken with, once per request.
  Result<HttpResponse> Perform(const HttpRequest& request, const BodySink* sink = nullptr,
                               uint64_t max_body = 8u << 20, const StatusHook* hook = nullptr);
  // Ends every request in flight within a second (kCancelled), and any made later at once.
  void Close() { closed_ = true; }
  bool closed() const { return closed_; }

 private:
  void* Take();           // a CURL*, idle or new
  void Give(void* curl);  // back to the idle ones (or freed beyond kMaxIdle)

  std::atomic<bool> closed_{false};
  std::mutex idle_mu_;
  std::vector<void*> idle_;  // CURL*; guarded by idle_mu_
};

}  // namespace imagefs::fetch

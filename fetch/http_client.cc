#include "fetch/http_client.h"

#include <curl/curl.h>

#include <cctype>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace imagefs::fetch {
namespace {

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct CurlCall {  // what the callbacks of one curl_easy_perform share
  HttpResponse* response;
  const BodySink* sink;
  uint64_t max_body;
  const HttpClient::StatusHook* hook;
  Error error{Code::kOk, 0, ""};
  long status = 0;
};

struct CancelFlags {
  const std::atomic<bool>* request;
  const std::atomic<bool>* client;
};

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
  const auto* flags = static_cast<const CancelFlags*>(user);
  bool cancelled = flags->client->load() || (flags->request != nullptr && flags->request->load());
  return cancelled ? 1 : 0;  // non-zero aborts (CURLE_ABORTED_BY_CALLBACK)
}

size_t OnBody(char* data, size_t size, size_t count, void* user) noexcept {
  auto* t = static_cast<CurlCall*>(user);
  size_t len = size * count;
  try {
    if (t->sink != nullptr) {
      if (auto st = (*t->sink)(data, len); !st) {
        t->error = st.error();
        return 0;  // aborts the transfer
      }
    } else {
      if (t->response->body.size() + len > t->max_body) {
        t->error = Error::Make(
            Code::kInvalid, "response body larger than " + std::to_string(t->max_body) + " bytes");
        return 0;
      }
      t->response->body.append(data, len);
    }
    return len;
  } catch (...) {
    t->error = Error::Make(Code::kIo, "out of memory reading a response");
    return 0;
  }
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) noexcept {
  auto* t = static_cast<CurlCall*>(user);
  size_t len = size * count;
  try {
    std::string line(data, len);
    if (line.rfind("HTTP/", 0) == 0) {
      t->response->headers.clear();  // a new response (after a redirect or 100-continue)
      size_t space = line.find(' ');
      t->status =
          space == std::string::npos ? 0 : std::strtol(line.c_str() + space + 1, nullptr, 10);
      return len;
    }
    if (line == "\r\n" || line == "\n") {
      if (t->hook != nullptr) (*t->hook)(t->status, t->response->headers);
      return len;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) return len;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.pop_back();
    auto& slot = t->response->headers[name];
    slot = slot.empty() ? value : slot + ", " + value;
    return len;
  } catch (...) {
    return 0;
  }
}

}  // namespace

HttpClient::HttpClient() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

HttpClient::~HttpClient() {
  for (void* c : idle_) curl_easy_cleanup(static_cast<CURL*>(c));
}

// Enough for the transfers a pull runs at once plus the mount's lookups.
constexpr size_t kMaxIdle = 16;

void* HttpClient::Take() {
  {
    std::lock_guard lock(idle_mu_);
    if (!idle_.empty()) {
      void* c = idle_.back();
      idle_.pop_back();
      // Options back to their defaults; the connection cache and TLS sessions stay.
      curl_easy_reset(static_cast<CURL*>(c));
      return c;
    }
  }
  CURL* c = curl_easy_init();
  if (c == nullptr) throw std::bad_alloc();
  return c;
}

void HttpClient::Give(void* c) {
  std::lock_guard lock(idle_mu_);
  if (idle_.size() < kMaxIdle) {
    idle_.push_back(c);
  } else {
    curl_easy_cleanup(static_cast<CURL*>(c));
  }
}

Result<HttpResponse> HttpClient::Perform(const HttpRequest& request, const BodySink* sink,
                                         uint64_t max_body, const StatusHook* hook) {
  auto give = [this](CURL* c) { Give(c); };
  std::unique_ptr<CURL, decltype(give)> curl(static_cast<CURL*>(Take()), give);
  HttpResponse response;
  CurlCall transfer{&response, sink, max_body, hook};
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  for (const std::string& h : request.headers) {
    curl_slist* next = curl_slist_append(headers.get(), h.c_str());
    if (next == nullptr) throw std::bad_alloc();
    (void)headers.release();
    headers.reset(next);
  }
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  if (!request.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, request.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  if (request.method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.c_str());
  }
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // A stalled server (under 1 KiB/s for a minute) is an error, not a hang.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "imagefs/0.1");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &transfer);
  // Called about once a second, even while no byte arrives: a stalled server cannot hold a
  // cancelled request (or a mount stopping) for curl's low-speed minute.
  CancelFlags cancel{request.cancel, &closed_};
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &cancel);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  if (OnProgress(&cancel, 0, 0, 0, 0) != 0)
    return Fail(Code::kCancelled, request.method + " " + request.url + ": cancelled");
  CURLcode rc = curl_easy_perform(c);
  if (!transfer.error.msg.empty()) return Fail(transfer.error);
  if (rc == CURLE_ABORTED_BY_CALLBACK)
    return Fail(Code::kCancelled, request.method + " " + request.url + ": cancelled");
  if (rc != CURLE_OK) {
    return Fail(Code::kNetwork, request.method + " " + request.url + ": " + curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  char* effective = nullptr;
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective);
  if (effective != nullptr) response.effective_url = effective;
  return response;
}

}  // namespace imagefs::fetch

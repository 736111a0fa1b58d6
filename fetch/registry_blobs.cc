// RegistryClient's blob transfers: whole blobs (resumed, verified), ranges of them, and
// small blobs held in memory.
#include <algorithm>
#include <optional>

#include "fetch/registry_client.h"
#include "fetch/registry_errors.h"
#include "graph/base/log.h"

namespace imagefs::fetch {
namespace {

constexpr uint64_t kMaxConfigBytes = 16u << 20;

// "bytes START-END/TOTAL" starting where we asked.
bool RangeStartsAt(const std::map<std::string, std::string>& headers, uint64_t start) {
  auto it = headers.find("content-range");
  if (it == headers.end()) return false;
  unsigned long long s = 0;
  return std::sscanf(it->second.c_str(), "bytes %llu-", &s) == 1 && s == start;
}

}  // namespace

Status RegistryClient::GetBlob(const Reference& ref, const Descriptor& blob, const BodySink& sink,
                               const std::atomic<bool>* cancel,
                               RetryPolicy::Attempts* shared_attempts) {
  std::string what = "blob " + blob.digest.str() + " of " + ref.Name();
  const bool sized = blob.size != kUnknownSize;
  Sha256 hash;
  uint64_t received = 0;  // verified bytes handed to sink
  uint64_t skip = 0;      // bytes of a restarted body we already have
  long status = 0;
  std::string error_body;
  std::optional<Error> range_error;
  BodySink route = [&](const char* data, size_t len) -> Status {
    if (status != 200 && status != 206) {
      if (error_body.size() < 65536) error_body.append(data, len);
      return {};
    }
    if (range_error) return Fail(*range_error);
    if (cancel != nullptr && cancel->load()) return Fail(Code::kCancelled, what + ": cancelled");
    size_t drop = static_cast<size_t>(std::min<uint64_t>(skip, len));
    skip -= drop;
    data += drop;
    len -= drop;
    if (len == 0) return {};
    if (sized && received + len > blob.size) {
      return Fail(Code::kCorrupt, what + ": more than the " + std::to_string(blob.size) +
                                      " bytes its descriptor says");
    }
    received += len;
    hash.Update(data, len);
    return sink(data, len);
  };
  HttpClient::StatusHook hook = [&](long s, const std::map<std::string, std::string>& headers) {
    status = s;
    error_body.clear();
    range_error.reset();
    if (s == 200) skip = received;  // the whole body is coming again
    if (s == 206 && !RangeStartsAt(headers, received)) {
      range_error =
          Error::Make(Code::kNetwork, what + ": the server answered a resume with the wrong range");
    }
  };
  std::optional<Error> last;
  std::string mirror_errors;
  std::optional<RetryPolicy::Attempts> own_attempts;
  if (shared_attempts == nullptr) own_attempts.emplace(retry_);
  RetryPolicy::Attempts& attempts = shared_attempts != nullptr ? *shared_attempts : *own_attempts;
  auto endpoints = config_.EndpointsFor(ref.domain);
  for (size_t e = 0; e < endpoints.size(); ++e) {
    const Endpoint& endpoint = endpoints[e];
    // A mirror that fails is left at once for the next endpoint; the budget is the
    // registry's (the last endpoint), so a dead mirror cannot spend it.
    const bool last_endpoint = e + 1 == endpoints.size();
    for (;;) {
      HttpRequest get{"GET",
                      endpoint.base_url + "/v2/" + ref.path + "/blobs/" + blob.digest.str(),
                      {},
                      endpoint.ca_file};
      get.cancel = cancel;
      if (received > 0) get.headers.push_back("Range: bytes=" + std::to_string(received) + "-");
      uint64_t before = received;
      skip = 0;
      auto r = Exchange(endpoint, ref, get, &route, 0, &hook);
      if (r && (r->status == 200 || r->status == 206)) {
        if (!sized || received == blob.size) {
          if (hash.Finish() != blob.digest) return Fail(Code::kCorrupt, what + ": digest mismatch");
          return {};
        }
        last = Error::Make(Code::kNetwork, what + ": the body ended after " +
                                               std::to_string(received) + " of " +
                                               std::to_string(blob.size) + " bytes");
      } else if (r) {
        r->body = error_body;
        last = StatusError(*r, what);
      } else {
        last = r.error();
      }
      // A body cut short (200/206) is resumed; other failures as any request.
      bool retry = RetryPolicy::Retryable(r) || (r && (r->status == 200 || r->status == 206));
      if (cancel != nullptr && cancel->load()) return Fail(Code::kCancelled, what + ": cancelled");
      if (received > before) attempts.StartOver();
      if (!retry || !last_endpoint || !attempts.Again(RetryPolicy::RetryAfterSeconds(r), cancel))
        break;
      FetchLog()->warn("retry GET {} attempt={} have={}/{}: {}", get.url, attempts.failures(),
                       received, blob.size, last->msg);
    }
    NoteMirrorFailure(endpoint, *last, mirror_errors);
  }
  return Fail(WithMirrorErrors(*last, mirror_errors));
}

bool RegistryClient::RangesRefused(const Reference& ref) {
  std::lock_guard lock(mu_);
  return no_ranges_.count(ref.domain) > 0;
}

Result<std::string> RegistryClient::GetBlobRange(const Reference& ref, const Descriptor& blob,
                                                 uint64_t offset, uint64_t length,
                                                 const std::atomic<bool>* cancel) {
  std::string what = "blob " + blob.digest.str() + " of " + ref.Name() + " bytes " +
                     std::to_string(offset) + "+" + std::to_string(length);
  if (length == 0 || length > kMaxRangeBytes ||
      (blob.size != kUnknownSize && (offset > blob.size || length > blob.size - offset))) {
    return Fail(Code::kInvalid, what + ": outside the blob of " + std::to_string(blob.size) +
                                    " bytes or too large");
  }
  if (RangesRefused(ref)) {
    return Fail(Code::kUnsupported, what + ": " + ref.domain + " does not serve ranges");
  }
  std::string out;
  long status = 0;
  std::string error_body;
  std::optional<Error> range_error;
  BodySink route = [&](const char* data, size_t len) -> Status {
    if (status == 200) return Fail(Code::kUnsupported, what + ": the registry sent the whole blob");
    if (status != 206) {
      if (error_body.size() < 65536) error_body.append(data, len);
      return {};
    }
    if (range_error) return Fail(*range_error);
    if (cancel != nullptr && cancel->load()) return Fail(Code::kCancelled, what + ": cancelled");
    if (out.size() + len > length) {
      return Fail(Code::kCorrupt, what + ": the server sent more than was asked for");
    }
    out.append(data, len);
    return {};
  };
  HttpClient::StatusHook hook = [&](long s, const std::map<std::string, std::string>& headers) {
    status = s;
    error_body.clear();
    range_error.reset();
    if (s == 206 && !RangeStartsAt(headers, offset + out.size())) {
      range_error = Error::Make(Code::kNetwork, what + ": the server answered another range");
    }
  };
  std::optional<Error> last;
  std::string mirror_errors;
  RetryPolicy::Attempts attempts = retry_.Start();
  auto endpoints = config_.EndpointsFor(ref.domain);
  for (size_t e = 0; e < endpoints.size(); ++e) {
    const Endpoint& endpoint = endpoints[e];
    const bool last_endpoint = e + 1 == endpoints.size();
    for (;;) {
      uint64_t from = offset + out.size();
      HttpRequest get{
          "GET",
          endpoint.base_url + "/v2/" + ref.path + "/blobs/" + blob.digest.str(),
          {"Range: bytes=" + std::to_string(from) + "-" + std::to_string(offset + length - 1)},
          endpoint.ca_file};
      get.cancel = cancel;
      size_t before = out.size();
      status = 0;
      auto r = Exchange(endpoint, ref, get, &route, 0, &hook);
      if (status == 200 && last_endpoint) {
        // Detected once per registry: from now on its layers are taken whole.
        std::lock_guard lock(mu_);
        no_ranges_.insert(ref.domain);
        FetchLog()->info("{} answers Range requests with whole blobs: layers are taken whole",
                         ref.domain);
        return Fail(Code::kUnsupported, what + ": " + ref.domain + " does not serve ranges");
      }
      if (r && r->status == 206 && out.size() == length) return out;
      if (r && r->status == 206) {
        last = Error::Make(Code::kNetwork, what + ": the body ended after " +
                                               std::to_string(out.size()) + " bytes");
      } else if (r) {
        r->body = error_body;
        last = StatusError(*r, what);
      } else {
        last = r.error();
      }
      if (last->code == Code::kCorrupt || last->code == Code::kCancelled) return Fail(*last);
      bool retry = RetryPolicy::Retryable(r) || (r && r->status == 206);
      if (cancel != nullptr && cancel->load()) return Fail(Code::kCancelled, what + ": cancelled");
      if (out.size() > before) attempts.StartOver();
      if (!retry || !last_endpoint || !attempts.Again(RetryPolicy::RetryAfterSeconds(r), cancel))
        break;
      FetchLog()->warn("retry GET {} range attempt={} have={}/{}: {}", get.url, attempts.failures(),
                       out.size(), length, last->msg);
    }
    NoteMirrorFailure(endpoint, *last, mirror_errors);
  }
  return Fail(WithMirrorErrors(*last, mirror_errors));
}

Result<std::string> RegistryClient::GetSmallBlob(const Reference& ref, const Descriptor& blob) {
  if (blob.size > kMaxConfigBytes) {
    return Fail(Code::kInvalid, "blob " + blob.digest.str() + " of " + ref.Name() + ": " +
                                    std::to_string(blob.size) + " bytes is too large for a config");
  }
  std::string out;
  BodySink sink = [&](const char* data, size_t len) -> Status {
    out.append(data, len);
    return {};
  };
  // Wrong bytes in memory cost nothing to drop: fetch again, within the same budget.
  RetryPolicy::Attempts attempts = retry_.Start();
  for (;;) {
    out.clear();
    Status st = GetBlob(ref, blob, sink, nullptr, &attempts);
    if (st) return out;
    if (st.error().code != Code::kCorrupt || !attempts.Refetch()) return Fail(st.error());
    FetchLog()->warn("retry blob {} refetch={}: {}", blob.digest.str(), attempts.refetches(),
                     st.error().msg);
  }
}

}  // namespace imagefs::fetch

// RegistryClient: the OCI distribution (registry v2) API for pulls. Per registry it tries
// the configured mirrors first and falls back to the registry itself; it answers auth
// challenges (Bearer tokens, tracked to their expiry and renewed, for a password or an
// identity token through the OAuth2 refresh grant; Basic) instead of sending credentials
// up front, and after a 401 or 403 re-reads the credentials and authenticates once more.
// Network errors, 5xx and 429 (honouring Retry-After) are retried with exponential
// backoff; a blob transfer that drops is resumed with a Range request.
// Every manifest is checked against its digest and cached by it; every blob is hashed as
// it streams and refused on mismatch. Thread-safe: mu_ guards the auth and manifest caches
// and is never held across network I/O.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "fetch/auth_challenge.h"
#include "fetch/credentials.h"
#include "fetch/fetch_config.h"
#include "fetch/http_client.h"
#include "fetch/retry_policy.h"
#include "graph/manifest.h"
#include "graph/reference.h"

namespace imagefs::fetch {

struct FetchedManifest {
  std::string bytes;
  std::string media_type;
  Digest digest;
  Manifest manifest;
};

class RegistryClient {
 public:
  // cache_dir, when given, keeps manifests by digest across processes.
  RegistryClient(FetchConfig config, CredentialSource credentials,
                 std::filesystem::path cache_dir = {});

  const FetchConfig& config() const { return config_; }
  const RetryPolicy& retry_policy() const { return retry_; }

  // The digest a tag names now (a HEAD request where the registry allows it); a digest
  // reference answers itself.
  Result<Digest> ResolveDigest(const Reference& ref);
  // The manifest a reference names, verified against its digest.
  Result<FetchedManifest> GetManifest(const Reference& ref);
  // Whether ref's repository exists (its tag list can be read).
  Result<bool> RepositoryExists(const Reference& ref);
  // Streams a blob to sink, verifying size and digest (a size of kUnknownSize: schema1
  // layers, digest only). cancel, when set, aborts it.
  static constexpr uint64_t kUnknownSize = UINT64_MAX;
  // attempts, when given, is the caller's budget (see RetryPolicy), shared with its own retries.
  Status GetBlob(const Reference& ref, const Descriptor& blob, const BodySink& sink,
                 const std::atomic<bool>* cancel = nullptr,
                 RetryPolicy::Attempts* attempts = nullptr);
  // A small blob (an image config), verified, in memory.
  Result<std::string> GetSmallBlob(const Reference& ref, const Descriptor& blob);
  // Bytes [offset, offset + length) of a blob (length at most kMaxRangeBytes), in memory and
  // not verified (the caller verifies what it reads: a chunk, a TOC). kUnsupported when the
  // registry answers a Range request with the whole blob (200): the caller takes the whole
  // layer instead, and RangesRefused(ref) says so from then on for the registry, without
  // another request. A body cut short is resumed like GetBlob's.
  static constexpr uint64_t kMaxRangeBytes = 256ull << 20;
  Result<std::string> GetBlobRange(const Reference& ref, const Descriptor& blob, uint64_t offset,
                                   uint64_t length, const std::atomic<bool>* cancel = nullptr);
  bool RangesRefused(const Reference& ref);
  // Ends every request in flight, and any made later, with kCancelled (a mount stopping).
  void Close() { http_.Close(); }
  bool closed() const { return http_.closed(); }

 private:
  struct Auth {
    std::string header;  // "Bearer …" or "Basic …"; never logged
    std::chrono::steady_clock::time_point expires;
  };
  using Clock = std::chrono::steady_clock;

  // One request to one endpoint, answering an auth challenge once.
  Result<HttpResponse> Exchange(const Endpoint& endpoint, const Reference& ref, HttpRequest request,
                                const BodySink* sink, uint64_t max_body,
                                const HttpClient::StatusHook* hook);
  // Exchange with bounded retries and backoff on network errors, 5xx and 429.
  Result<HttpResponse> Retrying(const Endpoint& endpoint, const Reference& ref,
                                const HttpRequest& request, const BodySink* sink, uint64_t max_body,
                                const HttpClient::StatusHook* hook,
                                const std::atomic<bool>* cancel = nullptr);
  // cancel (and Close) also end a credential helper still running.
  Status Authenticate(const Endpoint& endpoint, const Reference& ref,
                      const std::string& challenge_header, const std::atomic<bool>* cancel);
  // A Bearer token for ref's pull scope: GET with Basic credentials (or none), or, for an
  // identity token, the OAuth2 refresh-token grant (POST).
  Result<Auth> FetchToken(const Endpoint& endpoint, const Reference& ref,
                          const AuthChallenge& bearer, const std::optional<Credentials>& creds);
  std::string CredentialDomain(const Endpoint& endpoint, const Reference& ref) const;
  Result<FetchedManifest> DecodeManifest(std::string bytes, const std::string& content_type,
                                         const Reference& ref,
                                         const std::optional<Digest>& expected,
                                         const std::string& header_digest);
  std::optional<FetchedManifest> CachedManifest(const Digest& digest);
  void CacheManifest(const FetchedManifest& m);

  const FetchConfig config_;
  const CredentialSource credentials_;
  const std::filesystem::path cache_dir_;
  const RetryPolicy retry_;
  HttpClient http_;
  std::mutex mu_;
  std::map<std::string, Auth> auth_;               // by "host repo"; guarded by mu_
  std::map<std::string, std::string> challenges_;  // last WWW-Authenticate by host; guarded by mu_
  std::map<std::string, FetchedManifest> manifests_;  // by digest; guarded by mu_
  std::set<std::string> no_ranges_;                   // registries answering 200; guarded by mu_
};

}  // namespace imagefs::fetch

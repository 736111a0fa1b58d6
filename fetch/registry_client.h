// RegistryClient: reads manifests and blobs of a registry (OCI distribution API v2).
// Every manifest is checked against its digest (the one asked for, or the registry's
// Docker-Content-Digest), every blob is hashed as it streams and refused on mismatch.
// Today it speaks to registries that allow anonymous reads; token and basic auth come
// with the rest of the fetch issue (a 401 is reported as such).
#pragma once

#include <string>

#include "fetch/http_client.h"
#include "fetch/manifest.h"
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
  explicit RegistryClient(HttpClient& http) : http_(http) {}

  // https://registry-1.docker.io for docker.io; plain http for loopback registries
  // (127.0.0.0/8, localhost, ::1), as Docker allows without configuration.
  static std::string BaseUrl(const std::string& domain);

  Result<FetchedManifest> GetManifest(const Reference& ref);
  // Streams a blob of ref's repository to sink, verifying digest and size.
  Status GetBlob(const Reference& ref, const Descriptor& blob, const BodySink& sink);

 private:
  HttpClient& http_;
};

}  // namespace imagefs::fetch

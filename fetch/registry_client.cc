#include "fetch/registry_client.h"

#include <nlohmann/json.hpp>

namespace imagefs::fetch {
namespace {

constexpr uint64_t kMaxManifestBytes = 4u << 20;

bool IsLoopback(const std::string& domain) {
  std::string host = domain;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// The registry's own words, from its JSON error body when it sent one.
std::string RegistryError(const HttpResponse& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  std::string out;
  if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
    for (const auto& e : j["errors"]) {
      if (!e.is_object()) continue;
      std::string code = e.value("code", std::string());
      std::string message = e.value("message", std::string());
      out += (out.empty() ? "" : "; ") + code + (message.empty() ? "" : ": " + message);
    }
  }
  return out.empty() ? "HTTP " + std::to_string(r.status) : out;
}

Error StatusError(const HttpResponse& r, const std::string& what) {
  Code code = Code::kNetwork;
  if (r.status == 404) code = Code::kNotFound;
  if (r.status == 401 || r.status == 403) code = Code::kAuth;
  std::string msg = what + ": " + RegistryError(r);
  if (r.status == 401) msg += " (authentication is not supported yet)";
  return Error::Make(code, msg);
}

}  // namespace

std::string RegistryClient::BaseUrl(const std::string& domain) {
  if (domain == "docker.io") return "https://registry-1.docker.io";
  return (IsLoopback(domain) ? "http://" : "https://") + domain;
}

Result<FetchedManifest> RegistryClient::GetManifest(const Reference& ref) {
  std::string selector = ref.digest ? ref.digest->str() : (ref.tag.empty() ? "latest" : ref.tag);
  std::string what = "manifest " + ref.String();
  HttpRequest request{"GET", BaseUrl(ref.domain) + "/v2/" + ref.path + "/manifests/" + selector,
                      {"Accept: " + AcceptHeader()}};
  ASSIGN_OR_RETURN(HttpResponse response, http_.Perform(request, nullptr, kMaxManifestBytes));
  if (response.status != 200) return Fail(StatusError(response, what));
  FetchedManifest out;
  out.bytes = std::move(response.body);
  std::string content_type = response.headers["content-type"];
  auto parsed = ParseManifest(out.bytes, content_type);
  if (!parsed) return Fail(parsed.error().WithContext(what));
  out.manifest = std::move(*parsed);
  out.media_type = out.manifest.media_type;
  ASSIGN_OR_RETURN(out.digest, ManifestDigest(out.bytes, out.media_type));
  if (ref.digest && out.digest != *ref.digest) {
    return Fail(Code::kCorrupt, what + ": content has digest " + out.digest.str() + ", not the one asked for");
  }
  if (auto header = response.headers["docker-content-digest"]; !header.empty() && header != out.digest.str()) {
    return Fail(Code::kCorrupt, what + ": content has digest " + out.digest.str() + ", the registry says " + header);
  }
  return out;
}

Status RegistryClient::GetBlob(const Reference& ref, const Descriptor& blob, const BodySink& sink) {
  std::string what = "blob " + blob.digest.str() + " of " + ref.Name();
  Sha256 hash;
  uint64_t received = 0;
  BodySink verify = [&](const char* data, size_t len) -> Status {
    received += len;
    if (received > blob.size) {
      return Fail(Code::kCorrupt, what + ": more than the " + std::to_string(blob.size) + " bytes its descriptor says");
    }
    hash.Update(data, len);
    return sink(data, len);
  };
  HttpRequest request{"GET", BaseUrl(ref.domain) + "/v2/" + ref.path + "/blobs/" + blob.digest.str(), {}};
  // An error body is not blob data: collect it apart and report it.
  std::string error_body;
  long status = 0;
  BodySink route = [&](const char* data, size_t len) -> Status {
    if (status != 200) {
      if (error_body.size() < 65536) error_body.append(data, len);
      return {};
    }
    return verify(data, len);
  };
  HttpClient::StatusHook hook = [&](long s) { status = s; };
  ASSIGN_OR_RETURN(HttpResponse response, http_.Perform(request, &route, 0, &hook));
  if (response.status != 200) {
    response.body = error_body;
    return Fail(StatusError(response, what));
  }
  if (received != blob.size) {
    return Fail(Code::kCorrupt, what + ": got " + std::to_string(received) + " of " + std::to_string(blob.size) + " bytes");
  }
  if (hash.Finish() != blob.digest) return Fail(Code::kCorrupt, what + ": digest mismatch");
  return {};
}

}  // namespace imagefs::fetch

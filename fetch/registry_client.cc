#include "fetch/registry_client.h"

#include <openssl/evp.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "fetch/auth_challenge.h"
#include "fetch/registry_errors.h"
#include "graph/base/fs_util.h"
#include "graph/base/log.h"

namespace imagefs::fetch {
namespace {

constexpr uint64_t kMaxManifestBytes = 4u << 20;

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// form: a form value, where '/' and ':' are escaped too.
std::string UrlEscape(const std::string& s, bool form = false) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (!form && (c == '/' || c == ':'))) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string Selector(const Reference& ref) {
  return ref.digest ? ref.digest->str() : (ref.tag.empty() ? "latest" : ref.tag);
}

}  // namespace

RegistryClient::RegistryClient(FetchConfig config, CredentialSource credentials,
                               std::filesystem::path cache_dir)
    : config_(std::move(config)),
      credentials_(std::move(credentials)),
      cache_dir_(std::move(cache_dir)),
      retry_(config_.retries, config_.retry_base_ms) {}

std::string RegistryClient::CredentialDomain(const Endpoint& endpoint, const Reference& ref) const {
  return endpoint.mirror ? endpoint.host : ref.domain;
}

Result<RegistryClient::Auth> RegistryClient::FetchToken(const Endpoint& endpoint,
                                                        const Reference& ref,
                                                        const AuthChallenge& bearer,
                                                        const std::optional<Credentials>& creds) {
  std::string what = "authenticate to " + endpoint.host;
  auto realm = bearer.params.find("realm");
  if (realm == bearer.params.end() ||
      (realm->second.rfind("https://", 0) != 0 && realm->second.rfind("http://", 0) != 0)) {
    return Fail(Code::kAuth, what + ": the Bearer challenge has no http(s) realm");
  }
  auto service = bearer.params.find("service");
  const std::string scope = "repository:" + ref.path + ":pull";
  HttpRequest request{"GET", realm->second, {}, endpoint.ca_file};
  const bool refresh = creds && !creds->identity_token.empty();
  if (refresh) {
    // An identity token is an OAuth2 refresh token: the refresh-token grant, a form POST
    // to the realm (docker/distribution docs/spec/auth/oauth.md), as Docker prefers it.
    request.method = "POST";
    request.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    request.body =
        "grant_type=refresh_token&refresh_token=" + UrlEscape(creds->identity_token, true) +
        "&service=" + UrlEscape(service != bearer.params.end() ? service->second : "", true) +
        "&scope=" + UrlEscape(scope, true) + "&client_id=imagefs";
  } else {
    request.url += realm->second.find('?') == std::string::npos ? "?" : "&";
    if (service != bearer.params.end())
      request.url += "service=" + UrlEscape(service->second) + "&";
    request.url += "scope=" + UrlEscape(scope);
    if (creds) {
      request.headers.push_back("Authorization: Basic " +
                                Base64(creds->username + ":" + creds->password));
    }
  }
  FetchLog()->debug("fetch token realm={} scope={} grant={}", realm->second, scope,
                    refresh ? "refresh_token" : (creds ? "basic" : "anonymous"));
  ASSIGN_OR_RETURN(HttpResponse response, http_.Perform(request, nullptr, 1u << 20));
  auto j = nlohmann::json::parse(response.body, nullptr, false);
  if (response.status != 200) {
    Error e = StatusError(response, what + ": token server " + realm->second);
    // OAuth2 servers answer {"error": "invalid_grant", ...} (RFC 6749 5.2).
    if (j.is_object() && j.contains("error") && j["error"].is_string())
      e.msg += " (" + j["error"].get<std::string>() + ")";
    // invalid_grant (a refresh token revoked or expired) is a 400.
    if (response.status == 401 || response.status == 403 || (refresh && response.status == 400))
      e.code = Code::kAuth;
    return Fail(e);
  }
  std::string token;
  if (j.is_object()) {
    // The refresh grant answers access_token; the GET form token (access_token an alias).
    for (const char* name : {"token", "access_token"}) {
      if (token.empty() && j.contains(name) && j[name].is_string()) token = j[name];
    }
  }
  if (token.empty()) return Fail(Code::kAuth, what + ": the token server's answer has no token");
  long expires_in = 60;  // the spec's default, and Docker's minimum
  if (j.contains("expires_in") && j["expires_in"].is_number_integer()) {
    expires_in = std::max<long>(60, j["expires_in"].get<long>());
  }
  // Renew a little early: a token must not expire in flight.
  return Auth{"Bearer " + token, Clock::now() + std::chrono::seconds(expires_in - expires_in / 10)};
}

Status RegistryClient::Authenticate(const Endpoint& endpoint, const Reference& ref,
                                    const std::string& header, const std::atomic<bool>* cancel) {
  std::string what = "authenticate to " + endpoint.host;
  ASSIGN_OR_RETURN(auto challenges, ParseAuthChallenges(header));
  const std::string domain = CredentialDomain(endpoint, ref);
  auto stopped = [this, cancel] { return http_.closed() || (cancel != nullptr && *cancel); };
  ASSIGN_OR_RETURN(std::optional<Credentials> creds,
                   credentials_.Lookup(domain, ref.path, stopped));
  const AuthChallenge* bearer = nullptr;
  const AuthChallenge* basic_challenge = nullptr;
  for (const auto& c : challenges) {
    if (c.scheme == "bearer" && bearer == nullptr) bearer = &c;
    if (c.scheme == "basic" && basic_challenge == nullptr) basic_challenge = &c;
  }
  Auth auth;
  if (bearer != nullptr) {
    ASSIGN_OR_RETURN(auth, FetchToken(endpoint, ref, *bearer, creds));
  } else if (basic_challenge != nullptr) {
    if (!creds) {
      return Fail(Code::kAuth, what +
                                   ": the registry asks for credentials and none are configured "
                                   "(use --creds USER:PASS, docker login or podman login)");
    }
    if (creds->password.empty() && !creds->identity_token.empty()) {
      std::string why = ": the registry asks for Basic auth, and the credentials for " + domain +
                        " are an identity token, which only a token server takes (log in with "
                        "a password)";
      return Fail(Code::kAuth, what + why);
    }
    auth.header = "Basic " + Base64(creds->username + ":" + creds->password);
    auth.expires = Clock::time_point::max();
  } else {
    return Fail(Code::kAuth, what + ": no supported challenge in \"" + header + "\"");
  }
  std::lock_guard lock(mu_);
  challenges_[endpoint.host] = header;
  auth_[endpoint.host + " " + ref.path] = std::move(auth);
  return {};
}

Result<HttpResponse> RegistryClient::Exchange(const Endpoint& endpoint, const Reference& ref,
                                              HttpRequest request, const BodySink* sink,
                                              uint64_t max_body,
                                              const HttpClient::StatusHook* hook) {
  const std::string key = endpoint.host + " " + ref.path;
  const size_t base_headers = request.headers.size();
  bool authenticated = false;
  while (true) {
    std::optional<std::string> header, known_challenge;
    {
      std::lock_guard lock(mu_);
      if (auto it = auth_.find(key); it != auth_.end() && it->second.expires > Clock::now()) {
        header = it->second.header;
      } else if (auto c = challenges_.find(endpoint.host); c != challenges_.end()) {
        known_challenge = c->second;
      }
    }
    if (!header && known_challenge && !authenticated) {
      // The host wants a token and ours is missing or expired: get one before asking.
      authenticated = true;
      RETURN_IF_ERROR(Authenticate(endpoint, ref, *known_challenge, request.cancel));
      continue;
    }
    request.headers.resize(base_headers);
    if (header) request.headers.push_back("Authorization: " + *header);
    ASSIGN_OR_RETURN(HttpResponse response, http_.Perform(request, sink, max_body, hook));
    if ((response.status == 401 || response.status == 403) && !authenticated) {
      // Answer the challenge (credentials re-read: they may have changed since).
      authenticated = true;
      std::string challenge = response.headers["www-authenticate"];
      if (challenge.empty() && known_challenge) challenge = *known_challenge;
      if (challenge.empty()) {
        std::lock_guard lock(mu_);
        if (auto c = challenges_.find(endpoint.host); c != challenges_.end()) challenge = c->second;
      }
      if (challenge.empty()) return response;
      {
        std::lock_guard lock(mu_);
        auth_.erase(key);
      }
      RETURN_IF_ERROR(Authenticate(endpoint, ref, challenge, request.cancel));
      continue;
    }
    return response;
  }
}

Result<HttpResponse> RegistryClient::Retrying(const Endpoint& endpoint, const Reference& ref,
                                              const HttpRequest& request, const BodySink* sink,
                                              uint64_t max_body, const HttpClient::StatusHook* hook,
                                              const std::atomic<bool>* cancel) {
  RetryPolicy::Attempts attempts = retry_.Start();
  for (;;) {
    auto r = Exchange(endpoint, ref, request, sink, max_body, hook);
    if (!RetryPolicy::Retryable(r)) return r;
    if (!attempts.Again(RetryPolicy::RetryAfterSeconds(r), cancel)) return r;
    FetchLog()->warn("retry {} {} attempt={}: {}", request.method, request.url, attempts.failures(),
                     r ? "HTTP " + std::to_string(r->status) : r.error().msg);
  }
}

std::optional<FetchedManifest> RegistryClient::CachedManifest(const Digest& digest) {
  {
    std::lock_guard lock(mu_);
    if (auto it = manifests_.find(digest.str()); it != manifests_.end()) return it->second;
  }
  if (cache_dir_.empty()) return std::nullopt;
  std::ifstream in(cache_dir_ / "manifests" / digest.hex());
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = ParseManifest(text.str(), "");
  if (!parsed) return std::nullopt;
  auto d = ManifestDigest(text.str(), parsed->media_type);
  if (!d || *d != digest) return std::nullopt;  // a damaged cache entry is just refetched
  FetchedManifest m{text.str(), parsed->media_type, digest, std::move(*parsed)};
  std::lock_guard lock(mu_);
  manifests_[digest.str()] = m;
  return m;
}

void RegistryClient::CacheManifest(const FetchedManifest& m) {
  {
    std::lock_guard lock(mu_);
    manifests_[m.digest.str()] = m;
  }
  if (cache_dir_.empty()) return;
  // A cache: a failure to write it costs a fetch later, nothing else.
  Status written = MkdirAll(cache_dir_ / "manifests");
  if (written) written = WriteFileAtomic(cache_dir_ / "manifests" / m.digest.hex(), m.bytes);
  if (!written) FetchLog()->debug("cache manifest {}: {}", m.digest.str(), written.error().msg);
}

Result<FetchedManifest> RegistryClient::DecodeManifest(std::string bytes,
                                                       const std::string& content_type,
                                                       const Reference& ref,
                                                       const std::optional<Digest>& expected,
                                                       const std::string& header_digest) {
  std::string what = "manifest " + ref.String();
  FetchedManifest out;
  out.bytes = std::move(bytes);
  auto parsed = ParseManifest(out.bytes, content_type);
  if (!parsed) return Fail(parsed.error().WithContext(what));
  out.manifest = std::move(*parsed);
  out.media_type = out.manifest.media_type;
  ASSIGN_OR_RETURN(out.digest, ManifestDigest(out.bytes, out.media_type));
  if (expected && out.digest != *expected) {
    return Fail(Code::kCorrupt,
                what + ": content has digest " + out.digest.str() + ", not " + expected->str());
  }
  if (!header_digest.empty() && header_digest != out.digest.str()) {
    return Fail(Code::kCorrupt, what + ": content has digest " + out.digest.str() +
                                    ", the registry says " + header_digest);
  }
  return out;
}

Result<Digest> RegistryClient::ResolveDigest(const Reference& ref) {
  if (ref.digest) return *ref.digest;
  std::string what = "manifest " + ref.String();
  std::optional<Error> last;
  std::string mirror_errors;
  for (const Endpoint& endpoint : config_.EndpointsFor(ref.domain)) {
    HttpRequest head{"HEAD",
                     endpoint.base_url + "/v2/" + ref.path + "/manifests/" + Selector(ref),
                     {"Accept: " + AcceptHeader()},
                     endpoint.ca_file};
    auto r = Retrying(endpoint, ref, head, nullptr, 0, nullptr);
    if (r && r->status == 200) {
      if (auto d = Digest::Parse(r->headers["docker-content-digest"])) return *d;
    }
    if (r) {
      // No digest header, HEAD refused, or an error without the registry's words: a GET
      // says more (the manifest itself, or the error body).
      HttpRequest get = head;
      get.method = "GET";
      auto g = Retrying(endpoint, ref, get, nullptr, kMaxManifestBytes, nullptr);
      if (g && g->status == 200) {
        ASSIGN_OR_RETURN(FetchedManifest m,
                         DecodeManifest(std::move(g->body), g->headers["content-type"], ref,
                                        std::nullopt, g->headers["docker-content-digest"]));
        CacheManifest(m);
        return m.digest;
      }
      r = std::move(g);
    }
    last = r ? StatusError(*r, what) : r.error();
    NoteMirrorFailure(endpoint, *last, mirror_errors);
  }
  return Fail(WithMirrorErrors(*last, mirror_errors));
}

Result<FetchedManifest> RegistryClient::GetManifest(const Reference& ref) {
  ASSIGN_OR_RETURN(Digest digest, ResolveDigest(ref));
  if (auto cached = CachedManifest(digest)) return *cached;
  std::string what = "manifest " + ref.String();
  std::optional<Error> last;
  std::string mirror_errors;
  for (const Endpoint& endpoint : config_.EndpointsFor(ref.domain)) {
    HttpRequest get{"GET",
                    endpoint.base_url + "/v2/" + ref.path + "/manifests/" + digest.str(),
                    {"Accept: " + AcceptHeader()},
                    endpoint.ca_file};
    auto r = Retrying(endpoint, ref, get, nullptr, kMaxManifestBytes, nullptr);
    if (r && r->status == 200) {
      auto m = DecodeManifest(std::move(r->body), r->headers["content-type"], ref, digest,
                              r->headers["docker-content-digest"]);
      if (m) {
        CacheManifest(*m);
        return m;
      }
      last = m.error();
    } else {
      last = r ? StatusError(*r, what) : r.error();
    }
    NoteMirrorFailure(endpoint, *last, mirror_errors);
  }
  return Fail(WithMirrorErrors(*last, mirror_errors));
}

Result<bool> RegistryClient::RepositoryExists(const Reference& ref) {
  Endpoint endpoint = config_.EndpointsFor(ref.domain).back();
  HttpRequest get{
      "GET", endpoint.base_url + "/v2/" + ref.path + "/tags/list?n=1", {}, endpoint.ca_file};
  ASSIGN_OR_RETURN(HttpResponse r, Retrying(endpoint, ref, get, nullptr, 1u << 20, nullptr));
  if (r.status == 200) return true;
  if (r.status == 404 || r.status == 401 || r.status == 403) return false;
  return Fail(StatusError(r, "repository " + ref.Name()));
}

}  // namespace imagefs::fetch

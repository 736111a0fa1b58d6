#include "fetch/fetch_config.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace imagefs::fetch {
namespace {

using nlohmann::json;

Status Expect(bool ok, const std::string& what, const std::string& key, const char* want) {
  if (ok) return {};
  return Fail(Code::kInvalid, what + ": \"" + key + "\" must be " + want);
}

Endpoint MakeEndpoint(const std::string& url_or_host, const RegistryConfig& config, bool mirror) {
  Endpoint e;
  std::string rest = url_or_host;
  std::string scheme;
  if (auto p = rest.find("://"); p != std::string::npos) {
    scheme = rest.substr(0, p);
    rest = rest.substr(p + 3);
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  e.host = rest.substr(0, rest.find('/'));
  if (scheme.empty()) scheme = (config.insecure || IsLoopbackHost(e.host)) ? "http" : "https";
  e.base_url = scheme + "://" + rest;
  e.ca_file = config.ca_file;
  e.mirror = mirror;
  return e;
}

}  // namespace

bool IsLoopbackHost(const std::string& domain) {
  std::string host = domain;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::filesystem::path FetchConfig::DefaultPath() {
  if (const char* p = std::getenv("IMAGEFS_REGISTRIES"); p != nullptr && *p != '\0') return p;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x != '\0') {
    return std::filesystem::path(x) / "imagefs" / "registries.json";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/") / ".config" / "imagefs" /
         "registries.json";
}

Result<FetchConfig> FetchConfig::Load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) return FetchConfig{};
    return Fail(Error::FromErrno(path.string() + ": cannot be read", e));
  }
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path.string());
}

Result<FetchConfig> FetchConfig::Parse(const std::string& text, const std::string& what) {
  FetchConfig out;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Fail(Code::kInvalid, what + ": not a JSON object");
  auto uint_field = [&](const char* key, auto& slot, uint64_t max) -> Status {
    if (!j.contains(key)) return {};
    const json& v = j[key];
    RETURN_IF_ERROR(Expect(v.is_number_unsigned() && v.get<uint64_t>() <= max, what, key,
                           ("an integer from 0 to " + std::to_string(max)).c_str()));
    slot = static_cast<std::remove_reference_t<decltype(slot)>>(v.get<uint64_t>());
    return {};
  };
  RETURN_IF_ERROR(uint_field("concurrency", out.concurrency, 64));
  RETURN_IF_ERROR(uint_field("retries", out.retries, 20));
  RETURN_IF_ERROR(uint_field("retry_base_ms", out.retry_base_ms, 60000));
  RETURN_IF_ERROR(uint_field("quota_bytes", out.quota_bytes, UINT64_MAX));
  if (out.concurrency == 0) out.concurrency = 1;
  for (auto [key, slot] :
       {std::pair{"lazy_files", &out.lazy_files}, std::pair{"lazy_complete", &out.lazy_complete},
        std::pair{"stream_unverified", &out.stream_unverified}}) {
    if (!j.contains(key)) continue;
    RETURN_IF_ERROR(Expect(j[key].is_boolean(), what, key, "true or false"));
    *slot = j[key].get<bool>();
  }
  if (j.contains("tag_cache_seconds")) {
    // Bounded: the mount makes a steady_clock deadline of it, which a huge value overflows.
    constexpr double kMaxTagCacheSeconds = 365 * 24 * 3600;
    const json& v = j["tag_cache_seconds"];
    RETURN_IF_ERROR(
        Expect(v.is_number() && v.get<double>() >= 0 && v.get<double>() <= kMaxTagCacheSeconds,
               what, "tag_cache_seconds", "a number of seconds from 0 to 31536000"));
    out.tag_cache_seconds = v.get<double>();
  }
  if (j.contains("registries")) {
    RETURN_IF_ERROR(Expect(j["registries"].is_object(), what, "registries",
                           "an object keyed by registry host"));
    for (const auto& [domain, entry] : j["registries"].items()) {
      std::string key = "registries." + domain;
      RETURN_IF_ERROR(Expect(entry.is_object(), what, key, "an object"));
      RegistryConfig r;
      if (entry.contains("mirrors")) {
        RETURN_IF_ERROR(
            Expect(entry["mirrors"].is_array(), what, key + ".mirrors", "an array of URLs"));
        for (const json& m : entry["mirrors"]) {
          RETURN_IF_ERROR(Expect(m.is_string() && !m.get<std::string>().empty(), what,
                                 key + ".mirrors", "an array of URLs"));
          std::string url = m.get<std::string>();
          if (url.find("://") != std::string::npos && url.rfind("http://", 0) != 0 &&
              url.rfind("https://", 0) != 0) {
            return Fail(Code::kInvalid,
                        what + ": mirror \"" + url + "\" must be http:// or https://");
          }
          r.mirrors.push_back(url);
        }
      }
      if (entry.contains("ca_file")) {
        RETURN_IF_ERROR(Expect(entry["ca_file"].is_string(), what, key + ".ca_file", "a path"));
        r.ca_file = entry["ca_file"].get<std::string>();
      }
      if (entry.contains("insecure")) {
        RETURN_IF_ERROR(
            Expect(entry["insecure"].is_boolean(), what, key + ".insecure", "true or false"));
        r.insecure = entry["insecure"].get<bool>();
      }
      out.registries[domain] = std::move(r);
    }
  }
  return out;
}

std::vector<Endpoint> FetchConfig::EndpointsFor(const std::string& domain) const {
  RegistryConfig config;
  if (auto it = registries.find(domain); it != registries.end()) config = it->second;
  std::vector<Endpoint> out;
  for (const std::string& m : config.mirrors) out.push_back(MakeEndpoint(m, config, true));
  out.push_back(
      MakeEndpoint(domain == "docker.io" ? "https://registry-1.docker.io" : domain, config, false));
  return out;
}

}  // namespace imagefs::fetch

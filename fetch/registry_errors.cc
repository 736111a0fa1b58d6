#include "fetch/registry_errors.h"

#include <nlohmann/json.hpp>

#include "graph/base/log.h"

namespace imagefs::fetch {
namespace {

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

}  // namespace

Error StatusError(const HttpResponse& r, const std::string& what) {
  Code code = Code::kNetwork;
  if (r.status == 404) code = Code::kNotFound;
  if (r.status == 401 || r.status == 403) code = Code::kAuth;
  return Error::Make(code, what + ": " + RegistryError(r));
}

void NoteMirrorFailure(const Endpoint& endpoint, const Error& error, std::string& notes) {
  if (!endpoint.mirror) return;
  FetchLog()->info("mirror {} failed, falling back: {}", endpoint.base_url, error.msg);
  notes += (notes.empty() ? "" : "; ") + endpoint.base_url + ": " + error.msg;
}

Error WithMirrorErrors(Error error, const std::string& notes) {
  if (!notes.empty()) error.msg += " (mirrors failed too: " + notes + ")";
  return error;
}

}  // namespace imagefs::fetch

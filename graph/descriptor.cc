#include "graph/descriptor.h"

namespace imagefs {

using nlohmann::json;

Result<Descriptor> ParseDescriptor(const json& j, const std::string& what) {
  if (!j.is_object()) return Fail(Code::kInvalid, what + ": descriptor is not an object");
  Descriptor d;
  if (j.contains("mediaType")) {
    if (!j["mediaType"].is_string())
      return Fail(Code::kInvalid, what + ": mediaType is not a string");
    d.media_type = j["mediaType"].get<std::string>();
  }
  if (!j.contains("digest") || !j["digest"].is_string()) {
    return Fail(Code::kInvalid, what + ": descriptor has no digest");
  }
  auto digest = Digest::Parse(j["digest"].get<std::string>());
  if (!digest) return Fail(digest.error().WithContext(what));
  d.digest = *digest;
  if (!j.contains("size") || !j["size"].is_number_unsigned()) {
    return Fail(Code::kInvalid, what + ": descriptor has no valid size");
  }
  d.size = j["size"].get<uint64_t>();
  if (j.contains("platform") && j["platform"].is_object()) {
    const json& p = j["platform"];
    auto str = [&](const char* k) {
      return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : "";
    };
    d.platform = Platform{str("os"), str("architecture"), str("variant")};
  }
  if (j.contains("annotations") && j["annotations"].is_object()) d.annotations = j["annotations"];
  if (j.contains("urls") && j["urls"].is_array()) {
    for (const auto& u : j["urls"]) {
      if (u.is_string()) d.urls.push_back(u.get<std::string>());
    }
  }
  return d;
}

bool IsAttestation(const Descriptor& d) {
  // Not annotations.value(): it throws when the annotation is not a string.
  if (auto type = d.annotations.find("vnd.docker.reference.type");
      type != d.annotations.end() && *type == "attestation-manifest") {
    return true;
  }
  return d.platform && d.platform->os == "unknown" && d.platform->architecture == "unknown";
}

Result<std::vector<Digest>> DiffIdsOf(const nlohmann::json& config, const std::string& what) {
  if (!config.is_object()) return Fail(Code::kInvalid, what + ": config is not a JSON object");
  auto rootfs = config.find("rootfs");
  if (rootfs == config.end() || !rootfs->is_object() || !rootfs->contains("diff_ids") ||
      !(*rootfs)["diff_ids"].is_array()) {
    return Fail(Code::kInvalid, what + ": config has no rootfs.diff_ids array");
  }
  std::vector<Digest> out;
  for (const auto& d : (*rootfs)["diff_ids"]) {
    if (!d.is_string()) return Fail(Code::kInvalid, what + ": rootfs.diff_ids holds a non-string");
    auto digest = Digest::Parse(d.get<std::string>());
    if (!digest) return Fail(digest.error().WithContext(what + ": rootfs.diff_ids"));
    out.push_back(*digest);
  }
  return out;
}

}  // namespace imagefs

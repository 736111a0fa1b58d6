#include "graph/manifest.h"

#include <algorithm>
#include <set>

namespace imagefs {

using nlohmann::json;

std::string AcceptHeader() {
  return std::string(kOciIndex) + ", " + std::string(kDockerList) + ", " +
         std::string(kOciManifest) + ", " + std::string(kDockerManifest) + ", " +
         std::string(kDockerSchema1Signed) + ", " + std::string(kDockerSchema1);
}

bool IsIndexMediaType(std::string_view media_type) {
  return media_type == kOciIndex || media_type == kDockerList;
}

bool IsImageManifestMediaType(std::string_view media_type) {
  return media_type == kOciManifest || media_type == kDockerManifest;
}

namespace {

Result<std::vector<Descriptor>> ParseDescriptors(const json& j, const char* key,
                                                 const std::string& what) {
  if (!j.contains(key) || !j[key].is_array())
    return Fail(Code::kInvalid, what + ": no \"" + key + "\" array");
  std::vector<Descriptor> out;
  for (size_t i = 0; i < j[key].size(); ++i) {
    ASSIGN_OR_RETURN(Descriptor d,
                     ParseDescriptor(j[key][i], what + ": " + key + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(d));
  }
  return out;
}

// A member that is informational only: "" when absent or not a string (json::value would
// throw on another type, and a decoder must not throw).
std::string StringMember(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// base64url without padding (JWS), as used by schema1 signatures.
Result<std::string> Base64UrlDecode(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-' || c == '+')
      v = 62;
    else if (c == '_' || c == '/')
      v = 63;
    else if (c == '=')
      break;
    else
      return Fail(Code::kInvalid, "invalid base64url");
    buf = (buf << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xff);
    }
  }
  return out;
}

// Docker's fixManifestLayers: the history is top first; IDs must be valid, the base must
// have no parent, an ID may repeat only adjacently (such repeats are dropped), and each
// image's parent must be the next one down.
Status RepairSchema1(std::vector<Digest>& sums, std::vector<std::string>& history) {
  struct V1 {
    std::string id, parent;
  };
  std::vector<V1> images;
  for (size_t i = 0; i < history.size(); ++i) {
    json j = json::parse(history[i], nullptr, false);
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) {
      return Fail(Code::kInvalid,
                  "schema1 history[" + std::to_string(i) + "]: v1Compatibility has no id");
    }
    V1 v{j["id"].get<std::string>(), StringMember(j, "parent")};
    if (!IsHex64(v.id))
      return Fail(Code::kInvalid,
                  "schema1 history[" + std::to_string(i) + "]: invalid image ID \"" + v.id + "\"");
    images.push_back(v);
  }
  if (!images.back().parent.empty())
    return Fail(Code::kInvalid, "schema1: invalid parent ID in the base layer of the image");
  std::set<std::string> seen;
  for (size_t i = 0; i < images.size(); ++i) {
    bool repeat = i > 0 && images[i].id == images[i - 1].id;
    if (!repeat && !seen.insert(images[i].id).second) {
      return Fail(Code::kInvalid,
                  "schema1: ID " + images[i].id + " appears multiple times in the manifest");
    }
  }
  for (size_t i = images.size() - 1;
       i-- > 0;) {  // from the second-lowest up, so indexes stay valid
    if (images[i].id == images[i + 1].id) {
      sums.erase(sums.begin() + static_cast<long>(i));
      history.erase(history.begin() + static_cast<long>(i));
      images.erase(images.begin() + static_cast<long>(i));
    } else if (images[i].parent != images[i + 1].id) {
      return Fail(Code::kInvalid, "schema1: invalid parent ID: expected " + images[i + 1].id +
                                      ", got " + images[i].parent);
    }
  }
  return {};
}

Result<Schema1Manifest> ParseSchema1(const json& j) {
  Schema1Manifest m;
  m.name = StringMember(j, "name");
  m.tag = StringMember(j, "tag");
  m.architecture = StringMember(j, "architecture");
  if (!j.contains("fsLayers") || !j["fsLayers"].is_array() || !j.contains("history") ||
      !j["history"].is_array()) {
    return Fail(Code::kInvalid, "schema1 manifest: no fsLayers/history arrays");
  }
  if (j["fsLayers"].size() != j["history"].size() || j["fsLayers"].empty()) {
    return Fail(Code::kInvalid,
                "schema1 manifest: fsLayers and history differ in length or are empty");
  }
  for (size_t i = 0; i < j["fsLayers"].size(); ++i) {
    const json& l = j["fsLayers"][i];
    const json& h = j["history"][i];
    if (!l.is_object() || !l.contains("blobSum") || !l["blobSum"].is_string() || !h.is_object() ||
        !h.contains("v1Compatibility") || !h["v1Compatibility"].is_string()) {
      return Fail(Code::kInvalid, "schema1 manifest: entry " + std::to_string(i) + " is malformed");
    }
    auto digest = Digest::Parse(l["blobSum"].get<std::string>());
    if (!digest)
      return Fail(digest.error().WithContext("schema1 fsLayers[" + std::to_string(i) + "]"));
    m.blob_sums.push_back(*digest);
    m.v1_compatibility.push_back(h["v1Compatibility"].get<std::string>());
  }
  RETURN_IF_ERROR(RepairSchema1(m.blob_sums, m.v1_compatibility));
  // Top first in the manifest; base first here, like every other chain in imagefs.
  std::reverse(m.blob_sums.begin(), m.blob_sums.end());
  std::reverse(m.v1_compatibility.begin(), m.v1_compatibility.end());
  return m;
}

}  // namespace

Result<Manifest> ParseManifest(std::string_view bytes, std::string_view content_type) {
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Fail(Code::kInvalid, "manifest is not a JSON object");
  std::string type = j.contains("mediaType") && j["mediaType"].is_string()
                         ? j["mediaType"].get<std::string>()
                         : "";
  int schema = j.contains("schemaVersion") && j["schemaVersion"].is_number_integer()
                   ? j["schemaVersion"].get<int>()
                   : 0;
  if (type.empty()) {
    if (schema == 1)
      type = j.contains("signatures") ? std::string(kDockerSchema1Signed)
                                      : std::string(kDockerSchema1);
    else if (j.contains("manifests"))
      type = std::string(kOciIndex);
    else if (j.contains("layers"))
      type = std::string(kOciManifest);
    else
      type = std::string(content_type.substr(0, content_type.find(';')));
  }
  Manifest m;
  m.media_type = type;
  if (IsIndexMediaType(type)) {
    ASSIGN_OR_RETURN(auto manifests, ParseDescriptors(j, "manifests", "manifest index"));
    m.index = ManifestIndex{std::move(manifests)};
  } else if (IsImageManifestMediaType(type)) {
    if (!j.contains("config")) return Fail(Code::kInvalid, "image manifest has no config");
    ImageManifest image;
    ASSIGN_OR_RETURN(image.config, ParseDescriptor(j["config"], "image manifest: config"));
    ASSIGN_OR_RETURN(image.layers, ParseDescriptors(j, "layers", "image manifest"));
    m.image = std::move(image);
  } else if (type == kDockerSchema1 || type == kDockerSchema1Signed || schema == 1) {
    ASSIGN_OR_RETURN(m.schema1, ParseSchema1(j));
  } else {
    return Fail(Code::kUnsupported, "unsupported manifest type \"" + type + "\"");
  }
  return m;
}

Result<Digest> ManifestDigest(std::string_view bytes, std::string_view media_type) {
  if (media_type != kDockerSchema1Signed) return Sha256::Of(bytes);
  // Signed schema1: the payload is the document up to formatLength plus formatTail,
  // both named in each signature's protected header.
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.contains("signatures") || !j["signatures"].is_array() ||
      j["signatures"].empty()) {
    return Fail(Code::kInvalid, "signed schema1 manifest without signatures");
  }
  const json& sig = j["signatures"][0];
  if (!sig.contains("protected") || !sig["protected"].is_string()) {
    return Fail(Code::kInvalid, "schema1 signature without a protected header");
  }
  ASSIGN_OR_RETURN(std::string header_text, Base64UrlDecode(sig["protected"].get<std::string>()));
  json header = json::parse(header_text, nullptr, false);
  if (header.is_discarded() || !header.contains("formatLength") ||
      !header["formatLength"].is_number_unsigned() || !header.contains("formatTail") ||
      !header["formatTail"].is_string()) {
    return Fail(Code::kInvalid, "schema1 protected header lacks formatLength/formatTail");
  }
  uint64_t length = header["formatLength"].get<uint64_t>();
  if (length > bytes.size())
    return Fail(Code::kInvalid, "schema1 formatLength exceeds the manifest");
  ASSIGN_OR_RETURN(std::string tail, Base64UrlDecode(header["formatTail"].get<std::string>()));
  return Sha256::Of(std::string(bytes.substr(0, length)) + tail);
}

Result<Descriptor> SelectPlatform(const ManifestIndex& index, const Platform& wanted) {
  const Descriptor* best = nullptr;
  int best_rank = 0;
  std::string available;
  for (const Descriptor& d : index.manifests) {
    if (IsAttestation(d)) continue;
    Platform p = d.platform.value_or(Platform{"linux", "amd64", ""});
    available += (available.empty() ? "" : ", ") + Normalize(p).String();
    auto rank = MatchRank(wanted, p);
    if (rank && (!best || *rank < best_rank)) {
      best = &d;
      best_rank = *rank;
    }
  }
  if (!best) {
    return Fail(Code::kNotFound, "no matching manifest for " + Normalize(wanted).String() +
                                     " in the manifest list" +
                                     (available.empty() ? "" : " (it has " + available + ")"));
  }
  return *best;
}

}  // namespace imagefs

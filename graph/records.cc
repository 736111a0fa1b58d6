#include "graph/records.h"

#include <ctime>
#include <nlohmann/json.hpp>

namespace imagefs {

using nlohmann::json;

std::string EncodeLayerRecord(const LayerInfo& l) {
  json j = {{"chain_id", l.chain_id.str()},
            {"diff_id", l.diff_id.str()},
            {"parent", l.parent ? json(l.parent->str()) : json(nullptr)},
            {"tar_size", l.tar_size},
            {"content_size", l.content_size},
            {"entries", l.entries}};
  return j.dump(2) + "\n";
}

Result<LayerInfo> DecodeLayerRecord(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Fail(Code::kCorrupt, "layer record is not JSON");
  try {
    LayerInfo l;
    ASSIGN_OR_RETURN(l.chain_id, Digest::Parse(j.at("chain_id").get<std::string>()));
    ASSIGN_OR_RETURN(l.diff_id, Digest::Parse(j.at("diff_id").get<std::string>()));
    if (!j.at("parent").is_null()) {
      ASSIGN_OR_RETURN(l.parent, Digest::Parse(j.at("parent").get<std::string>()));
    }
    l.tar_size = j.at("tar_size").get<uint64_t>();
    l.content_size = j.at("content_size").get<uint64_t>();
    l.entries = j.at("entries").get<uint64_t>();
    return l;
  } catch (const json::exception& e) {
    return Fail(Code::kCorrupt, std::string("layer record: ") + e.what());
  }
}

std::string EncodeImageRecord(const ImageInfo& i) {
  json j = {{"id", i.id},
            {"layer", i.top_layer ? json(i.top_layer->str()) : json(nullptr)},
            {"parent", i.parent ? json(*i.parent) : json(nullptr)},
            {"created", i.created},
            {"size", i.size},
            {"registered", i.registered}};
  return j.dump(2) + "\n";
}

Result<ImageInfo> DecodeImageRecord(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Fail(Code::kCorrupt, "image record is not JSON");
  try {
    ImageInfo i;
    i.id = j.at("id").get<std::string>();
    if (!IsHex64(i.id)) return Fail(Code::kCorrupt, "image record: bad id");
    if (!j.at("layer").is_null()) {
      ASSIGN_OR_RETURN(i.top_layer, Digest::Parse(j.at("layer").get<std::string>()));
    }
    if (!j.at("parent").is_null()) {
      i.parent = j.at("parent").get<std::string>();
      if (!IsHex64(*i.parent)) return Fail(Code::kCorrupt, "image record: bad parent");
    }
    i.created = j.at("created").get<std::string>();
    i.size = j.at("size").get<uint64_t>();
    i.registered = j.at("registered").get<int64_t>();
    return i;
  } catch (const json::exception& e) {
    return Fail(Code::kCorrupt, std::string("image record: ") + e.what());
  }
}

std::optional<int64_t> ParseRfc3339(const std::string& s) {
  struct tm tm {};
  const char* p = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == nullptr) return std::nullopt;
  if (*p == '.') {
    ++p;
    while (*p >= '0' && *p <= '9') ++p;
  }
  int64_t offset = 0;
  if (*p == 'Z' || *p == 'z') {
    ++p;
  } else if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1;
    int hh, mm;
    if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    offset = sign * (hh * 3600 + mm * 60);
    p += 6;
  } else {
    return std::nullopt;
  }
  if (*p != '\0') return std::nullopt;
  return static_cast<int64_t>(timegm(&tm)) - offset;
}

}  // namespace imagefs

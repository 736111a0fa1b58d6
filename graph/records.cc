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

std::optional<std::pair<int64_t, uint32_t>> ParseRfc3339Nanos(std::string_view s) {
  auto num = [&](size_t at, size_t len) -> std::optional<int> {
    if (at + len > s.size()) return std::nullopt;
    int v = 0;
    for (size_t i = at; i < at + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  auto year = num(0, 4), mon = num(5, 2), day = num(8, 2), hour = num(11, 2), min = num(14, 2),
       sec = num(17, 2);
  if (!year || !mon || !day || !hour || !min || !sec || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' || *mon < 1 || *mon > 12 ||
      *day < 1 || *day > 31 || *hour > 23 || *min > 59 || *sec > 60) {
    return std::nullopt;
  }
  size_t i = 19;
  uint32_t nsec = 0;
  if (i < s.size() && s[i] == '.') {
    int digits = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++digits) {
      if (digits < 9) nsec = nsec * 10 + static_cast<uint32_t>(s[i] - '0');
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) nsec *= 10;
  }
  int64_t zone = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    auto zh = num(i + 1, 2), zm = num(i + 4, 2);
    if (!zh || !zm || i + 3 >= s.size() || s[i + 3] != ':') return std::nullopt;
    zone = (s[i] == '+' ? 1 : -1) * (int64_t{*zh} * 3600 + *zm * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = *year - 1900;
  tm.tm_mon = *mon - 1;
  tm.tm_mday = *day;
  tm.tm_hour = *hour;
  tm.tm_min = *min;
  tm.tm_sec = *sec;
  return std::make_pair(static_cast<int64_t>(timegm(&tm)) - zone, nsec);
}

std::optional<int64_t> ParseRfc3339(const std::string& s) {
  auto t = ParseRfc3339Nanos(s);
  return t ? std::optional<int64_t>(t->first) : std::nullopt;
}

}  // namespace imagefs

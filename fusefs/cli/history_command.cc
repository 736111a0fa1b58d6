// `imagefs history`: an image's build steps as `docker history` prints them, newest first,
// from its config's history (empty_layer steps have size 0; the others take the sizes of
// the chain's layers in order). Legacy v1 images show their parent chain instead, one
// image per step, as their v1 JSON records it.
#include <algorithm>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "fusefs/cli/commands.h"
#include "fusefs/cli/format.h"
#include "graph/records.h"

namespace imagefs {
namespace {

using nlohmann::json;

struct Step {
  std::string id;  // "<missing>" when the step is not an image of the store
  std::string created;
  std::string created_by;
  uint64_t size = 0;
  std::string comment;
};

std::string StringAt(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

Result<std::vector<Step>> ModernSteps(Store& store, const ImageInfo& image, const json& config) {
  std::vector<LayerInfo> chain;
  if (image.top_layer) {
    ASSIGN_OR_RETURN(chain, store.LayerChain(*image.top_layer));
  }
  std::vector<Step> steps;
  size_t layer = 0;
  auto history = config.find("history");
  if (history != config.end() && history->is_array()) {
    for (const json& h : *history) {
      if (!h.is_object()) continue;
      Step step{"<missing>", StringAt(h, "created"), StringAt(h, "created_by"), 0,
                StringAt(h, "comment")};
      bool empty = h.value("empty_layer", false);
      if (!empty && layer < chain.size()) step.size = chain[layer++].content_size;
      steps.push_back(std::move(step));
    }
  }
  if (!steps.empty()) steps.back().id = image.id;
  std::reverse(steps.begin(), steps.end());
  return steps;
}

Result<std::vector<Step>> LegacySteps(Store& store, const ImageInfo& top) {
  std::vector<Step> steps;
  for (std::optional<std::string> id = top.id; id && steps.size() <= 4096;) {
    ASSIGN_OR_RETURN(ImageInfo image, store.GetImage(*id));
    ASSIGN_OR_RETURN(std::string text, store.ReadConfig(*id));
    json v1 = json::parse(text, nullptr, false);
    std::string created_by;
    if (v1.is_object() && v1.contains("container_config") && v1["container_config"].is_object()) {
      const json& cmd = v1["container_config"].value("Cmd", json());
      if (cmd.is_array()) {
        for (const json& part : cmd) {
          if (!part.is_string()) continue;
          created_by += (created_by.empty() ? "" : " ") + part.get<std::string>();
        }
      }
    }
    uint64_t size = 0;
    if (image.top_layer) {
      if (auto layer = store.GetLayer(*image.top_layer)) size = layer->content_size;
    }
    steps.push_back(
        {image.id, image.created, created_by, size, v1.is_object() ? StringAt(v1, "comment") : ""});
    id = image.parent;
  }
  return steps;
}

// Docker's width for CREATED BY, with "…" for what is cut.
std::string Truncated(std::string text, bool no_trunc) {
  for (char& c : text) c = c == '\t' ? ' ' : c;
  if (no_trunc || text.size() <= 45) return text;
  size_t cut = 44;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // UTF-8
  return text.substr(0, cut) + "\u2026";
}

}  // namespace

int CmdHistory(Store& store, const std::string& name, bool no_trunc, bool as_json) {
  auto id = store.ResolveImage(name);
  if (!id) return ReportError(id.error());
  auto image = store.GetImage(*id);
  if (!image) return ReportError(image.error());
  auto text = store.ReadConfig(*id);
  if (!text) return ReportError(text.error());
  json config = json::parse(*text, nullptr, false);
  bool legacy = image->parent.has_value() || !config.is_object() || !config.contains("rootfs");
  auto steps = legacy ? LegacySteps(store, *image) : ModernSteps(store, *image, config);
  if (!steps) return ReportError(steps.error());
  int64_t now = time(nullptr);
  Table table({"IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"});
  for (const Step& step : *steps) {
    auto created = ParseRfc3339(step.created);
    std::string since = created ? HumanAge(now - *created) : "";
    std::string shown_id = step.id == "<missing>" ? step.id
                           : no_trunc             ? "sha256:" + step.id
                                                  : step.id.substr(0, 12);
    if (as_json) {
      json j = {{"ID", shown_id},
                {"CreatedAt", step.created},
                {"CreatedSince", since},
                {"CreatedBy", step.created_by},
                {"Size", HumanSize(step.size)},
                {"SizeBytes", step.size},
                {"Comment", step.comment}};
      std::cout << j.dump() << "\n";
    } else {
      table.Add({shown_id, since, Truncated(step.created_by, no_trunc), HumanSize(step.size),
                 step.comment});
    }
  }
  if (!as_json) table.Print(std::cout);
  return 0;
}

}  // namespace imagefs

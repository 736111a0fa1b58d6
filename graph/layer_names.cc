#include "graph/layer_names.h"

namespace imagefs {

bool IsAufsMeta(std::string_view path) {
  std::string_view top = path.substr(0, path.find('/'));
  return top.substr(0, kAufsMetaPrefix.size()) == kAufsMetaPrefix && top != kOpaque;
}

namespace {

constexpr std::string_view kPrefetchLandmark = ".prefetch.landmark";
constexpr std::string_view kNoPrefetchLandmark = ".no.prefetch.landmark";

}  // namespace

// eStargz ends with its TOC; zstd:chunked layers made by the same writer keep the TOC
// outside the tar but carry a landmark, a one-byte file at the root.
bool IsStargzLayer(const TarIndex& index) {
  auto entries = index.entries();
  if (entries.empty()) return false;
  if (entries.back().kind == EntryKind::kFile && index.Path(entries.back()) == kStargzToc)
    return true;
  for (const IndexEntry& e : entries) {
    if (e.kind != EntryKind::kFile || e.size != 1) continue;
    std::string_view path = index.Path(e);
    if (path == kPrefetchLandmark || path == kNoPrefetchLandmark) return true;
  }
  return false;
}

bool IsStargzMeta(std::string_view path) {
  return path == kStargzToc || path == kPrefetchLandmark || path == kNoPrefetchLandmark;
}

}  // namespace imagefs

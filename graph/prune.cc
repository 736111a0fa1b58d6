#include "graph/prune.h"

#include <map>

#include "graph/lazy_cache.h"

namespace imagefs {
namespace {

std::map<std::string, uint64_t> TarSizes(const Store& store) {
  std::map<std::string, uint64_t> sizes;  // by DiffID: stored once however many chains share it
  for (const LayerInfo& l : store.Layers()) sizes[l.diff_id.hex()] = l.tar_size;
  return sizes;
}

}  // namespace

PruneReport Prune(Store& store, bool all) {
  PruneReport report;
  std::map<std::string, uint64_t> before = TarSizes(store);
  if (all) {
    // Untagged images that nothing builds on, repeatedly: a v1 chain goes top-down.
    for (bool changed = true; changed;) {
      changed = false;
      for (const ImageInfo& image : store.Images()) {
        if (!store.TagsOf(image.id).empty() || !store.Children(image.id).empty()) continue;
        if (auto st = store.DeleteImage(image.id); !st) {
          if (st.error().code != Code::kBusy) report.errors.push_back(st.error());
          continue;
        }
        report.images.push_back(image.id);
        changed = true;
      }
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (const LayerInfo& layer : store.Layers()) {
      if (store.ImagesUsingLayer(layer.chain_id) != 0) continue;
      if (store.DeleteLayer(layer.chain_id)) {
        report.layers.push_back(layer.chain_id);
        changed = true;
      }
    }
  }
  std::map<std::string, uint64_t> after = TarSizes(store);
  for (const auto& [diff, size] : before) {
    if (!after.count(diff)) report.freed_bytes += size;
  }
  report.freed_bytes += store.DropFileCopies();
  report.freed_bytes += LazyCache(store).DropChunks(all);
  LazyCache(store).DropStale();
  return report;
}

}  // namespace imagefs

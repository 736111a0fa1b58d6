// The loader on whole archives (docker save, legacy and modern; skopeo docker-archive; OCI
// archives; compressed or not): LoadArchive into a store, then every image and layer it
// made is removed, so inputs do not pile up; the store is made afresh every kFreshEvery
// inputs all the same, in case a removal leaves something behind.
#include "graph/loader.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {
namespace {

constexpr int kFreshEvery = 500;

std::unique_ptr<Store> OpenStore(const std::filesystem::path& root) {
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  StoreOptions options;
  options.create = true;
  // A bomb in an input must fail fast, not fill the disk.
  options.max_layer_bytes = 64u << 20;
  auto store = Store::Open(root, options);
  FUZZ_CHECK(store.has_value());
  return std::move(*store);
}

// Removes what a load made: images children first, then the layers nothing uses.
void Empty(Store& store) {
  for (bool removed = true; removed;) {
    removed = false;
    for (const ImageInfo& image : store.Heads()) {
      removed |= store.DeleteImage(image.id, /*force=*/true).has_value();
    }
  }
  for (bool removed = true; removed;) {
    removed = false;
    for (const LayerInfo& layer : store.Layers())
      removed |= store.DeleteLayer(layer.chain_id).has_value();
  }
  // An image the loader reported must be there until now, and nothing may be left.
  FUZZ_CHECK(store.Images().empty());
  FUZZ_CHECK(store.Layers().empty());
}

}  // namespace

void FuzzOne(std::string_view input) {
  static ScratchDir dir("imagefs-fuzz-loader");
  static int runs = 0;
  static std::unique_ptr<Store> store;
  if (runs++ % kFreshEvery == 0) {
    store.reset();
    store = OpenStore(dir.path() / "store");
  }
  std::filesystem::path archive = dir.path() / "input.tar";
  WriteInput(archive, input);
  LoadOptions options;
  options.all_platforms = true;
  auto report = LoadArchive(*store, archive, options);
  if (report) {
    for (const LoadedImage& image : report->images)
      FUZZ_CHECK(store->GetImage(image.id).has_value());
  }
  Empty(*store);
}

}  // namespace imagefs::fuzz

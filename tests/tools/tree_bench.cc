// tree_bench STORE NAME [RUNS]: builds the image's merged tree RUNS times (cold indexes
// the first time) and prints nodes, layers, the median build time and memory per entry.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "graph/store.h"
#include "graph/tree.h"

int main(int argc, char** argv) {
  if (argc < 3) return std::cerr << "usage: tree_bench STORE NAME [RUNS]\n", 2;
  int runs = argc > 3 ? std::atoi(argv[3]) : 5;
  auto store = imagefs::Store::Open(argv[1]);
  if (!store) return std::cerr << store.error().msg << "\n", 1;
  auto id = (*store)->ResolveImage(argv[2]);
  if (!id) return std::cerr << id.error().msg << "\n", 1;
  auto image = (*store)->GetImage(*id);
  std::vector<imagefs::LayerInfo> chain;
  if (image->top_layer) {
    auto c = (*store)->LayerChain(*image->top_layer);
    if (!c) return std::cerr << c.error().msg << "\n", 1;
    chain = std::move(*c);
  }
  size_t layers = chain.size();
  uint64_t entries = 0;
  for (const auto& l : chain) entries += l.entries;
  std::vector<double> ms;
  size_t nodes = 0, bytes = 0;
  for (int i = 0; i < runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto tree = imagefs::Tree::BuildMerged(**store, image->top_layer);
    auto end = std::chrono::steady_clock::now();
    if (!tree) return std::cerr << tree.error().msg << "\n", 1;
    ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    nodes = (*tree)->size();
    bytes = (*tree)->MemoryBytes();
  }
  std::sort(ms.begin(), ms.end());
  std::printf(
      "layers=%zu tar_entries=%llu merged_nodes=%zu build_ms_median=%.1f build_ms_first=%.1f "
      "tree_bytes=%zu bytes_per_node=%.1f\n",
      layers, static_cast<unsigned long long>(entries), nodes, ms[ms.size() / 2], ms.front(), bytes,
      nodes ? double(bytes) / double(nodes) : 0.0);
  return 0;
}

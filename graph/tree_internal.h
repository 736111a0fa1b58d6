// What tree.cc (lookups, reads) and tree_builder.cc (building) share: the child hash the
// slot table is built and probed with, its empty slot, and what a built tree's spans point
// into. Not for other files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "graph/tree.h"

namespace imagefs::tree_internal {

inline constexpr uint32_t kNone = UINT32_MAX;

// FNV-1a: a hash fixed by its definition, as saved trees keep their slot tables (the
// standard library's may differ between builds and libraries).
inline uint64_t HashChild(uint32_t parent, std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return h ^ (uint64_t{parent} * 0x9e3779b97f4a7c15ULL);
}

}  // namespace imagefs::tree_internal

namespace imagefs {

// What a built tree's spans point into (a mapped tree file holds a mapping instead).
struct Tree::Built {
  std::vector<TreeNode> nodes;
  std::vector<uint32_t> children;
  std::string names;
  std::vector<uint32_t> slots;
};

}  // namespace imagefs

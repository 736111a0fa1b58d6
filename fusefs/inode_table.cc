#include "fusefs/inode_table.h"

namespace imagefs {
namespace {

std::string TreeKeyString(const TreeKey& key) {
  const char* kind = key.kind == TreeKind::kMerged ? "m" : key.kind == TreeKind::kDiff ? "d" : "r";
  return std::string(kind) + "|" + (key.top ? key.top->hex() : "") + "|" + key.owner;
}

std::string SyntheticKey(VKind kind, const std::string& key, uint32_t index) {
  return std::to_string(static_cast<int>(kind)) + "|" + std::to_string(index) + "|" + key;
}

}  // namespace

InodeTable::InodeTable(VKind root) { Synthetic(root, ""); }

std::optional<uint64_t> InodeTable::FindSynthetic(VKind kind, const std::string& key,
                                                  uint32_t index) const {
  std::string k = SyntheticKey(kind, key, index);
  std::lock_guard lock(mu_);
  auto it = by_key_.find(k);
  if (it == by_key_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, uint64_t>> InodeTable::SyntheticOfKind(VKind kind) const {
  std::vector<std::pair<std::string, uint64_t>> out;
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < synthetic_.size(); ++i) {
    if (synthetic_[i].kind == kind) out.emplace_back(synthetic_[i].key, i + 1);
  }
  return out;
}

uint64_t InodeTable::Synthetic(VKind kind, const std::string& key, uint32_t index) {
  std::string k = SyntheticKey(kind, key, index);
  std::lock_guard lock(mu_);
  auto it = by_key_.find(k);
  if (it != by_key_.end()) return it->second;
  synthetic_.push_back({kind, key, index});
  uint64_t ino = synthetic_.size();
  by_key_.emplace(std::move(k), ino);
  return ino;
}

std::optional<VNode> InodeTable::GetSynthetic(uint64_t ino) const {
  if (SerialOf(ino) != 0 || ino == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  if (ino > synthetic_.size()) return std::nullopt;
  return synthetic_[ino - 1];
}

std::optional<VKind> InodeTable::KindOf(uint64_t ino) const {
  if (SerialOf(ino) != 0 || ino == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  if (ino > synthetic_.size()) return std::nullopt;
  return synthetic_[ino - 1].kind;
}

uint32_t InodeTable::TreeSerial(const TreeKey& key) {
  std::string k = TreeKeyString(key);
  std::lock_guard lock(mu_);
  if (auto it = tree_by_key_.find(k); it != tree_by_key_.end()) return it->second;
  // 31 bits of the key's hash; probing keeps serials unique within this run.
  Digest h = Sha256::Of(k);
  uint32_t serial =
      static_cast<uint32_t>(std::stoul(h.hex().substr(0, 8), nullptr, 16)) & 0x7fffffffu;
  while (serial == 0 || trees_.count(serial)) serial = (serial + 1) & 0x7fffffffu;
  trees_.emplace(serial, key);
  tree_by_key_.emplace(std::move(k), serial);
  return serial;
}

std::optional<TreeKey> InodeTable::GetTree(uint32_t serial) const {
  std::lock_guard lock(mu_);
  auto it = trees_.find(serial);
  if (it == trees_.end()) return std::nullopt;
  return it->second;
}

}  // namespace imagefs

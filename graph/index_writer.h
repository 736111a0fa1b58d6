// IndexWriter: writes a layer index (tar_index.h's format) one entry at a time as a
// layer is read, never holding it whole in memory. The tar indexer and the eStargz TOC
// reader both write through it, so the format has one writer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/base/error.h"
#include "graph/base/unique_fd.h"
#include "graph/tar_index.h"

namespace imagefs {

class IndexWriter {
 public:
  static Result<std::unique_ptr<IndexWriter>> Create(const std::filesystem::path& out_path);
  ~IndexWriter();

  // A string of the table (a path, a link target): its (offset, length).
  Result<std::pair<uint32_t, uint32_t>> AddString(std::string_view s);
  // An xattr of the entry added next.
  Status AddXattr(std::string_view name, std::string_view value);
  // Appends e with the xattrs added since the last entry and its data runs (none for a
  // contiguous file), filling in e's xattr and extent ranges. Path and link are set by
  // the caller (AddString).
  Status AddEntry(IndexEntry e, std::span<const IndexExtent> runs = {});
  // Writes the tables and the header; tar_size is the size of the layer's stored data.
  Result<IndexSummary> Finish(uint64_t tar_size);

 private:
  class Appender;
  IndexWriter(UniqueFd fd, UniqueFd strings_fd);

  UniqueFd fd_, strings_fd_;
  std::unique_ptr<Appender> entries_, strings_;
  uint64_t entry_count_ = 0;
  std::vector<IndexXattr> xattrs_;    // rare: kept in memory
  std::vector<IndexExtent> extents_;  // sparse files only
  uint32_t pending_xattrs_ = 0;
  IndexSummary summary_;
};

// Appends one scanned tar member (ScanTar) with its strings, xattrs and data runs.
Status AddMember(IndexWriter& out, const ScannedMember& m);

}  // namespace imagefs

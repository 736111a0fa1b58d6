// Layer and image records: what the store keeps about each, and their JSON files
// (layers/<chainid>/layer.json, images/<id>/image.json). These are the store's own
// metadata; an image's config bytes are kept apart, byte-exact, in config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "graph/base/digest.h"
#include "graph/base/error.h"

namespace imagefs {

struct LayerInfo {
  Digest chain_id;
  Digest diff_id;
  std::optional<Digest> parent;  // parent ChainID
  uint64_t tar_size = 0;         // bytes of the stored, uncompressed tar
  uint64_t content_size = 0;     // sum of regular files' sizes
  uint64_t entries = 0;
};

struct ImageInfo {
  std::string id;                     // 64 lowercase hex
  std::optional<Digest> top_layer;    // ChainID; none for an image without layers
  std::optional<std::string> parent;  // parent image ID (v1 chains)
  std::string created;                // RFC 3339, from the config
  uint64_t size = 0;                  // content size of the whole layer chain
  int64_t registered = 0;             // unix seconds
};

std::string EncodeLayerRecord(const LayerInfo& layer);
Result<LayerInfo> DecodeLayerRecord(const std::string& json);
std::string EncodeImageRecord(const ImageInfo& image);
Result<ImageInfo> DecodeImageRecord(const std::string& json);

// Parses an RFC 3339 timestamp ("2024-01-02T03:04:05.123456789Z", offsets allowed)
// into unix seconds (and nanoseconds); nullopt when it is not one.
std::optional<int64_t> ParseRfc3339(const std::string& s);
std::optional<std::pair<int64_t, uint32_t>> ParseRfc3339Nanos(std::string_view s);

}  // namespace imagefs

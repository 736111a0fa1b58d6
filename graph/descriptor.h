// OCI content descriptors ({mediaType, digest, size, platform, annotations, urls}), as
// found in image indexes and manifests, whether read from a layout or a registry.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "graph/base/digest.h"
#include "graph/base/error.h"
#include "graph/platform.h"

namespace imagefs {

struct Descriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  std::optional<Platform> platform;
  nlohmann::json annotations = nlohmann::json::object();
  std::vector<std::string> urls;  // foreign layers
};

// An image config's rootfs.diff_ids, validated; `what` names the config in errors.
Result<std::vector<Digest>> DiffIdsOf(const nlohmann::json& config, const std::string& what);

// Validates and decodes a descriptor; `what` names it in errors.
Result<Descriptor> ParseDescriptor(const nlohmann::json& j, const std::string& what);
// A build attestation (BuildKit's unknown/unknown manifests), never an image to run.
bool IsAttestation(const Descriptor& d);

}  // namespace imagefs

// Platform: an os/arch/variant triple, normalised and matched as containerd and Docker
// do (x86_64 = amd64, aarch64 = arm64, arm64/v8 = arm64, arm without variant = arm/v7;
// an arm/v7 host also runs v6 and v5 images, preferring the highest).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "graph/base/error.h"

namespace imagefs {

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;

  std::string String() const;
  bool operator==(const Platform&) const = default;
};

Platform Normalize(Platform p);
// "os/arch[/variant]", e.g. "linux/arm64", "linux/arm/v7".
Result<Platform> ParsePlatform(std::string_view s);
Platform HostPlatform();
// How well `candidate` serves `wanted`: nullopt when it cannot run there; lower is better.
std::optional<int> MatchRank(const Platform& wanted, const Platform& candidate);

}  // namespace imagefs

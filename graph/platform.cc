#include "graph/platform.h"

#include <sys/utsname.h>

namespace imagefs {

std::string Platform::String() const {
  return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
}

Platform Normalize(Platform p) {
  if (p.os.empty()) p.os = "linux";
  std::string& a = p.architecture;
  if (a == "x86_64" || a == "x86-64") a = "amd64";
  if (a == "i386" || a == "i686") a = "386";
  if (a == "aarch64") a = "arm64";
  if (a == "armhf") {
    a = "arm";
    p.variant = "v7";
  }
  if (a == "armel") {
    a = "arm";
    p.variant = "v6";
  }
  if (!p.variant.empty() && p.variant[0] >= '0' && p.variant[0] <= '9') p.variant = "v" + p.variant;
  if (a == "arm64" && p.variant == "v8") p.variant.clear();
  if (a == "amd64" && p.variant == "v1") p.variant.clear();
  if (a == "arm" && p.variant.empty()) p.variant = "v7";
  return p;
}

Result<Platform> ParsePlatform(std::string_view s) {
  Platform p;
  size_t a = s.find('/');
  if (a == std::string_view::npos || a == 0) {
    return Fail(Code::kInvalid,
                "invalid platform \"" + std::string(s) + "\": want os/arch[/variant]");
  }
  p.os = std::string(s.substr(0, a));
  std::string_view rest = s.substr(a + 1);
  size_t b = rest.find('/');
  p.architecture = std::string(rest.substr(0, b));
  if (b != std::string_view::npos) p.variant = std::string(rest.substr(b + 1));
  if (p.architecture.empty() || p.variant.find('/') != std::string::npos) {
    return Fail(Code::kInvalid,
                "invalid platform \"" + std::string(s) + "\": want os/arch[/variant]");
  }
  return Normalize(p);
}

Platform HostPlatform() {
  struct utsname u;
  Platform p{"linux", "amd64", ""};
  if (uname(&u) == 0) {
    std::string m = u.machine;
    if (m.rfind("armv", 0) == 0 && m.size() >= 5) {
      p.architecture = "arm";
      p.variant = std::string("v") + m[4];
    } else {
      p.architecture = m;
    }
  }
  return Normalize(p);
}

std::optional<int> MatchRank(const Platform& wanted_raw, const Platform& candidate_raw) {
  Platform wanted = Normalize(wanted_raw), candidate = Normalize(candidate_raw);
  if (wanted.os != candidate.os) return std::nullopt;
  // 64-bit arm runs 32-bit arm images, v8 first (as containerd matches for Docker).
  if (wanted.architecture == "arm64" && candidate.architecture == "arm" &&
      candidate.variant.size() == 2) {
    int c = candidate.variant[1] - '0';
    if (c >= 5 && c <= 8) return 100 + (8 - c);
    return std::nullopt;
  }
  if (wanted.architecture != candidate.architecture) return std::nullopt;
  if (wanted.variant == candidate.variant) return 0;
  if (wanted.architecture == "arm" && wanted.variant.size() == 2 && candidate.variant.size() == 2) {
    int w = wanted.variant[1] - '0', c = candidate.variant[1] - '0';
    if (c < w && c >= 5) return w - c;  // v8 hosts run v7, v6, v5 images, best first
    return std::nullopt;
  }
  if (wanted.variant.empty() || candidate.variant.empty()) return 10;
  return std::nullopt;
}

}  // namespace imagefs

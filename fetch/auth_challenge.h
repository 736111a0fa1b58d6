// Parsing of WWW-Authenticate headers (RFC 7235): the challenges a registry answers a
// 401 with, e.g. Bearer realm="https://auth.example/token",service="x",scope="repo:a:pull".
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "graph/base/error.h"

namespace imagefs::fetch {

struct AuthChallenge {
  std::string scheme;                         // lowercased: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lowercased, values unquoted
};

// Parses one header value, which may hold several challenges.
Result<std::vector<AuthChallenge>> ParseAuthChallenges(std::string_view header);

}  // namespace imagefs::fetch

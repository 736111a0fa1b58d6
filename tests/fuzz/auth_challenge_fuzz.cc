// WWW-Authenticate header values as registries send them (several challenges, quoted
// strings with escapes, token68, odd spacing): ParseAuthChallenges.
#include "fetch/auth_challenge.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {

void FuzzOne(std::string_view input) {
  auto challenges = fetch::ParseAuthChallenges(input);
  if (!challenges) return;
  for (const fetch::AuthChallenge& c : *challenges) {
    // Schemes and parameter names come back lowercased.
    for (char ch : c.scheme) FUZZ_CHECK(!(ch >= 'A' && ch <= 'Z'));
    for (const auto& [name, value] : c.params) {
      for (char ch : name) FUZZ_CHECK(!(ch >= 'A' && ch <= 'Z'));
    }
  }
}

}  // namespace imagefs::fuzz

// The registries config file (registries.json): FetchConfig::Parse, then the endpoints of
// every registry it names and of Docker Hub, and the waits and deadlines made from it.
#include <chrono>

#include "fetch/fetch_config.h"
#include "fetch/retry_policy.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {

void FuzzOne(std::string_view input) {
  const std::string text(input);
  (void)fetch::IsLoopbackHost(text);
  auto config = fetch::FetchConfig::Parse(text, "registries.json");
  if (!config) return;
  for (const auto& [domain, registry] : config->registries) {
    auto endpoints = config->EndpointsFor(domain);
    FUZZ_CHECK(!endpoints.empty());  // the registry itself comes last, always
    for (const fetch::Endpoint& e : endpoints) (void)e.base_url;
  }
  (void)config->EndpointsFor("docker.io");
  // Whatever Parse accepts must be usable: the mount turns the tag cache time into a
  // deadline this way (fetch/registry_tree.cc).
  auto ttl = std::chrono::milliseconds(static_cast<int64_t>(config->tag_cache_seconds * 1000));
  (void)(std::chrono::steady_clock::now() + ttl);
  fetch::RetryPolicy retry(config->retries, config->retry_base_ms, {}, /*seed=*/1);
  for (unsigned failures = 0; failures <= config->retries + 1; ++failures) {
    FUZZ_CHECK(retry.Delay(failures) <= std::chrono::seconds(10));
  }
}

}  // namespace imagefs::fuzz

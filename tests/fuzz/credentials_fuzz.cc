// Docker's config.json and containers-auth.json: the same bytes looked up as
// $DOCKER_AUTH_CONFIG and as an auth.json file, for a few registries and repositories;
// and --creds USER:PASS. Credential helpers are looked for on a PATH with nothing on it, so
// an input naming one runs nothing.
#include "fetch/credentials.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {

void FuzzOne(std::string_view text) {
  static ScratchDir dir("imagefs-fuzz-credentials");
  static const bool empty_path = [] {
    std::filesystem::create_directories(dir.path() / "bin");
    return setenv("PATH", (dir.path() / "bin").c_str(), 1) == 0;
  }();
  FUZZ_CHECK(empty_path);
  (void)fetch::ParseCredsFlag(text);

  std::filesystem::path auth_json = dir.path() / "auth.json";
  WriteInput(auth_json, text);
  fetch::CredentialLocations as_env;
  as_env.docker_auth_config = std::string(text);
  fetch::CredentialLocations as_file;
  as_file.auth_files = {auth_json};
  static const std::pair<const char*, const char*> kLookups[] = {
      {"docker.io", "library/busybox"}, {"localhost:5000", "a/b/c"}, {"quay.io", ""}};
  for (const fetch::CredentialLocations& where : {as_env, as_file}) {
    fetch::CredentialSource source(std::nullopt, where);
    for (const auto& [domain, repository] : kLookups) (void)source.Lookup(domain, repository);
  }
}

}  // namespace imagefs::fuzz

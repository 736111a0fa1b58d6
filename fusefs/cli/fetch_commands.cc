#include "fusefs/cli/fetch_commands.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>

#include "fetch/puller.h"
#include "fetch/registry_tree.h"
#include "fusefs/cli/commands.h"
#include "fusefs/cli/format.h"
#include "fusefs/cli/pull_progress.h"
#include "graph/base/log.h"
#include "graph/lazy_cache.h"
#include "graph/prune.h"

namespace imagefs {
namespace {

struct RegistryStack {
  std::unique_ptr<fetch::RegistryClient> client;
  std::unique_ptr<fetch::Puller> puller;
  // The same without credentials: what the mount's registry/ serves to other users.
  std::unique_ptr<fetch::RegistryClient> anonymous_client;
  std::unique_ptr<fetch::Puller> anonymous_puller;
  std::optional<Platform> platform;
};

Result<RegistryStack> MakeStack(Store& store, const RegistryCmdOptions& options) {
  auto path = options.registries_config.empty() ? fetch::FetchConfig::DefaultPath()
                                                : std::filesystem::path(options.registries_config);
  auto loaded = fetch::FetchConfig::Load(path);
  // A home directory this user may not read (sudo -u keeps HOME) is no reason to refuse:
  // only a file named by --registries or $IMAGEFS_REGISTRIES must be readable.
  bool implicit = options.registries_config.empty() && std::getenv("IMAGEFS_REGISTRIES") == nullptr;
  if (!loaded && implicit && loaded.error().code == Code::kIo) {
    Logger("fetch")->warn("{}: using the defaults", loaded.error().msg);
    loaded = fetch::FetchConfig{};
  }
  ASSIGN_OR_RETURN(fetch::FetchConfig config, std::move(loaded));
  for (const std::string& host : options.insecure_registries)
    config.registries[host].insecure = true;
  if (options.stream_unverified) config.stream_unverified = true;
  std::optional<fetch::Credentials> fixed;
  if (!options.creds.empty()) {
    ASSIGN_OR_RETURN(fixed, fetch::ParseCredsFlag(options.creds));
  }
  RegistryStack stack;
  if (!options.platform.empty()) {
    ASSIGN_OR_RETURN(stack.platform, ParsePlatform(options.platform));
  }
  stack.anonymous_client = std::make_unique<fetch::RegistryClient>(
      config, fetch::CredentialSource(std::nullopt, std::filesystem::path()),
      store.root() / "cache");
  stack.anonymous_puller = std::make_unique<fetch::Puller>(store, *stack.anonymous_client);
  stack.client = std::make_unique<fetch::RegistryClient>(
      std::move(config),
      fetch::CredentialSource(fixed, fetch::CredentialLocations::FromEnvironment()),
      store.root() / "cache");
  stack.puller = std::make_unique<fetch::Puller>(store, *stack.client);
  return stack;
}

std::atomic<bool> g_interrupted{false};

}  // namespace

int CmdPull(Store& store, const std::string& reference, const RegistryCmdOptions& options,
            bool quiet) {
  auto ref = ParseReference(reference);
  if (!ref) return ReportError(ref.error());
  auto stack = MakeStack(store, options);
  if (!stack) return ReportError(stack.error());
  std::signal(SIGINT, [](int) { g_interrupted = true; });
  std::signal(SIGTERM, [](int) { g_interrupted = true; });
  Reference wanted = WithDefaultTag(*ref);
  if (!quiet && !ref->digest && ref->tag.empty()) std::cout << "Using default tag: latest\n";
  auto image = stack->puller->Resolve(wanted, stack->platform);
  if (!image) return ReportError(image.error());
  PullProgress progress(stdout, isatty(STDOUT_FILENO) != 0);
  auto id = stack->puller->Pull(*image, quiet ? nullptr : &progress, &g_interrupted);
  if (!id) return ReportError(id.error());
  LazyCache(store).Unmark(*id);  // pulled on purpose: never evicted by a mount's quota
  std::cout << wanted.String() << "\n";
  return 0;
}

int CmdPrune(Store& store, bool all) {
  PruneReport report = Prune(store, all);
  int rc = 0;
  for (const Error& e : report.errors) rc = ReportError(e);
  if (!report.images.empty() || !report.layers.empty()) std::cout << "Deleted Images:\n";
  for (const std::string& id : report.images) std::cout << "deleted: sha256:" << id << "\n";
  for (const Digest& chain : report.layers) std::cout << "deleted layer: " << chain.str() << "\n";
  std::cout << "Total reclaimed space: " << HumanSize(report.freed_bytes) << "\n";
  return rc;
}

int RunMountWithRegistry(Store& store, MountOptions mount, RegistryCmdOptions options) {
  // -o stream_unverified (the form fstab can give) is the flag's twin.
  for (const std::string& group : mount.options) {
    if (("," + group + ",").find(",stream_unverified,") != std::string::npos)
      options.stream_unverified = true;
  }
  auto stack = MakeStack(store, options);
  if (!stack) return ReportError(stack.error());
  fetch::RegistryTree tree(store, {*stack->client, *stack->puller},
                           {*stack->anonymous_client, *stack->anonymous_puller}, stack->platform);
  mount.remote = &tree;
  // Chunks of layers pulled since: the store serves them now.
  LazyCache(store).DropChunks(/*all=*/false);
  auto rc = RunMount(store, std::move(mount));
  return rc ? *rc : ReportError(rc.error());
}

}  // namespace imagefs

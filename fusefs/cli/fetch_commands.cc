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
  for (const std::string& host : options.insecure_registries) config.registries[host].insecure = true;
  std::optional<fetch::Credentials> fixed;
  if (!options.creds.empty()) {
    ASSIGN_OR_RETURN(fixed, fetch::ParseCredsFlag(options.creds));
  }
  RegistryStack stack;
  if (!options.platform.empty()) {
    ASSIGN_OR_RETURN(stack.platform, ParsePlatform(options.platform));
  }
  stack.anonymous_client = std::make_unique<fetch::RegistryClient>(
      config, fetch::CredentialSource(std::nullopt, std::filesystem::path()), store.root() / "cache");
  stack.anonymous_puller = std::make_unique<fetch::Puller>(store, *stack.anonymous_client);
  stack.client = std::make_unique<fetch::RegistryClient>(
      std::move(config), fetch::CredentialSource(fixed, fetch::CredentialSource::DefaultDockerConfig()),
      store.root() / "cache");
  stack.puller = std::make_unique<fetch::Puller>(store, *stack.client);
  return stack;
}

std::atomic<bool> g_interrupted{false};

}  // namespace

int CmdPull(Store& store, const std::string& reference, const RegistryCmdOptions& options, bool quiet) {
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
  // Pulled on purpose: never evicted by the mount's quota.
  std::error_code ec;
  std::filesystem::remove(store.root() / "cache" / "lazy" / *id, ec);
  std::cout << wanted.String() << "\n";
  return 0;
}

int CmdPrune(Store& store, bool all) {
  std::map<std::string, uint64_t> before;
  for (const LayerInfo& l : store.Layers()) before[l.diff_id.hex()] = l.tar_size;
  int rc = 0;
  bool header = false;
  auto say = [&](const std::string& line) {
    if (!header) std::cout << "Deleted Images:\n";
    header = true;
    std::cout << line << "\n";
  };
  if (all) {
    // Untagged images that nothing builds on, repeatedly: a v1 chain goes top-down.
    for (bool changed = true; changed;) {
      changed = false;
      for (const ImageInfo& image : store.Images()) {
        if (!store.TagsOf(image.id).empty() || !store.Children(image.id).empty()) continue;
        if (auto st = store.DeleteImage(image.id); !st) {
          if (st.error().code != Code::kBusy) rc = ReportError(st.error());
          continue;
        }
        say("deleted: sha256:" + image.id);
        changed = true;
      }
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (const LayerInfo& layer : store.Layers()) {
      if (store.ImagesUsingLayer(layer.chain_id) != 0) continue;
      if (auto st = store.DeleteLayer(layer.chain_id); st) {
        say("deleted layer: " + layer.chain_id.str());
        changed = true;
      }
    }
  }
  std::map<std::string, uint64_t> after;
  for (const LayerInfo& l : store.Layers()) after[l.diff_id.hex()] = l.tar_size;
  uint64_t freed = 0;
  for (const auto& [diff, size] : before) {
    if (!after.count(diff)) freed += size;
  }
  // Passthrough copies are made again on demand by a mount.
  freed += store.DropFileCopies();
  std::cout << "Total reclaimed space: " << HumanSize(freed) << "\n";
  return rc;
}

int RunMountWithRegistry(Store& store, MountOptions mount, const RegistryCmdOptions& options) {
  auto stack = MakeStack(store, options);
  if (!stack) return ReportError(stack.error());
  fetch::RegistryTree tree(store, {*stack->client, *stack->puller},
                           {*stack->anonymous_client, *stack->anonymous_puller}, stack->platform);
  mount.remote = &tree;
  auto rc = RunMount(store, std::move(mount));
  return rc ? *rc : ReportError(rc.error());
}

}  // namespace imagefs

#include "fusefs/cli/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <clocale>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "fusefs/cli/commands.h"
#include "fusefs/cli/fetch_commands.h"
#include "fusefs/cli/mount_helper.h"
#include "fusefs/session.h"
#include "graph/base/log.h"
#include "graph/store.h"

namespace imagefs {
namespace {

constexpr int kUsageError = 2;

std::string DefaultStore() {
  if (const char* s = std::getenv("IMAGEFS_STORE"); s && *s) return s;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/imagefs";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/imagefs";
}

}  // namespace

int RunCli(int argc, char** argv) {
  // Tar member names are bytes; a UTF-8 locale lets libarchive hand back PAX (UTF-8)
  // names unchanged instead of failing to convert them to ASCII.
  if (!std::setlocale(LC_CTYPE, "C.UTF-8")) std::setlocale(LC_CTYPE, "");

  CLI::App app{
      "imagefs: mounts a container-image graph as a read-only directory tree.\n"
      "Images and layers live in a store directory; load, inspect, tag and remove them\n"
      "here, and browse them through the mount."};
  app.set_version_flag("--version", std::string("imagefs ") + kVersion);
  app.require_subcommand(1);
  std::string store_dir = DefaultStore();
  std::string log_level = "warn";
  app.add_option("--store", store_dir,
                 "store directory (default: $IMAGEFS_STORE, else $XDG_DATA_HOME/imagefs, else "
                 "~/.local/share/imagefs)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();

  ImagesOptions images_options;
  auto* images = app.add_subcommand("images", "list images (REPOSITORY TAG IMAGE ID CREATED SIZE)");
  images->add_flag("-a,--all", images_options.all, "show intermediate images too");
  std::string images_format;
  images->add_option("--format", images_format, "\"json\": one JSON object per line")
      ->check(CLI::IsMember({"json", "table"}));
  images->add_flag("--no-trunc", images_options.no_trunc, "show full IDs");

  bool layers_no_trunc = false;
  auto* layers =
      app.add_subcommand("layers", "list layers: chain id, parent, diff id, size, images using it");
  layers->add_flag("--no-trunc", layers_no_trunc, "show full IDs");

  std::vector<std::string> inspect_names;
  auto* inspect = app.add_subcommand("inspect", "print an image's (or a layer's) details as JSON");
  inspect->add_option("NAME", inspect_names, "ID|NAME[:TAG]; IDs may be unique prefixes")
      ->required();

  std::string tag_source, tag_target;
  auto* tag = app.add_subcommand("tag", "name an image: imagefs tag SOURCE TARGET");
  tag->add_option("SOURCE", tag_source, "ID|NAME[:TAG]")->required();
  tag->add_option("TARGET", tag_target, "NAME[:TAG]")->required();

  std::vector<std::string> untag_names;
  auto* untag = app.add_subcommand("untag", "remove tags; the images stay");
  untag->add_option("NAME", untag_names, "NAME[:TAG]")->required();

  LoadCmdOptions load_options;
  auto* load = app.add_subcommand(
      "load", "load docker-save (legacy or modern) and OCI archives or layout directories");
  load->add_option("FILE", load_options.files,
                   "tarball (gzip/zstd/xz ok), OCI layout dir, or - for stdin")
      ->required();
  load->add_option("--platform", load_options.platform,
                   "os/arch[/variant] to load from a multi-platform index (default: this host's)");
  load->add_flag("--all-platforms", load_options.all_platforms, "load every platform of an index");
  load->add_flag("-q,--quiet", load_options.quiet, "no progress output");

  std::string export_name, export_output;
  bool export_rootfs = false;
  auto* export_cmd =
      app.add_subcommand("export", "write an image's merged root file system as a tar");
  export_cmd->add_option("NAME", export_name, "ID|NAME[:TAG]")->required();
  export_cmd
      ->add_flag("--rootfs", export_rootfs, "the merged rootfs (what the mount's rootfs/ shows)")
      ->required();
  export_cmd->add_option("-o,--output", export_output, "file to write (default: standard output)");

  std::vector<std::string> save_names;
  std::string save_output;
  auto* save = app.add_subcommand(
      "save", "write images as one docker-save tarball (docker load, podman load, imagefs load)");
  save->add_option("NAME", save_names, "ID|NAME[:TAG]...")->required();
  save->add_option("-o,--output", save_output, "file to write (default: standard output)");

  MountOptions mount_options;
  auto* mount = app.add_subcommand(
      "mount", "serve the store as a read-only tree until unmounted (fusermount3 -u, or Ctrl-C)");
  mount->add_option("MOUNTPOINT", mount_options.mountpoint, "an existing directory")->required();
  mount->add_flag("-d,--daemon", mount_options.daemon,
                  "go to the background once the mount is up (exit status says if it came up)");
  mount->add_option(
      "-o", mount_options.options,
      "mount options: uid=N,gid=N (show every entry as owned by them), share_credentials (other "
      "users' registry/ lookups use your credentials too; by default theirs are anonymous), "
      "stream_unverified (as --stream-unverified) and "
      "libfuse's, e.g. allow_other (needs user_allow_other in /etc/fuse.conf)");
  mount
      ->add_option("--cache-nodes", mount_options.fs.cache_nodes,
                   "tree nodes kept in memory (about 50 bytes each)")
      ->capture_default_str();
  std::string opens = "kernel";
  mount
      ->add_option(
          "--opens", opens,
          "kernel: the kernel opens and closes files itself (small files at page-cache speed; an "
          "upload to import/ loads after close() returns); daemon: every open and close asks the "
          "daemon (large files can be passed through; close() of an upload reports its load)")
      ->check(CLI::IsMember({"kernel", "daemon"}))
      ->capture_default_str();
  auto* passthrough_min =
      mount
          ->add_option(
              "--passthrough-min", mount_options.fs.passthrough_min,
              "with --opens daemon: files this large (e.g. 32M) are read by the kernel from a "
              "plain copy kept "
              "in the store (FUSE passthrough, needs root and Linux >= 6.9); 0 turns it off")
          ->transform(CLI::AsSizeValue(false))
          ->capture_default_str();

  RegistryCmdOptions registry_options;
  auto add_registry_options = [&](CLI::App* cmd) {
    cmd->add_option(
        "--registries", registry_options.registries_config,
        "registries config (mirrors, CA files, insecure hosts, quota); default: "
        "$IMAGEFS_REGISTRIES, "
        "else $XDG_CONFIG_HOME/imagefs/registries.json, else ~/.config/imagefs/registries.json");
    cmd->add_option("--creds", registry_options.creds,
                    "USER:PASS for the registry (default: Docker's config and credential helpers, "
                    "then Podman's auth.json)");
    cmd->add_option("--platform", registry_options.platform,
                    "os/arch[/variant] to pick from a multi-platform image");
    cmd->add_option("--insecure-registry", registry_options.insecure_registries,
                    "HOST[:PORT] to reach over plain http (repeatable; loopback hosts need none)");
  };
  add_registry_options(mount);
  mount->add_flag("--stream-unverified", registry_options.stream_unverified,
                  "serve registry/ images of plain (gzip, zstd) layers while they download, "
                  "before their digests are checked: a file whose layer turns out wrong "
                  "reads as EIO afterwards (also: \"stream_unverified\": true in registries.json)");
  std::string pull_ref;
  bool pull_quiet = false;
  auto* pull = app.add_subcommand("pull", "download an image from a registry into the store");
  pull->add_option("NAME", pull_ref, "NAME[:TAG|@DIGEST], e.g. busybox, localhost:5000/app:1")
      ->required();
  pull->add_flag("-q,--quiet", pull_quiet, "no progress output");
  add_registry_options(pull);
  bool prune_all = false;
  auto* prune = app.add_subcommand("prune",
                                   "remove layers no image uses and the mount's passthrough copies "
                                   "(and with --all, images no tag names)");
  prune->add_flag("-a,--all", prune_all,
                  "also remove untagged images that no other image builds on");

  std::vector<std::string> rm_names;
  bool rm_force = false;
  auto* rm = app.add_subcommand(
      "rm",
      "remove images (or layers); refuses while another image or layer depends on one "
      "or a transfer holds it");
  rm->add_option("NAME", rm_names, "ID|NAME[:TAG]")->required();
  rm->add_flag("-f,--force", rm_force, "remove an image tagged in several repositories");

  std::string history_name, history_format = "table";
  bool history_no_trunc = false;
  auto* history = app.add_subcommand("history", "show an image's build steps, as docker history");
  history->add_option("NAME", history_name, "ID|NAME[:TAG]")->required();
  history->add_flag("--no-trunc", history_no_trunc, "full IDs and commands");
  history->add_option("--format", history_format, "table or json (one object per line)")
      ->check(CLI::IsMember({"table", "json"}));

  std::string diff_from, diff_to, diff_format = "table";
  auto* diff = app.add_subcommand(
      "diff", "paths added (A), removed (D) and changed (C) from one image's rootfs to another's");
  diff->add_option("FROM", diff_from, "ID|NAME[:TAG]")->required();
  diff->add_option("TO", diff_to, "ID|NAME[:TAG]")->required();
  diff->add_option("--format", diff_format, "table or json (one object per line)")
      ->check(CLI::IsMember({"table", "json"}));

  bool check_repair = false, check_json = false;
  auto* check = app.add_subcommand(
      "check", "verify every blob, layer, image and tag of the store; exit 0 only when sound");
  check->add_flag("--repair", check_repair,
                  "remove what is broken or orphaned (never a sound image) and say what went");
  check->add_flag("--json", check_json, "print the report as JSON");

  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
      names.push_back(sub->get_name());
    if (IsMountHelperForm(args, names)) {
      auto translated = TranslateMountHelperArgs(args);
      if (!translated) {
        std::cerr << "imagefs: " << translated.error().msg << "\n";
        return kUsageError;
      }
      std::reverse(translated->begin(), translated->end());  // CLI11 takes them last first
      app.parse(*translated);
    } else {
      app.parse(argc, argv);
    }
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kUsageError;
  }

  mount_options.fs.kernel_opens = opens == "kernel";
  if (mount_options.fs.kernel_opens) {
    if (passthrough_min->count() > 0 && mount_options.fs.passthrough_min != 0) {
      std::cerr
          << "imagefs: --passthrough-min needs --opens daemon (passthrough is set up at open)\n";
      return kUsageError;
    }
    mount_options.fs.passthrough_min = 0;
  }

  auto level = ParseLogLevel(log_level);
  InitLogging(level ? *level : spdlog::level::warn);

  // Only commands that add images may make a store; the others must find one.
  StoreOptions store_options;
  store_options.create = *load || *pull || *mount;
  store_options.recover = !*check;  // check reports what a crash left before anything cleans it
  auto store = Store::Open(store_dir, store_options);
  if (!store) return ReportError(store.error());
  Store& s = **store;

  if (*images) {
    images_options.json = images_format == "json";
    return CmdImages(s, images_options);
  }
  if (*layers) return CmdLayers(s, layers_no_trunc);
  if (*inspect) return CmdInspect(s, inspect_names);
  if (*tag) return CmdTag(s, tag_source, tag_target);
  if (*untag) return CmdUntag(s, untag_names);
  if (*rm) return CmdRm(s, rm_names, rm_force);
  if (*load) return CmdLoad(s, load_options);
  if (*mount) return RunMountWithRegistry(s, mount_options, registry_options);
  if (*pull) return CmdPull(s, pull_ref, registry_options, pull_quiet);
  if (*prune) return CmdPrune(s, prune_all);
  if (*export_cmd) return CmdExportRootfs(s, export_name, export_output);
  if (*save) return CmdSave(s, save_names, save_output);
  if (*check) return CmdCheck(s, check_repair, check_json);
  if (*diff) return CmdDiff(s, diff_from, diff_to, diff_format == "json");
  if (*history) return CmdHistory(s, history_name, history_no_trunc, history_format == "json");
  return kUsageError;
}

}  // namespace imagefs

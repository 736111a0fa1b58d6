#include "fusefs/cli/mount_helper.h"

#include <algorithm>
#include <array>
#include <sstream>
#include <string_view>

namespace imagefs {
namespace {

// Passed through to libfuse (kernel mount flags and FUSE mount options it knows).
constexpr std::array<std::string_view, 14> kLibfuseOptions = {
    "allow_other", "auto_unmount", "dev",  "nodev",   "suid",  "nosuid",  "exec",
    "noexec",      "async",        "sync", "dirsync", "atime", "noatime", "nodiratime"};
// Ours, with a value, as the mount subcommand's flags.
struct Flag {
  std::string_view option;
  std::string_view flag;
  bool global = false;  // before the subcommand
};
constexpr std::array<Flag, 6> kFlags = {{{"opens", "--opens"},
                                         {"cache_nodes", "--cache-nodes"},
                                         {"passthrough_min", "--passthrough-min"},
                                         {"registries", "--registries"},
                                         {"platform", "--platform"},
                                         {"log_level", "--log-level", true}}};

std::string Known() {
  std::string all = "ro, rw, uid=, gid=, share_credentials, stream_unverified, foreground";
  for (const Flag& f : kFlags) all += ", " + std::string(f.option) + "=";
  for (std::string_view o : kLibfuseOptions) all += ", " + std::string(o);
  return all;
}

}  // namespace

bool IsMountHelperForm(const std::vector<std::string>& args,
                       const std::vector<std::string>& subcommands) {
  if (args.size() < 2 || args[0].empty() || args[0][0] == '-' || args[1].empty() ||
      args[1][0] == '-')
    return false;
  return std::find(subcommands.begin(), subcommands.end(), args[0]) == subcommands.end();
}

Result<std::vector<std::string>> TranslateMountHelperArgs(const std::vector<std::string>& args) {
  std::vector<std::string> global = {"--store", args.at(0)};
  std::vector<std::string> mount = {"mount", args.at(1)};
  std::string fuse_opts;
  bool foreground = false;
  for (size_t i = 2; i < args.size(); ++i) {
    if (args[i] != "-o" || i + 1 == args.size()) {
      return Fail(Code::kInvalid, "unexpected argument \"" + args[i] +
                                      "\": want imagefs STORE MOUNTPOINT [-o OPTIONS]");
    }
    std::stringstream ss(args[++i]);
    std::string opt;
    while (std::getline(ss, opt, ',')) {
      if (opt.empty() || opt == "ro" || opt == "rw" || opt == "default_permissions") continue;
      std::string name = opt.substr(0, opt.find('='));
      bool has_value = name.size() < opt.size();
      std::string value = has_value ? opt.substr(name.size() + 1) : "";
      if (opt == "foreground") {
        foreground = true;
        continue;
      }
      auto flag = std::find_if(kFlags.begin(), kFlags.end(),
                               [&](const Flag& f) { return f.option == name; });
      if (flag != kFlags.end() && has_value) {
        auto& into = flag->global ? global : mount;
        into.insert(into.end(), {std::string(flag->flag), value});
        continue;
      }
      bool ours = (name == "uid" || name == "gid")
                      ? has_value
                      : opt == "share_credentials" || opt == "stream_unverified";
      bool libfuse = !has_value && std::find(kLibfuseOptions.begin(), kLibfuseOptions.end(),
                                             name) != kLibfuseOptions.end();
      if (!ours && !libfuse) {
        return Fail(Code::kInvalid,
                    "unknown mount option \"" + opt + "\" (imagefs knows: " + Known() + ")");
      }
      fuse_opts += (fuse_opts.empty() ? "" : ",") + opt;
    }
  }
  // mount(8) waits for its helper to exit: serve from the background once the mount is up.
  if (!foreground) mount.push_back("--daemon");
  if (!fuse_opts.empty()) mount.insert(mount.end(), {"-o", fuse_opts});
  global.insert(global.end(), mount.begin(), mount.end());
  return global;
}

}  // namespace imagefs

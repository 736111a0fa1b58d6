#include "fusefs/import_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/base/scope_guard.h"
#include "graph/loader.h"

namespace imagefs {

Result<std::unique_ptr<ImportDir>> ImportDir::Create(Store& store) {
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Create(store.root() / "tmp", "import-"));
  // Keep the directory (the TempDir would remove it): the ImportDir removes it when done.
  std::filesystem::path path = dir.path();
  std::filesystem::path kept = path.string() + "-" + std::to_string(getpid());
  if (::rename(path.c_str(), kept.c_str()) != 0) return FailErrno("rename " + path.string());
  return std::unique_ptr<ImportDir>(new ImportDir(store, kept));
}

ImportDir::~ImportDir() { (void)RemoveTree(dir_); }

Result<std::filesystem::path> ImportDir::PathOf(const std::string& name) const {
  if (name.empty() || name == "." || name == ".." || name.size() > 255 ||
      name.find('/') != std::string::npos) {
    return Fail(Error{Code::kInvalid, EINVAL, "invalid name in import/: \"" + name + "\""});
  }
  return dir_ / name;
}

std::vector<std::string> ImportDir::List() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
    out.push_back(e.path().filename());
  return out;
}

Result<struct stat> ImportDir::DirStat() const {
  struct stat st;
  if (::stat(dir_.c_str(), &st) != 0) return FailErrno("stat " + dir_.string());
  return st;
}

Result<struct stat> ImportDir::Stat(const std::string& name) const {
  ASSIGN_OR_RETURN(auto path, PathOf(name));
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return FailErrno("import/" + name);
  return st;
}

Result<UniqueFd> ImportDir::Open(const std::string& name, int flags, mode_t mode) const {
  ASSIGN_OR_RETURN(auto path, PathOf(name));
  return OpenFile(path, (flags & ~O_NOFOLLOW) | O_NOFOLLOW, mode & 0600);
}

Status ImportDir::Unlink(const std::string& name) const {
  ASSIGN_OR_RETURN(auto path, PathOf(name));
  if (::unlink(path.c_str()) != 0) return FailErrno("import/" + name);
  return {};
}

Status ImportDir::Truncate(const std::string& name, off_t size) const {
  ASSIGN_OR_RETURN(auto path, PathOf(name));
  if (::truncate(path.c_str(), size) != 0) return FailErrno("import/" + name);
  return {};
}

void ImportDir::WaitForLoad(const std::string& name) {
  std::unique_lock lock(mu_);
  loaded_.wait(lock, [&] { return loading_.count(name) == 0; });
}

void ImportDir::WaitForLoads() {
  std::unique_lock lock(mu_);
  loaded_.wait(lock, [&] { return loading_.empty(); });
}

Status ImportDir::Finish(const std::string& name) {
  ASSIGN_OR_RETURN(auto path, PathOf(name));
  {
    std::lock_guard lock(mu_);
    loading_.insert(name);
  }
  ScopeGuard done([&] {
    {
      std::lock_guard lock(mu_);
      loading_.erase(loading_.find(name));
    }
    loaded_.notify_all();
  });
  auto report = LoadArchive(store_, path);
  std::string message;
  if (!report) {
    message = report.error().msg;
  } else {
    for (const Error& e : report->failures) message += (message.empty() ? "" : "\n") + e.msg;
    for (const LoadedImage& image : report->images) {
      Logger("fusefs")->info("import {}: loaded image {}", name, image.id);
    }
  }
  ::unlink(path.c_str());
  if (message.empty()) return {};
  // The file is named by its path in the staging dir; say it as the user wrote it.
  std::string shown = message;
  for (size_t at; (at = shown.find(path.string())) != std::string::npos;)
    shown.replace(at, path.string().size(), "import/" + name);
  Logger("fusefs")->error("import {}: {}", name, shown);
  (void)WriteFileAtomic(dir_ / (name + ".error"), shown + "\n");
  return Fail(Error{Code::kInvalid, EIO, shown});
}

}  // namespace imagefs

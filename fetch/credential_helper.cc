#include "fetch/credential_helper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "graph/base/unique_fd.h"

extern char** environ;

namespace imagefs::fetch {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxStdout = 1u << 20;
constexpr size_t kMaxStderr = 64u << 10;
constexpr size_t kMaxStderrShown = 512;
// docker-credential-helpers' ErrCredentialsNotFound, printed with a non-zero exit.
constexpr std::string_view kNotFound = "credentials not found in native keychain";

std::string_view Trim(std::string_view s) {
  const char* space = " \t\r\n";
  size_t b = s.find_first_not_of(space);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(space) - b + 1);
}

// One line, bounded: it goes into an error message.
std::string Shown(std::string_view err) {
  std::string out(Trim(err).substr(0, kMaxStderrShown));
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return out;
}

struct Pipe {
  UniqueFd read, write;
};

// Both ends O_CLOEXEC from the start (no other thread's child inherits them) and above
// 0..2, so dup2 onto the child's stdio never meets itself when ours are closed.
Result<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return FailErrno("pipe2");
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  for (UniqueFd* fd : {&p.read, &p.write}) {
    if (fd->get() > 2) continue;
    int moved = fcntl(fd->get(), F_DUPFD_CLOEXEC, 3);
    if (moved < 0) return FailErrno("fcntl F_DUPFD_CLOEXEC");
    fd->Reset(moved);
  }
  return p;
}

class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  posix_spawn_file_actions_t* actions() { return &actions_; }
  posix_spawnattr_t* attr() { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

struct Finished {
  std::string out, err;
  bool out_overflow = false;
  bool timed_out = false;
  bool stopped = false;
  int poll_errno = 0;  // waiting on the pipes failed (the helper is killed)
  int status = 0;      // as waitpid reports it
};

constexpr auto kStopPoll = std::chrono::milliseconds(100);

bool Stopped(const HelperBounds& bounds, Finished& f) {
  if (bounds.stopped && bounds.stopped()) f.stopped = true;
  return f.stopped;
}

// Reads stdout and stderr together (either may fill its pipe while we wait on the other)
// until both end, the deadline passes or the caller stops waiting.
bool Drain(int out_fd, int err_fd, Finished& f, Clock::time_point deadline,
           const HelperBounds& bounds) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  char buf[8192];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || Stopped(bounds, f)) return false;
    int n = poll(fds, 2, static_cast<int>(std::min(left, kStopPoll).count()) + 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      f.poll_errno = errno;
      return false;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        fds[i].fd = -1;  // EOF (or an error: the same for us)
        continue;
      }
      std::string& to = i == 0 ? f.out : f.err;
      size_t limit = i == 0 ? kMaxStdout : kMaxStderr;
      size_t keep = std::min(static_cast<size_t>(got), limit - std::min(limit, to.size()));
      to.append(buf, keep);
      if (i == 0 && keep < static_cast<size_t>(got)) f.out_overflow = true;
    }
  }
  return true;
}

// Waits for pid until the deadline (or the caller stops waiting), then kills it. A
// grandchild that kept the pipes open is not waited for: the deadline bounds us, not it.
void Reap(pid_t pid, Finished& f, Clock::time_point deadline, const HelperBounds& bounds) {
  for (;;) {
    pid_t r = waitpid(pid, &f.status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return;
    if (Clock::now() >= deadline || Stopped(bounds, f)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!f.stopped) f.timed_out = true;
  kill(pid, SIGKILL);
  while (waitpid(pid, &f.status, 0) < 0 && errno == EINTR) {
  }
}

Result<Finished> Run(const std::string& program, const std::string& input,
                     const HelperBounds& bounds) {
  ASSIGN_OR_RETURN(Pipe in, MakePipe());
  ASSIGN_OR_RETURN(Pipe out, MakePipe());
  ASSIGN_OR_RETURN(Pipe err, MakePipe());
  // The input fits the pipe's buffer: written before the child exists, it cannot block
  // and cannot raise SIGPIPE if the helper exits without reading it.
  if (input.size() > 4096) return Fail(Code::kInvalid, "server URL too long");
  if (write(in.write.get(), input.data(), input.size()) != static_cast<ssize_t>(input.size()))
    return FailErrno("write to " + program);
  in.write.Reset();
  SpawnSetup setup;
  posix_spawn_file_actions_adddup2(setup.actions(), in.read.get(), 0);
  posix_spawn_file_actions_adddup2(setup.actions(), out.write.get(), 1);
  posix_spawn_file_actions_adddup2(setup.actions(), err.write.get(), 2);
  // The mount's threads block signals; the helper starts as a fresh process would.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(setup.attr(), &none);
  posix_spawnattr_setsigdefault(setup.attr(), &all);
  posix_spawnattr_setflags(setup.attr(), POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string arg0 = program, arg1 = "get";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const auto deadline = Clock::now() + bounds.timeout;
  if (int rc = posix_spawnp(&pid, program.c_str(), setup.actions(), setup.attr(), argv, environ);
      rc != 0) {
    if (rc == ENOENT) return Fail(Code::kNotFound, program + ": not found on PATH");
    return Fail(Error::FromErrno("run " + program, rc));
  }
  in.read.Reset();
  out.write.Reset();
  err.write.Reset();
  Finished f;
  bool drained = Drain(out.read.get(), err.read.get(), f, deadline, bounds);
  if (!drained && !f.stopped && f.poll_errno == 0) f.timed_out = true;
  Reap(pid, f, drained ? deadline : Clock::now(), bounds);
  if (f.poll_errno != 0)
    return Fail(Error::FromErrno("read the output of " + program, f.poll_errno));
  return f;
}

std::string ExitText(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace

Result<std::optional<HelperCredentials>> RunCredentialHelper(const std::string& helper,
                                                             const std::string& server_url,
                                                             const HelperBounds& bounds) {
  const std::string program = "docker-credential-" + helper;
  const std::string what = "credential helper " + program + " get " + server_url;
  // A name is a suffix, never a path (a config file must not pick any program to run).
  if (helper.empty() || helper.find('/') != std::string::npos)
    return Fail(Code::kInvalid, "invalid credential helper name \"" + helper + "\"");
  auto ran = Run(program, server_url, bounds);
  if (!ran) return Fail(ran.error().WithContext(what));
  const Finished& f = *ran;
  if (f.stopped) return Fail(Code::kCancelled, what + ": cancelled, killed");
  if (f.timed_out) {
    return Fail(Code::kAuth, what + ": no answer within " + std::to_string(bounds.timeout.count()) +
                                 " ms, killed");
  }
  if (Trim(f.out) == kNotFound || Trim(f.err) == kNotFound) return std::nullopt;
  if (!WIFEXITED(f.status) || WEXITSTATUS(f.status) != 0) {
    std::string err = Shown(f.err);
    return Fail(Code::kAuth, what + ": " + ExitText(f.status) + (err.empty() ? "" : ": " + err));
  }
  if (f.out_overflow) return Fail(Code::kAuth, what + ": its output is larger than 1 MiB");
  auto j = nlohmann::json::parse(f.out, nullptr, false);
  // Never quote the output: it is where the secret would be.
  if (j.is_discarded() || !j.is_object() || !j.contains("Secret") || !j["Secret"].is_string() ||
      (j.contains("Username") && !j["Username"].is_string())) {
    return Fail(Code::kAuth, what + ": its output is not {\"Username\", \"Secret\"} JSON");
  }
  HelperCredentials c{j.value("Username", std::string()), j["Secret"].get<std::string>()};
  if (c.username.empty() && c.secret.empty()) return std::nullopt;
  return c;
}

}  // namespace imagefs::fetch

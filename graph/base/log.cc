#include "graph/base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>

#include <mutex>

namespace imagefs {
namespace {
std::mutex mu;
spdlog::sink_ptr sink;                                          // guarded by mu
spdlog::level::level_enum current_level = spdlog::level::warn;  // guarded by mu
}  // namespace

Result<spdlog::level::level_enum> ParseLogLevel(const std::string& name) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"off", spdlog::level::off}};
  for (const auto& [n, l] : kLevels) {
    if (name == n) return l;
  }
  return Fail(Code::kInvalid, "unknown log level \"" + name + "\"");
}

void InitLogging(spdlog::level::level_enum level, bool use_syslog) {
  std::lock_guard lock(mu);
  if (use_syslog) {
    sink = std::make_shared<spdlog::sinks::syslog_sink_mt>("imagefs", 0, LOG_USER, false);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
  }
  sink->set_pattern(use_syslog ? "%n: %v" : "%^%l%$ %n: %v");
  current_level = level;
  for (const char* name : {"graph", "fetch", "fusefs"}) {
    spdlog::drop(name);
    auto logger = std::make_shared<spdlog::logger>(name, sink);
    logger->set_level(level);
    spdlog::register_logger(logger);
  }
}

std::shared_ptr<spdlog::logger> Logger(const std::string& name) {
  if (auto l = spdlog::get(name)) return l;
  std::lock_guard lock(mu);
  if (auto l = spdlog::get(name)) return l;
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_level(current_level);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace imagefs

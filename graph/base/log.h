// Logging setup: the loggers "graph", "fetch" and "fusefs" share one sink
// (stderr in the foreground, syslog when daemonized) and one level.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "graph/base/error.h"

namespace imagefs {

// Parses trace|debug|info|warn|error|off.
Result<spdlog::level::level_enum> ParseLogLevel(const std::string& name);
void InitLogging(spdlog::level::level_enum level, bool use_syslog = false);
// Returns the named logger, creating it with the shared sink if needed.
std::shared_ptr<spdlog::logger> Logger(const std::string& name);
// The three modules' loggers.
inline std::shared_ptr<spdlog::logger> GraphLog() { return Logger("graph"); }
inline std::shared_ptr<spdlog::logger> FetchLog() { return Logger("fetch"); }
inline std::shared_ptr<spdlog::logger> FusefsLog() { return Logger("fusefs"); }

}  // namespace imagefs

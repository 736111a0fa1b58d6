// The imagefs command line: global options, subcommands and exit codes
// (0 success, 1 failure, 2 usage error). See README.md, "CLI".
#pragma once

namespace imagefs {

int RunCli(int argc, char** argv);

// "0.1.0 (git <describe>)": the project version and the source's revision (version.cmake).
extern const char* const kVersion;

}  // namespace imagefs

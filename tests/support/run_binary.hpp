#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace retentiond::test {

// How a run of the real binary ended and what it wrote.
struct RunResult {
  int exit_code = -1;  // the exit status; 128 + N when killed by signal N
  std::string out;     // everything written to stdout
  std::string err;     // everything written to stderr
};

// Runs the built retentiond (RETENTIOND_BINARY) with `args`, stdin from /dev/null, and waits for
// it. The child inherits this process's environment without RETENTIOND_CONFIG, so a test only
// sees the configuration it names; `env` adds or overrides variables. `cwd`, when not empty, is
// the child's working directory. Throws std::runtime_error when the child cannot be started.
RunResult run_retentiond(const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env = {},
                         const std::filesystem::path& cwd = {});

}  // namespace retentiond::test

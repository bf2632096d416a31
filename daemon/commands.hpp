#pragma once

#include "daemon/cli.hpp"

#include <atomic>

namespace retentiond {

// Executes a parsed command line and returns the exit status. Throws ConfigError (exit 78),
// UsageError (exit 2); runtime failures of single rules are reported and give exit 1.
int run_command(const CommandLine& line, const std::atomic<bool>& stop);

}  // namespace retentiond

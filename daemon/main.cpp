// retentiond: enforces data-retention rules on datastores. See README.md and SPEC.
#include "daemon/cli.hpp"
#include "daemon/commands.hpp"
#include "daemon/config.hpp"
#include "daemon/logging.hpp"
#include "daemon/service.hpp"

#include <atomic>
#include <csignal>
#include <iostream>
#include <string>
#include <sys/resource.h>

namespace {

std::atomic<bool> g_stop{false};

// SIGTERM/SIGINT: finish the current batch, audit it, and stop.
extern "C" void request_stop(int) {
  g_stop.store(true);
}

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

// Linked files are held open by descriptor until their batch commits: use the whole hard limit.
void raise_descriptor_limit() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace retentiond;
  try {
    const CommandLine line = parse_command_line({argv + 1, argv + argc});
    if (line.help) {
      std::cout << usage_text();
      return k_exit_ok;
    }
    if (line.version) {
      std::cout << "retentiond " RETENTIOND_VERSION "\n";
      return k_exit_ok;
    }
    configure_logging(line.log_level);
    // run and once finish the batch under way on SIGTERM; every other command changes nothing
    // or one transaction at most, and ends at once, as a signal's default has it.
    if (line.command.front() == "run")
      block_service_signals();
    else if (line.command.front() == "once")
      install_signal_handlers();
    raise_descriptor_limit();
    return run_command(line, g_stop);
  } catch (const UsageError& error) {
    print_message(spdlog::level::err, std::string("retentiond: error: ") + error.what());
    return k_exit_usage;
  } catch (const ConfigError& error) {
    print_message(spdlog::level::err, std::string("retentiond: error: ") + error.what());
    return k_exit_config;
  } catch (const std::exception& error) {
    print_message(spdlog::level::err, std::string("retentiond: error: ") + error.what());
    return k_exit_rule_failed;
  }
}

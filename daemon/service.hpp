#pragma once

#include "daemon/config.hpp"

#include <filesystem>
#include <memory>

namespace retentiond {

// `retentiond run`: the long-running service. Schedules every rule (a rule whose last run is
// older than its schedule allows runs at once), one rule at a time; reloads `config_file` on
// SIGHUP (an invalid one is logged and the running config kept); on SIGTERM/SIGINT finishes the
// current batch, audits it and returns 0. Talks to systemd through $NOTIFY_SOCKET (READY=1,
// RELOADING=1, STOPPING=1, STATUS=, WATCHDOG=1) and serves metrics on metrics_listen.
// Returns 75 when another process holds the state file's lock.
int command_run(const std::filesystem::path& config_file, std::shared_ptr<const Config> config);

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, for `run`: called first thing, so
// one sent while the configuration loads waits for the service's signal thread (SIGHUP would
// otherwise kill the process, and SIGTERM be lost).
void block_service_signals();

}  // namespace retentiond

#pragma once

#include "adapters/datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/instance_lock.hpp"

#include <optional>
#include <string>

namespace retentiond {

// What the commands that change things share (`once`, `run`, `hold`).

// The adapters' secrets (the hmac mask's key), read from the key files the config names.
// Throws ConfigError when a key file is unreadable or too short.
adapters::AdapterSecrets secrets_of(const Config& config);

// The audit chain's HMAC key, when the config names one.
std::optional<std::string> audit_key_of(const Config& config);

// The state file's directory is created on first use (the default lives in /var/lib); a
// PostgreSQL state has none.
void create_state_directory(const Config& config);

// Takes what keeps other processes off the state into `lock`: for a SQLite state, the
// one-process-per-state-file lock. A PostgreSQL state needs none here: several hosts share it,
// and each rule is locked when it runs (StateStore::lock_rule). When another process holds the
// lock, says so on stderr (naming its pid) and returns false: the caller exits 75.
bool lock_state(const Config& config, std::optional<InstanceLock>& lock);

}  // namespace retentiond

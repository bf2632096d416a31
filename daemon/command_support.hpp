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

// The state file's directory is created on first use (the default lives in /var/lib).
void create_state_directory(const Config& config);

// Takes the one-process-per-state-file lock. When another process holds it, says so on stderr
// (naming its pid) and returns nothing: the caller exits 75.
std::optional<InstanceLock> lock_state(const Config& config);

}  // namespace retentiond

#pragma once

#include "daemon/state_store.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace retentiond::test {

// One fresh, empty state of one backend, for the tests every backend must pass.
class StateFixture {
public:
  virtual ~StateFixture() = default;
  // A store on this state; several may be open at once, as several processes would.
  virtual std::unique_ptr<StateStore> open(StateStore::Mode mode,
                                           std::optional<std::string> audit_key = {}) const = 0;
  // Runs `sql` against the state's tables (audit, holds, runs) on a connection of its own, as
  // someone with direct access to the state's files or database would.
  virtual void tamper(const std::string& sql) const = 0;
};

struct StateBackend {
  std::string name;
  std::function<std::unique_ptr<StateFixture>()> fixture;
};

// SQLite (a file in a temporary directory) and PostgreSQL (a database on the test server).
const std::vector<StateBackend>& state_backends();

// Runs `clause` once per backend, naming the backend in any failure.
void for_each_state_backend(const std::function<void(const StateBackend&)>& clause);

}  // namespace retentiond::test

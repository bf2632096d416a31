// The single-instance lock: one lock per state file, whatever name leads to it.
#include "daemon/instance_lock.hpp"
#include "tests/support/temp_dir.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

using retentiond::InstanceLock;
using retentiond::test::TempDir;

namespace {

// Whether a second try on `state_path` finds the lock held, by this process (flock locks of two
// opens conflict within one process as between two).
bool held_through(const std::filesystem::path& state_path) {
  std::string holder;
  const std::optional<InstanceLock> second = InstanceLock::try_acquire(state_path, holder);
  if (second)
    return false;
  CHECK(holder == std::to_string(::getpid()));
  return true;
}

}  // namespace

TEST_CASE("instance lock: a second lock on the same state is refused, and released with the "
          "first") {
  TempDir dir;
  const auto state = dir / "state.db";
  std::string holder;
  {
    auto first = InstanceLock::try_acquire(state, holder);
    REQUIRE(first.has_value());
    CHECK(std::filesystem::exists(std::filesystem::canonical(dir.path()) / "state.db.lock"));
    CHECK(held_through(state));
  }
  CHECK(InstanceLock::try_acquire(state, holder).has_value());
}

TEST_CASE("instance lock: a symlink to the state file leads to the state's own lock") {
  TempDir dir;
  const auto state = dir / "state.db";
  std::ofstream(state) << "";
  std::filesystem::create_symlink("state.db", dir / "other.db");
  std::string holder;
  const auto first = InstanceLock::try_acquire(state, holder);
  REQUIRE(first.has_value());
  CHECK(held_through(dir / "other.db"));
  CHECK(InstanceLock::lock_path(dir / "other.db") == InstanceLock::lock_path(state));
  CHECK_FALSE(std::filesystem::exists(dir / "other.db.lock"));
}

TEST_CASE("instance lock: a symlinked directory, dot-dot and a state not created yet lead to one "
          "lock") {
  TempDir dir;
  std::filesystem::create_directory(dir / "real");
  std::filesystem::create_directory_symlink("real", dir / "linked");
  // Resolved as the lock resolves it, should the temporary directory's own path hold a symlink.
  const auto state = std::filesystem::canonical(dir / "real") / "state.db";
  const std::filesystem::path lock = state.string() + ".lock";
  CHECK(InstanceLock::lock_path(state) == lock);

  SUBCASE("through the symlinked directory, before and after the state exists") {
    CHECK(InstanceLock::lock_path(dir / "linked" / "state.db") == lock);
    std::ofstream(state) << "";
    CHECK(InstanceLock::lock_path(dir / "linked" / "state.db") == lock);
  }
  SUBCASE("through a symlink whose target does not exist yet: SQLite would create the target") {
    std::filesystem::create_symlink(state, dir / "other.db");
    CHECK(InstanceLock::lock_path(dir / "other.db") == lock);
  }
  SUBCASE("through a path with dot-dot in it") {
    CHECK(InstanceLock::lock_path(dir / "linked" / ".." / "real" / "state.db") == lock);
  }
  std::string holder;
  const auto first = InstanceLock::try_acquire(dir / "linked" / "state.db", holder);
  REQUIRE(first.has_value());
  CHECK(std::filesystem::exists(lock));
  CHECK(held_through(state));
}

#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace retentiond {

// One process per state file: an exclusive flock(2) on "<state>.lock", released by the kernel
// when the process exits, however it exits (no stale lock files to clean up by hand).
class InstanceLock {
public:
  // Takes the lock without waiting. Returns nothing when another process holds it; `holder`
  // then names that process's pid as written in the lock file, when known. Throws
  // std::runtime_error when the lock file cannot be opened.
  static std::optional<InstanceLock> try_acquire(const std::filesystem::path& state_path,
                                                 std::string& holder);
  // The lock file of the state at `state_path`: beside the file the path resolves to, so that
  // every name of one state (relative, through a symlink to it or to a directory on its way)
  // leads to one lock. Throws std::runtime_error when the path cannot be resolved.
  static std::filesystem::path lock_path(const std::filesystem::path& state_path);

  ~InstanceLock();
  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&&) = delete;
  InstanceLock(const InstanceLock&) = delete;

private:
  explicit InstanceLock(int fd) : m_fd(fd) {}
  int m_fd = -1;
};

}  // namespace retentiond

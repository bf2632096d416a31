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
  // then names that process's pid as written in the lock file, when known.
  static std::optional<InstanceLock> try_acquire(const std::filesystem::path& state_path,
                                                 std::string& holder);
  ~InstanceLock();
  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&&) = delete;
  InstanceLock(const InstanceLock&) = delete;

private:
  explicit InstanceLock(int fd) : m_fd(fd) {}
  int m_fd = -1;
};

}  // namespace retentiond

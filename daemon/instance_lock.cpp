#include "daemon/instance_lock.hpp"

#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/file.h>
#include <system_error>
#include <unistd.h>

namespace retentiond {

namespace {

// Symlinks followed before giving up, as the kernel's ELOOP does.
constexpr int k_max_symlink_hops = 40;

}  // namespace

std::filesystem::path InstanceLock::lock_path(const std::filesystem::path& state_path) {
  namespace fs = std::filesystem;
  // The lock goes by name: `other.db -> state.db` (or a symlinked directory) must not give a
  // second process a lock of its own on the same file. (Hard links cannot be told apart by
  // name: the state store refuses a file that has several.)
  std::error_code error;
  fs::path resolved = fs::absolute(state_path, error);
  // A symlink to a state not created yet is followed too: SQLite creates the file at its
  // target. (Not found is no error here: the state may not exist yet.)
  std::error_code missing;
  for (int hops = 0;
       !error && hops < k_max_symlink_hops && fs::is_symlink(fs::symlink_status(resolved, missing));
       ++hops)
    resolved = resolved.parent_path() / fs::read_symlink(resolved, error);
  // Then every existing directory on the way; what does not exist yet is kept as written.
  if (!error)
    resolved = fs::weakly_canonical(resolved, error);
  if (error)
    throw std::runtime_error(fmt::format("cannot resolve the state path {} for its lock: {}",
                                         state_path.string(), error.message()));
  return resolved += ".lock";
}

std::optional<InstanceLock> InstanceLock::try_acquire(const std::filesystem::path& state_path,
                                                      std::string& holder) {
  const std::string lock_path = InstanceLock::lock_path(state_path).string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("cannot open lock file {}: {}", lock_path, std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char pid[32] = {};
    const ssize_t size = ::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    if (error != EWOULDBLOCK)
      throw std::runtime_error(fmt::format("cannot lock {}: {}", lock_path, std::strerror(error)));
    holder = size > 0 ? std::string{pid, static_cast<std::size_t>(size)} : std::string{};
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0'))
      holder.pop_back();
    return std::nullopt;
  }
  const std::string self = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0)
    (void)::pwrite(fd, self.data(), self.size(), 0);
  return InstanceLock(fd);
}

InstanceLock::InstanceLock(InstanceLock&& other) noexcept : m_fd(other.m_fd) {
  other.m_fd = -1;
}

InstanceLock::~InstanceLock() {
  if (m_fd >= 0)
    ::close(m_fd);
}

}  // namespace retentiond

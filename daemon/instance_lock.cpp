#include "daemon/instance_lock.hpp"

#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/file.h>
#include <unistd.h>

namespace retentiond {

std::optional<InstanceLock> InstanceLock::try_acquire(const std::filesystem::path& state_path,
                                                      std::string& holder) {
  const std::string lock_path = state_path.string() + ".lock";
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

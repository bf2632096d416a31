#pragma once

#include <memory>
#include <utility>

#include <unistd.h>

namespace retentiond::adapters::files {

// Owns one file descriptor and closes it on destruction; -1 means none.
class UniqueFd {
public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : m_fd(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      m_fd = std::exchange(other.m_fd, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  // The descriptor, or -1.
  int get() const noexcept { return m_fd; }
  explicit operator bool() const noexcept { return m_fd >= 0; }
  // Closes the descriptor now (errors from close are not actionable here and are ignored).
  void reset() noexcept {
    if (m_fd >= 0)
      ::close(m_fd);
    m_fd = -1;
  }

private:
  int m_fd = -1;
};

// A directory descriptor shared by the walk and by every file held beneath that directory.
using SharedFd = std::shared_ptr<const UniqueFd>;

}  // namespace retentiond::adapters::files

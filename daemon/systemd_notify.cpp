#include "daemon/systemd_notify.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace retentiond {
namespace {

std::optional<long long> environment_number(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr)
    return std::nullopt;
  long long value = 0;
  const char* end = text + std::strlen(text);
  const auto [stop, error] = std::from_chars(text, end, value);
  if (error != std::errc{} || stop != end || value <= 0)
    return std::nullopt;
  return value;
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
  if (const char* socket_name = std::getenv("NOTIFY_SOCKET");
      socket_name != nullptr && (socket_name[0] == '/' || socket_name[0] == '@')) {
    m_address = socket_name;
    m_socket = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (m_socket < 0)
      spdlog::warn("cannot open a socket to notify the service manager: {}", std::strerror(errno));
  }
  // WATCHDOG_PID, when set, names the process the watchdog is for (not a child we started).
  const auto watchdog_pid = environment_number("WATCHDOG_PID");
  const auto watchdog_usec = environment_number("WATCHDOG_USEC");
  if (watchdog_usec && (!watchdog_pid || *watchdog_pid == ::getpid()))
    m_watchdog_period = std::chrono::microseconds{*watchdog_usec / 2};
}

SystemdNotifier::~SystemdNotifier() {
  if (m_socket >= 0)
    ::close(m_socket);
}

void SystemdNotifier::notify(std::string_view state) {
  if (m_socket < 0)
    return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (m_address.size() >= sizeof(address.sun_path)) {
    if (!m_failure_logged)
      spdlog::warn("NOTIFY_SOCKET '{}' is too long for a socket address", m_address);
    m_failure_logged = true;
    return;
  }
  std::memcpy(address.sun_path, m_address.data(), m_address.size());
  if (address.sun_path[0] == '@')
    address.sun_path[0] = '\0';  // abstract namespace
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + m_address.size());
  if (::sendto(m_socket, state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&address), length) < 0 &&
      !m_failure_logged) {
    spdlog::warn("cannot notify the service manager at '{}': {}", m_address, std::strerror(errno));
    m_failure_logged = true;
  }
}

std::string monotonic_usec_field() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return fmt::format("MONOTONIC_USEC={}",
                     static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000);
}

}  // namespace retentiond

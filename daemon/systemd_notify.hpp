#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace retentiond {

// The service manager's notification protocol (sd_notify(3)): datagrams of NAME=VALUE lines
// sent to the socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace).
// Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every call does nothing.
class SystemdNotifier {
public:
  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID once.
  SystemdNotifier();
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // Sends `state` ("READY=1\nSTATUS=idle"). Failures are logged once, never thrown: the
  // service keeps working without its manager's view of it.
  void notify(std::string_view state);

  // How often WATCHDOG=1 must arrive when the unit sets WatchdogSec= (for this process): half
  // of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises.
  std::optional<std::chrono::microseconds> watchdog_period() const { return m_watchdog_period; }

private:
  int m_socket = -1;
  std::string m_address;
  std::optional<std::chrono::microseconds> m_watchdog_period;
  bool m_failure_logged = false;
};

// "MONOTONIC_USEC=..." for RELOADING=1: CLOCK_MONOTONIC now, in microseconds.
std::string monotonic_usec_field();

}  // namespace retentiond

#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace retentiond::test {

// One throwaway PostgreSQL server per test process, started on first use: initdb into a fresh
// temporary directory, then the server, listening only on a Unix socket in that directory,
// with fsync off. Run as an unprivileged account ("nobody") when the tests run as root, since
// PostgreSQL refuses to run as root. Stopped (immediate shutdown) and removed at exit, and told
// to stop should the test process die first.
class PostgresServer {
public:
  // A role that logs in with a password (scram-sha-256) only, for password_file tests.
  static constexpr std::string_view k_password_user = "retentiond_password";
  static constexpr std::string_view k_password = "s3cret-'quoted' \\pass";

  // The server, started by the first call. Throws std::runtime_error when it cannot start;
  // when PostgreSQL is not installed, the message says to run tools/install-build-deps.
  static PostgresServer& instance();

  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Creates an empty database whose name (returned) no other call has returned.
  std::string create_database(std::string_view purpose);
  // libpq connection string for `database`, as the superuser `postgres` (no password).
  std::string dsn(const std::string& database) const;
  // The directory holding the server's socket (libpq's host).
  const std::filesystem::path& socket_dir() const { return m_dir; }

private:
  PostgresServer();
  void start();

  std::filesystem::path m_dir;
  pid_t m_postmaster = -1;
  int m_databases = 0;
};

}  // namespace retentiond::test

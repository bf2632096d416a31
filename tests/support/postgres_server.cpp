#include "tests/support/postgres_server.hpp"

#include "tests/support/files.hpp"

#include <pqxx/pqxx>
#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <memory>
#include <optional>
#include <pwd.h>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace retentiond::test {
namespace {

constexpr std::chrono::seconds k_start_timeout{30};

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
};

// The account the server runs as: this process's own, or "nobody" when this process is root.
std::optional<Account> server_account() {
  if (::geteuid() != 0)
    return std::nullopt;
  const passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr)
    throw std::runtime_error("the tests run as root, and there is no account 'nobody' to run "
                             "the PostgreSQL test server as");
  return Account{nobody->pw_uid, nobody->pw_gid};
}

// The bin directory of the newest PostgreSQL installed: /usr/lib/postgresql/<version>/bin.
std::filesystem::path server_binaries() {
  std::filesystem::path best;
  int best_version = -1;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const int version = std::stoi(name);
    const std::filesystem::path bin = entry.path() / "bin";
    if (version > best_version && std::filesystem::exists(bin / "initdb") &&
        std::filesystem::exists(bin / "postgres")) {
      best = bin;
      best_version = version;
    }
  }
  if (best_version < 0)
    throw std::runtime_error(
        "PostgreSQL is not installed: no initdb and postgres in /usr/lib/postgresql/*/bin; run "
        "tools/install-build-deps (it installs the postgresql package the tests need)");
  return best;
}

void chown_to(const std::filesystem::path& path, const std::optional<Account>& account) {
  if (account && ::chown(path.c_str(), account->uid, account->gid) != 0)
    throw std::runtime_error(fmt::format("chown {}: {}", path.string(), std::strerror(errno)));
}

// Starts `argv` in `cwd` with stdout and stderr appended to `log`, as `account` when set.
// With `tied`, the child gets SIGQUIT (PostgreSQL's immediate shutdown) should this thread end
// first, so a crashed test run leaves no server behind.
pid_t spawn(std::vector<std::string> argv, const std::optional<Account>& account,
            const std::filesystem::path& cwd, const std::filesystem::path& log, bool tied) {
  std::vector<char*> pointers;
  for (std::string& arg : argv)
    pointers.push_back(arg.data());
  pointers.push_back(nullptr);
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || in < 0)
    throw std::runtime_error(fmt::format("cannot open {}: {}", log.string(), std::strerror(errno)));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0)
    throw std::runtime_error(std::string{"fork: "} + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0)
      ::_exit(126);
    if (account && (::setgroups(0, nullptr) != 0 || ::setgid(account->gid) != 0 ||
                    ::setuid(account->uid) != 0))
      ::_exit(126);
    // After setuid, which clears it.
    if (tied && (::prctl(PR_SET_PDEATHSIG, SIGQUIT) != 0 || ::getppid() != parent))
      ::_exit(126);
    if (::chdir(cwd.c_str()) != 0)
      ::_exit(126);
    ::execv(pointers[0], pointers.data());
    ::_exit(127);
  }
  ::close(out);
  ::close(in);
  return pid;
}

bool accepts_connections(const std::string& dsn) {
  try {
    pqxx::connection probe(dsn);
    return true;
  } catch (const pqxx::broken_connection&) {
    return false;
  }
}

// Waits for `pid`; its exit status, 128 + N when killed by signal N.
int wait_for(pid_t pid, int options = 0) {
  int status = 0;
  pid_t result = 0;
  while ((result = ::waitpid(pid, &status, options)) < 0 && errno == EINTR) {
  }
  if (result == 0)
    return -1;  // still running (WNOHANG)
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

PostgresServer& PostgresServer::instance() {
  static std::unique_ptr<PostgresServer> server;
  if (!server) {
    std::unique_ptr<PostgresServer> starting{new PostgresServer};
    starting->start();  // on failure, ~PostgresServer cleans up what was started
    server = std::move(starting);
  }
  return *server;
}

PostgresServer::PostgresServer() = default;

PostgresServer::~PostgresServer() {
  if (m_postmaster > 0) {
    ::kill(m_postmaster, SIGQUIT);  // what `pg_ctl stop -m immediate` sends
    wait_for(m_postmaster);
  }
  if (!m_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(m_dir, ignored);
  }
}

void PostgresServer::start() {
  const std::filesystem::path bin = server_binaries();
  const std::optional<Account> account = server_account();
  std::string pattern = (std::filesystem::temp_directory_path() / "retentiond-pg-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("cannot create a temporary directory for the PostgreSQL server");
  m_dir = pattern;
  chown_to(m_dir, account);
  const std::filesystem::path data = m_dir / "data";

  const int initdb = wait_for(spawn({(bin / "initdb").string(), "-D", data.string(), "-U",
                                     "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N"},
                                    account, m_dir, m_dir / "initdb.log", false));
  if (initdb != 0)
    throw std::runtime_error(fmt::format("initdb failed (exit status {}): {}", initdb,
                                         file_bytes(m_dir / "initdb.log")));
  // Trust for everyone but the password role, which must prove its password.
  std::ofstream(data / "pg_hba.conf", std::ios::trunc)
      << "local all " << k_password_user << " scram-sha-256\nlocal all all trust\n";

  m_postmaster = spawn(
      {(bin / "postgres").string(), "-D", data.string(), "-c", "listen_addresses=", "-c",
       "unix_socket_directories=" + m_dir.string(), "-c", "fsync=off", "-c", "full_page_writes=off",
       "-c", "synchronous_commit=off", "-c", "max_connections=40", "-c", "autovacuum=off"},
      account, m_dir, m_dir / "server.log", true);
  const std::string admin = dsn("postgres");
  const auto deadline = std::chrono::steady_clock::now() + k_start_timeout;
  while (!accepts_connections(admin)) {
    if (const int status = wait_for(m_postmaster, WNOHANG); status >= 0) {
      m_postmaster = -1;
      throw std::runtime_error(fmt::format("the PostgreSQL test server exited (status {}): {}",
                                           status, file_bytes(m_dir / "server.log")));
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error(fmt::format("the PostgreSQL test server did not start in {} s: {}",
                                           k_start_timeout.count(),
                                           file_bytes(m_dir / "server.log")));
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  pqxx::connection connection(admin);
  pqxx::nontransaction setup(connection);
  setup.exec(fmt::format("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}",
                         connection.quote_name(std::string{k_password_user}),
                         connection.quote(std::string{k_password})));
}

std::string PostgresServer::create_database(std::string_view purpose) {
  const std::string name = fmt::format("{}_{}", purpose, ++m_databases);
  pqxx::connection connection(dsn("postgres"));
  pqxx::nontransaction create(connection);
  // A file copy of the small template is faster than logging it (fsync is off).
  create.exec(fmt::format("CREATE DATABASE {} STRATEGY file_copy", connection.quote_name(name)));
  return name;
}

std::string PostgresServer::dsn(const std::string& database) const {
  return fmt::format("host={} dbname={} user=postgres", m_dir.string(), database);
}

}  // namespace retentiond::test

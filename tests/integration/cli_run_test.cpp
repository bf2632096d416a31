// The real `retentiond run` service: scheduling from the run history, the systemd notification
// protocol on a real datagram socket, the metrics endpoint over real HTTP, SIGHUP reloads and
// SIGTERM stops, on a real SQLite datastore and state file.
#include "daemon/timestamp.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/table_ids.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <regex>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

using retentiond::test::run_retentiond;
using retentiond::test::RunningRetentiond;
using retentiond::test::TempDir;
using namespace std::chrono_literals;
using retentiond::test::contains;

namespace {

constexpr std::int64_t k_day_s = 86'400;
// Generous: these wait for a process to react, and CI machines are busy.
constexpr auto k_patience = 20s;

// The service manager's end of $NOTIFY_SOCKET: a bound datagram socket that keeps every message.
class NotifySocket {
public:
  explicit NotifySocket(std::filesystem::path path) : m_path(std::move(path)) {
    m_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(m_fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string text = m_path.string();
    REQUIRE(text.size() < sizeof(address.sun_path));
    text.copy(address.sun_path, text.size());
    REQUIRE(::bind(m_fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  }
  ~NotifySocket() { ::close(m_fd); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::filesystem::path& path() const { return m_path; }

  // The next message that starts with `prefix`, skipping others (kept in messages()); nothing
  // when none comes within `patience`.
  std::optional<std::string> wait_for(std::string_view prefix,
                                      std::chrono::seconds patience = k_patience) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd waiting{m_fd, POLLIN, 0};
      if (::poll(&waiting, 1, 100) <= 0)
        continue;
      char buffer[4096];
      const ssize_t n = ::recv(m_fd, buffer, sizeof buffer, 0);
      if (n <= 0)
        continue;
      std::string message(buffer, static_cast<std::size_t>(n));
      m_messages.push_back(message);
      m_arrivals.push_back(std::chrono::steady_clock::now());
      if (message.starts_with(prefix))
        return message;
    }
    return std::nullopt;
  }

  const std::vector<std::string>& messages() const { return m_messages; }

  // When each message that starts with `prefix` arrived.
  std::vector<std::chrono::steady_clock::time_point> arrivals(std::string_view prefix) const {
    std::vector<std::chrono::steady_clock::time_point> times;
    for (std::size_t i = 0; i < m_messages.size(); ++i)
      if (m_messages[i].starts_with(prefix))
        times.push_back(m_arrivals[i]);
    return times;
  }

private:
  std::filesystem::path m_path;
  int m_fd = -1;
  std::vector<std::string> m_messages;
  std::vector<std::chrono::steady_clock::time_point> m_arrivals;  // of each message
};

// A TCP port nobody listens on right now (the kernel's choice for port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

// One HTTP/1.1 request to 127.0.0.1:`port`; the whole response, headers included.
std::string http_request(int port, const std::string& request_line) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  const std::string request = request_line + "\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
    response.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  return response;
}

// A service installation: app.db with `logs` (ids 1-3 expired, 4-5 not) and `events` (ids 1-2
// expired, 3 not), a config whose rule `logs` runs hourly, and a notification socket.
class Service {
public:
  Service() : m_notify(m_dir / "notify.sock"), m_port(free_port()) {
    const std::int64_t now = retentiond::to_unix_seconds(retentiond::now_utc());
    const auto ago = [&](std::int64_t days) { return std::to_string(now - days * k_day_s); };
    SQLite::Database db(app(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("CREATE TABLE logs(id INTEGER PRIMARY KEY, at INTEGER)");
    db.exec("CREATE INDEX logs_at ON logs(at)");
    db.exec("INSERT INTO logs VALUES (1, " + ago(400) + "), (2, " + ago(500) + "), (3, " +
            ago(366) + "), (4, " + ago(364) + "), (5, " + ago(1) + ")");
    db.exec("CREATE TABLE events(id INTEGER PRIMARY KEY, at INTEGER)");
    db.exec("CREATE INDEX events_at ON events(at)");
    db.exec("INSERT INTO events VALUES (1, " + ago(40) + "), (2, " + ago(31) + "), (3, " + ago(29) +
            ")");
    write_config(logs_rule());
  }

  std::filesystem::path config() const { return m_dir / "retentiond.toml"; }
  std::filesystem::path app() const { return m_dir / "app.db"; }
  int port() const { return m_port; }
  NotifySocket& notify() { return m_notify; }

  std::string logs_rule() const {
    return R"toml(
[rules.logs]
description = "Connection logs are kept 12 months"
policy = "Privacy policy, section V"
datastore = "app"
table = "logs"
age_column = "at"
age_format = "unix_seconds"
retain = "365 days"
action = "delete"
schedule = "hourly"
max_fraction = 1.0
)toml";
  }

  std::string events_rule() const {
    return R"toml(
[rules.events]
description = "Event logs are kept 30 days"
policy = "Privacy policy, section VII"
datastore = "app"
table = "events"
age_column = "at"
age_format = "unix_seconds"
retain = "30 days"
action = "delete"
schedule = "every 2h"
max_fraction = 1.0
)toml";
  }

  // `state` adds keys to [state] (audit_key_file, say).
  void write_config(const std::string& rules, const std::string& state = "") const {
    std::ofstream(config()) << "[state]\npath = \"state.db\"\n"
                            << state
                            << "[daemon]\nmetrics_listen = "
                               "\"127.0.0.1:"
                            << m_port << "\"\n[datastores.app]\ntype = \"sqlite\"\npath = "
                            << "\"app.db\"\n"
                            << rules;
  }

  std::unique_ptr<RunningRetentiond> start(const std::string& watchdog_usec = "",
                                           std::map<std::string, std::string> env = {}) {
    env["NOTIFY_SOCKET"] = m_notify.path().string();
    if (!watchdog_usec.empty())
      env["WATCHDOG_USEC"] = watchdog_usec;
    return std::make_unique<RunningRetentiond>(
        std::vector<std::string>{"-c", config().string(), "run"}, env, m_dir.path());
  }

  std::vector<std::int64_t> ids(const std::string& table) const {
    return retentiond::test::table_ids(app(), table);
  }

  std::string metrics() const { return http_request(m_port, "GET /metrics HTTP/1.1"); }

private:
  TempDir m_dir;
  NotifySocket m_notify;
  int m_port;
};

// Expired rows 100-400000 in `logs`: enough for many batches of 1 ms.
void add_expired_logs(const Service& service) {
  SQLite::Database db(service.app(), SQLite::OPEN_READWRITE);
  const std::int64_t old = retentiond::to_unix_seconds(retentiond::now_utc()) - 400 * k_day_s;
  db.exec("WITH RECURSIVE n(i) AS (SELECT 100 UNION ALL SELECT i + 1 FROM n WHERE i < 400000) "
          "INSERT INTO logs SELECT i, " +
          std::to_string(old) + " FROM n");
}

}  // namespace

TEST_CASE("run: enforces due rules at start-up, tells systemd, serves metrics, reloads, stops") {
  Service service;
  auto daemon = service.start("200000");  // WatchdogSec=0.2s: WATCHDOG=1 every 100 ms

  const auto ready = service.notify().wait_for("READY=1");
  REQUIRE(ready);
  // Never run before: due at once.
  CHECK(ready->starts_with("READY=1\nSTATUS=idle: next rule logs at "));
  REQUIRE(service.notify().wait_for("STATUS=running rule logs"));
  const auto idle = service.notify().wait_for("STATUS=idle: next rule logs at ");
  REQUIRE(idle);
  // Next: an hour after this run started.
  const auto next = retentiond::parse_iso8601(idle->substr(idle->rfind(' ') + 1));
  REQUIRE(next);
  const auto in = std::chrono::duration_cast<std::chrono::minutes>(*next - retentiond::now_utc());
  CHECK(in.count() >= 58);
  CHECK(in.count() <= 60);
  CHECK(service.ids("logs") == std::vector<std::int64_t>{4, 5});

  SUBCASE("feeds the watchdog while idle, every half period") {
    // Idle, the loop would otherwise sleep a minute at a time.
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i)
      REQUIRE(service.notify().wait_for("WATCHDOG=1"));
    CHECK(std::chrono::steady_clock::now() - started < 30s);
  }

  SUBCASE("serves Prometheus metrics over HTTP") {
    const std::string response = service.metrics();
    CHECK(response.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(contains(response, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    CHECK(contains(response, "\nretentiond_runs_total{rule=\"logs\",result=\"ok\"} 1\n"));
    CHECK(contains(response, "\nretentiond_rows_affected_total{rule=\"logs\"} 3\n"));
    CHECK(contains(response, "\nretentiond_due_rows{rule=\"logs\"} 3\n"));
    CHECK(contains(response, "\nretentiond_batch_duration_seconds_count{rule=\"logs\"} 1\n"));
    CHECK(contains(response,
                   "\nretentiond_batch_duration_seconds_bucket{rule=\"logs\",le=\"+Inf\"} 1\n"));
    CHECK(contains(response, "\n# TYPE retentiond_batch_duration_seconds histogram\n"));
    CHECK(contains(response, "\nretentiond_config_last_reload_successful 1\n"));
    CHECK(contains(response, "\nretentiond_last_success_timestamp_seconds{rule=\"logs\"} "));
    CHECK(contains(response, "\nretentiond_build_info{version=\"" RETENTIOND_VERSION "\"} 1\n"));
    CHECK(contains(response, "\nprocess_open_fds "));
    CHECK(contains(response, "\nprocess_start_time_seconds "));
    CHECK(http_request(service.port(), "GET /other HTTP/1.1").starts_with("HTTP/1.1 404 "));
    CHECK(http_request(service.port(), "POST /metrics HTTP/1.1").starts_with("HTTP/1.1 405 "));
  }

  SUBCASE("a SQLite-only service never loads PostgreSQL support (libpq costs about 5 MB)") {
    std::ifstream maps_file("/proc/" + std::to_string(daemon->pid()) + "/maps");
    const std::string maps{std::istreambuf_iterator<char>(maps_file), {}};
    CHECK(contains(maps, "libsqlite3"));
    CHECK(!contains(maps, "libpq"));
    CHECK(!contains(maps, "retentiond-postgres.so"));
  }

  SUBCASE("holds the instance lock: once exits 75") {
    const auto once = run_retentiond({"-c", service.config().string(), "once"});
    CHECK(once.exit_code == 75);
    CHECK(contains(once.err, "another retentiond (pid " + std::to_string(daemon->pid()) +
                                 ") holds the lock on"));
  }

  SUBCASE("an invalid config on SIGHUP is logged and the running one kept") {
    service.write_config(service.logs_rule() + "bogus = 1\n");
    daemon->signal(SIGHUP);
    const auto reloading = service.notify().wait_for("RELOADING=1\n");
    REQUIRE(reloading);
    CHECK(contains(*reloading, "\nMONOTONIC_USEC="));
    REQUIRE(service.notify().wait_for("READY=1\nSTATUS=idle: next rule logs at "));
    CHECK(daemon->running());
    CHECK(contains(daemon->err(), "error configuration reload failed, still running the previous "
                                  "one: " +
                                      service.config().string() +
                                      ":20:1: rules.logs: unknown key 'bogus'"));
    CHECK(contains(service.metrics(), "\nretentiond_config_last_reload_successful 0\n"));
  }

  SUBCASE("a configuration changed on SIGHUP is audited at once, though no rule runs") {
    const auto entries_of_kind = [&](const std::string& kind) {
      const auto log =
          run_retentiond({"-c", service.config().string(), "audit", "log", "--format", "json"});
      REQUIRE(log.exit_code == 0);
      int count = 0;
      for (const std::string& line : retentiond::test::lines_of(log.out))
        count += contains(line, "\"kind\":\"" + kind + "\"") ? 1 : 0;
      return count;
    };
    CHECK(entries_of_kind("config") == 1);
    const int runs = entries_of_kind("run_start");
    std::string changed = service.logs_rule();
    changed.replace(changed.find("kept 12 months"), 14, "kept a year");
    service.write_config(changed);
    daemon->signal(SIGHUP);
    REQUIRE(service.notify().wait_for("READY=1\n"));
    CHECK(entries_of_kind("config") == 2);
    CHECK(entries_of_kind("run_start") == runs);  // logs ran within the hour: no run
  }
  SUBCASE("a valid config on SIGHUP is used at once: its new rule runs") {
    service.write_config(service.logs_rule() + service.events_rule());
    daemon->signal(SIGHUP);
    REQUIRE(service.notify().wait_for("RELOADING=1\n"));
    REQUIRE(service.notify().wait_for("READY=1\n"));
    REQUIRE(service.notify().wait_for("STATUS=running rule events"));
    REQUIRE(service.notify().wait_for("STATUS=idle: next rule logs at "));
    CHECK(service.ids("events") == std::vector<std::int64_t>{3});
    CHECK(service.ids("logs") == std::vector<std::int64_t>{4, 5});
    CHECK(contains(daemon->err(), "info configuration reloaded: 2 rules, digest "));
    CHECK(contains(service.metrics(), "\nretentiond_config_last_reload_successful 1\n"));
  }

  daemon->signal(SIGTERM);
  CHECK(service.notify().wait_for("STOPPING=1"));
  CHECK(daemon->wait(k_patience) == 0);
  CHECK(contains(daemon->err(), "info SIGTERM received: finishing the current batch"));
  service.write_config(service.logs_rule());  // `audit verify` reads the config too
  const auto verify = run_retentiond({"-c", service.config().string(), "audit", "verify"});
  CHECK(verify.exit_code == 0);
}

TEST_CASE("run: writing to systemd's journal, each line carries its priority and no time") {
  Service service;
  // The stream systemd would connect: the service's stderr file, named by DEVICE:INODE.
  const std::filesystem::path err = service.config().parent_path() / "err.txt";
  std::ofstream{err};
  struct stat stream {};
  REQUIRE(::stat(err.c_str(), &stream) == 0);
  const std::string journal_stream =
      std::to_string(stream.st_dev) + ":" + std::to_string(stream.st_ino);

  auto daemon = service.start("", {{"JOURNAL_STREAM", journal_stream}});
  REQUIRE(service.notify().wait_for("STATUS=idle: next rule logs at "));
  // An error that echoes a value with a line break in it: the break is logged as an escape.
  std::string broken = service.logs_rule();
  broken.replace(broken.find("datastore = \"app\""), 17, "datastore = \"a\\nb\"");
  service.write_config(broken);
  daemon->signal(SIGHUP);
  REQUIRE(service.notify().wait_for("READY=1\nSTATUS=idle: next rule logs at "));
  daemon->signal(SIGTERM);
  REQUIRE(daemon->wait(k_patience) == 0);

  const std::vector<std::string> lines = retentiond::test::lines_of(daemon->err());
  REQUIRE(lines.size() >= 4);
  CHECK(lines.front().starts_with("<6>service started: 1 rules"));
  CHECK(contains(daemon->err(), "\n<6>rule logs: 3 rows deleted, 0 dependent rows deleted (ok)"));
  CHECK(
      contains(daemon->err(), "\n<3>configuration reload failed, still running the previous one: " +
                                  service.config().string() + ":"));
  CHECK(contains(daemon->err(), ": rules.logs.datastore: unknown datastore 'a\\nb' (defined: "
                                "app)\n"));
  CHECK(lines.back() == "<6>service stopped");
  for (const std::string& line : lines)
    CHECK_MESSAGE((line.size() > 3 && line[0] == '<' && line[2] == '>'), line);

  SUBCASE("an error that ends the program has its priority too") {
    // The broken configuration is still in place.
    auto refused = service.start("", {{"JOURNAL_STREAM", journal_stream}});
    REQUIRE(refused->wait(k_patience) == 78);
    CHECK(refused->err().starts_with("<3>retentiond: error: " + service.config().string() + ":"));
    CHECK(refused->err().ends_with(": rules.logs.datastore: unknown datastore 'a\n<3>b' (defined: "
                                   "app)\n"));
    CHECK(retentiond::test::lines_of(refused->err()).size() == 2);
  }
  SUBCASE("stderr redirected elsewhere than the journal: lines carry their time and level") {
    service.write_config(service.logs_rule());
    auto elsewhere = service.start("", {{"JOURNAL_STREAM", std::to_string(stream.st_dev) + ":1"}});
    REQUIRE(service.notify().wait_for("READY=1"));
    elsewhere->signal(SIGTERM);
    REQUIRE(elsewhere->wait(k_patience) == 0);
    const std::string first = retentiond::test::lines_of(elsewhere->err()).front();
    CHECK_MESSAGE(std::regex_search(first, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z )"
                                                      R"(info service started: 1 rules)")),
                  first);
  }
}

TEST_CASE("run: a rule that ran within its interval waits; one that never ran runs at start-up") {
  Service service;
  REQUIRE(run_retentiond({"-c", service.config().string(), "once"}).exit_code == 0);
  service.write_config(service.logs_rule() + service.events_rule());
  auto daemon = service.start();
  // `logs` ran a moment ago (hourly): it is next due in an hour. `events` never ran: at once.
  REQUIRE(service.notify().wait_for("STATUS=running rule events"));
  const auto idle = service.notify().wait_for("STATUS=idle: next rule ");
  REQUIRE(idle);
  CHECK(contains(*idle, "STATUS=idle: next rule logs at "));
  CHECK(service.ids("events") == std::vector<std::int64_t>{3});
  for (const std::string& message : service.notify().messages())
    CHECK_FALSE(message == "STATUS=running rule logs");
  daemon->signal(SIGINT);
  CHECK(daemon->wait(k_patience) == 0);
}

TEST_CASE("run: a run that died with its process does not count: the rule carries on") {
  Service service;
  REQUIRE(run_retentiond({"-c", service.config().string(), "once"}).exit_code == 0);
  {
    // As a killed process leaves it: started, never finished.
    SQLite::Database state(service.config().parent_path() / "state.db", SQLite::OPEN_READWRITE);
    state.exec("UPDATE runs SET finished = NULL, result = 'running'");
  }
  auto daemon = service.start();
  REQUIRE(service.notify().wait_for("STATUS=running rule logs"));
  REQUIRE(service.notify().wait_for("STATUS=idle: next rule logs at "));
  daemon->signal(SIGTERM);
  CHECK(daemon->wait(k_patience) == 0);
}

TEST_CASE("run: a census longer than the watchdog's timeout keeps feeding it") {
  Service service;
  {
    // No index on a text anchor: each count of the census reads and parses every row.
    SQLite::Database db(service.app(), SQLite::OPEN_READWRITE);
    db.exec("CREATE TABLE visits(id INTEGER PRIMARY KEY, at TEXT)");
    db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500000) "
            "INSERT INTO visits SELECT i, '2020-02-29T12:00:00Z' FROM n");
  }
  // Every row is due: the breaker refuses the rule after its census, before any batch.
  service.write_config(R"toml(
[rules.visits]
description = "Visits are kept 30 days"
policy = "Privacy policy, section VI"
datastore = "app"
table = "visits"
age_column = "at"
age_format = "iso8601"
retain = "30 days"
action = "delete"
schedule = "hourly"
max_fraction = 0.5
)toml");
  // WatchdogSec=0.4s: WATCHDOG=1 every 200 ms. The run takes about 1.5 s; under the
  // AddressSanitizer of CI, whose exact unwinding on every malloc (the suite's setting) makes the
  // census's parsing of dates fifty times slower, the service unwinds the fast way.
  auto daemon = service.start("400000", {{"ASAN_OPTIONS", "fast_unwind_on_malloc=1"}});
  REQUIRE(service.notify().wait_for("STATUS=running rule visits"));
  REQUIRE(service.notify().wait_for("STATUS=idle: ", 60s));
  daemon->signal(SIGTERM);
  REQUIRE(daemon->wait(k_patience) == 0);
  CHECK(contains(daemon->err(), "rule visits: refused: "));
  CHECK(service.ids("visits").size() == 500'000);

  // systemd would have killed the service had WATCHDOG=1 not come within 0.4 s at any point of
  // the run, which takes longer than that (four times, here).
  const auto run_started = service.notify().arrivals("STATUS=running rule visits").front();
  const auto run_ended = service.notify().arrivals("STATUS=idle: ").back();
  REQUIRE(run_ended - run_started > 400ms);
  auto last_fed = run_started;
  for (const auto fed : service.notify().arrivals("WATCHDOG=1")) {
    if (fed < run_started || fed > run_ended)
      continue;
    CHECK(fed - last_fed < 400ms);
    last_fed = fed;
  }
  CHECK(run_ended - last_fed < 400ms);
}

TEST_CASE("run: SIGTERM during a run finishes the current batch, audits it and exits 0") {
  Service service;
  add_expired_logs(service);
  std::string rule = service.logs_rule();
  rule += "batch_time = \"1ms\"\n";
  service.write_config(rule);
  auto daemon = service.start();
  REQUIRE(service.notify().wait_for("STATUS=running rule logs"));
  // Once batches are committing (the census comes first), stop it.
  const auto deadline = std::chrono::steady_clock::now() + k_patience;
  while (service.ids("logs").size() == 399'906 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  daemon->signal(SIGTERM);
  REQUIRE(daemon->wait(k_patience) == 0);

  const std::int64_t left = static_cast<std::int64_t>(service.ids("logs").size());
  CHECK(left < 399'906);  // batches ran
  CHECK(left > 2);        // and the run stopped before the end
  const auto log = run_retentiond(
      {"-c", service.config().string(), "audit", "log", "--rule", "logs", "--format", "json"});
  REQUIRE(log.exit_code == 0);
  // Every deleted row is in a batch entry; the run says why it stopped.
  SQLite::Database json(":memory:");
  SQLite::Statement sum(json, "SELECT sum(json_extract(value, '$.rows')) FROM json_each(?) "
                              "WHERE json_extract(value, '$.kind') = 'batch'");
  std::string array = "[";
  std::istringstream lines(log.out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty())
      array += (array.size() > 1 ? "," : "") + line;
  array += "]";
  sum.bind(1, array);
  REQUIRE(sum.executeStep());
  CHECK(sum.getColumn(0).getInt64() == 399'906 - left);
  CHECK(contains(log.out, "\"kind\":\"rule_done\""));
  CHECK(contains(log.out, "\"result\":\"partial\""));
  CHECK(contains(daemon->err(), "warning rule logs: "));
  CHECK(contains(daemon->err(), "(partial: stopped by signal), cutoff "));

  SUBCASE("the cut-short run does not count: started again, the service carries on at once") {
    service.write_config(service.logs_rule());  // default batch_time: the rest goes quickly
    auto again = service.start();
    REQUIRE(service.notify().wait_for("STATUS=running rule logs"));
    REQUIRE(service.notify().wait_for("STATUS=idle: next rule logs at "));
    CHECK(service.ids("logs") == std::vector<std::int64_t>{4, 5});
    again->signal(SIGTERM);
    CHECK(again->wait(k_patience) == 0);
  }
}

TEST_CASE("run: SIGHUP during a long run is taken between its batches; a new audit key is "
          "refused") {
  Service service;
  add_expired_logs(service);
  const std::filesystem::path dir = service.config().parent_path();
  std::ofstream(dir / "audit.key") << "first-audit-key-0123456789";
  std::filesystem::permissions(dir / "audit.key", std::filesystem::perms::owner_read);
  const std::string key_one = "audit_key_file = \"audit.key\"\n";
  const std::string rule = service.logs_rule() + "batch_time = \"1ms\"\n";
  service.write_config(rule, key_one);
  auto daemon = service.start();
  REQUIRE(service.notify().wait_for("STATUS=running rule logs"));
  const auto deadline = std::chrono::steady_clock::now() + k_patience;
  while (service.ids("logs").size() == 399'906 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);

  // A new rule, mid-run: reloaded at the next batch, not when the run ends.
  service.write_config(rule + service.events_rule(), key_one);
  daemon->signal(SIGHUP);
  REQUIRE(service.notify().wait_for("RELOADING=1"));
  CHECK(service.notify().wait_for("READY=1") == "READY=1\nSTATUS=running rule logs");
  CHECK(service.ids("logs").size() > 2);  // the run goes on
  CHECK(contains(daemon->err(), "configuration reloaded: 2 rules"));

  // Another audit key: entries under it could never be verified with the chain.
  std::ofstream(dir / "other.key") << "second-audit-key-0123456789";
  std::filesystem::permissions(dir / "other.key", std::filesystem::perms::owner_read);
  service.write_config(rule + service.events_rule(), "audit_key_file = \"other.key\"\n");
  daemon->signal(SIGHUP);
  REQUIRE(service.notify().wait_for("RELOADING=1"));
  REQUIRE(service.notify().wait_for("READY=1"));
  CHECK(contains(daemon->err(), service.config().string() +
                                    ":3:18: state.audit_key_file: the audit key changed; the "
                                    "audit chain stays under the key it began with (undo the "
                                    "change; a new key takes a new state and a restart)"));
  // The same key, moved: taken.
  std::filesystem::rename(dir / "audit.key", dir / "moved.key");
  const std::string moved = "audit_key_file = \"moved.key\"\n";
  service.write_config(rule + service.events_rule(), moved);
  daemon->signal(SIGHUP);
  REQUIRE(service.notify().wait_for("RELOADING=1"));
  REQUIRE(service.notify().wait_for("READY=1"));
  CHECK(contains(daemon->err(), "configuration reloaded: 2 rules, digest"));
  daemon->signal(SIGTERM);
  REQUIRE(daemon->wait(k_patience) == 0);

  const auto verify = run_retentiond({"-c", service.config().string(), "audit", "verify"});
  CHECK_MESSAGE(verify.exit_code == 0, verify.err);
  // The new configuration is audited after the run that went on under the old one.
  const auto log = run_retentiond({"-c", service.config().string(), "audit", "log"});
  const std::size_t rule_done = log.out.find(" rule_done ");
  const std::size_t config = log.out.rfind(" config ");
  REQUIRE(rule_done != std::string::npos);
  REQUIRE(config != std::string::npos);
  CHECK(rule_done < config);
}

// Purge benchmark: the real retentiond binary against the single SQL statement an operator would
// otherwise run, on SQLite datastores this program generates. It measures purge time, what an
// application writing to the same table experiences meanwhile, anonymize time, retentiond's peak
// memory and the time of `report`. bench/README.md describes the method; bench/run runs it.

#include "adapters/sqlite/sqlite_masks.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/fmt/fmt.h>
#include <sqlite3.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace retentiond::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::int64_t k_day = 86'400;
constexpr std::int64_t k_retain = 365 * k_day;  // the rules' `retain = "365 days"`
// No generated anchor lies within a day of the cutoff, so the rows due are exactly the same
// for every run, however many minutes apart the runs are.
constexpr std::int64_t k_gap = k_day;
constexpr int k_busy_timeout_ms = 30'000;
// GNU time measures retentiond's peak memory: a child's ru_maxrss counts the RSS of the process
// that spawned it, and this one grows large while it generates data; `time` stays small.
constexpr const char* k_gnu_time = "/usr/bin/time";

constexpr const char* k_usage = R"(usage: purge_bench --retentiond BINARY [OPTIONS]

Generates SQLite datastores and measures retentiond against single SQL statements.

  --retentiond BINARY   the retentiond binary to measure (required)
  --results FILE        append the results as a Markdown section to FILE
  --dir DIR             where the temporary datasets go (default: $BENCH_DIR, else /tmp)
  --quick               smaller sizes for a smoke test: --rows 100k --rss-rows 500k --report-rows 1M
  --rows N              rows of each purge and anonymize dataset (default 1M)
  --rss-rows N          rows of the peak-memory purge (default 5M)
  --report-rows N       rows of the report dataset (default 10M)
  --repeat N            measure each purge and anonymize N times; times are medians (default 1)
  --writer-sync MODE    the application writer's PRAGMA synchronous: normal (default) or full
  --revision TEXT       what was measured (e.g. a commit), shown in the results
  --keep                keep the temporary directory
  --help                this text

Sizes take a k or M suffix (500k, 2M).
)";

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
  fs::path retentiond;
  fs::path results;  // empty: print only
  fs::path base_dir;
  std::string mode = "full";
  std::string revision;
  std::int64_t rows = 1'000'000;
  std::int64_t rss_rows = 5'000'000;
  std::int64_t report_rows = 10'000'000;
  int repeat = 1;
  std::string writer_sync = "normal";
  bool keep = false;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::int64_t parse_count(std::string_view flag, std::string_view text) {
  std::int64_t multiplier = 1;
  if (!text.empty() && (text.back() == 'k' || text.back() == 'K')) {
    multiplier = 1'000;
    text.remove_suffix(1);
  } else if (!text.empty() && (text.back() == 'm' || text.back() == 'M')) {
    multiplier = 1'000'000;
    text.remove_suffix(1);
  }
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || value <= 0)
    throw UsageError(
        fmt::format("{}: expected a positive count such as 500k or 2M, got '{}'", flag, text));
  return value * multiplier;
}

Options parse_options(int argc, char** argv) {
  Options options;
  if (const char* dir = std::getenv("BENCH_DIR"); dir != nullptr && *dir != '\0')
    options.base_dir = dir;
  else
    options.base_dir = "/tmp";
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    const auto value = [&]() -> std::string_view {
      if (i + 1 >= args.size())
        throw UsageError(fmt::format("{} needs a value", flag));
      return args[++i];
    };
    if (flag == "--help") {
      std::cout << k_usage;
      std::exit(0);
    } else if (flag == "--retentiond") {
      options.retentiond = value();
    } else if (flag == "--results") {
      options.results = value();
    } else if (flag == "--dir") {
      options.base_dir = value();
    } else if (flag == "--quick") {
      options.mode = "quick";
      options.rows = 100'000;
      options.rss_rows = 500'000;
      options.report_rows = 1'000'000;
    } else if (flag == "--rows") {
      options.rows = parse_count(flag, value());
    } else if (flag == "--rss-rows") {
      options.rss_rows = parse_count(flag, value());
    } else if (flag == "--report-rows") {
      options.report_rows = parse_count(flag, value());
    } else if (flag == "--repeat") {
      options.repeat = static_cast<int>(std::min<std::int64_t>(parse_count(flag, value()), 100));
    } else if (flag == "--writer-sync") {
      options.writer_sync = value();
      if (options.writer_sync != "normal" && options.writer_sync != "full")
        throw UsageError(
            fmt::format("--writer-sync: expected normal or full, got '{}'", options.writer_sync));
    } else if (flag == "--revision") {
      options.revision = value();
    } else if (flag == "--keep") {
      options.keep = true;
    } else {
      throw UsageError(fmt::format("unknown option '{}' (see --help)", flag));
    }
  }
  if (options.retentiond.empty())
    throw UsageError("--retentiond BINARY is required (see --help)");
  options.retentiond = fs::absolute(options.retentiond);
  if (::access(options.retentiond.c_str(), X_OK) != 0)
    throw UsageError(
        fmt::format("--retentiond: {} is not an executable file", options.retentiond.string()));
  if (::access(k_gnu_time, X_OK) != 0)
    throw UsageError(fmt::format(
        "{} is missing: install the Debian package `time` (bench/run does)", k_gnu_time));
  if (options.mode == "full" && (options.rows != 1'000'000 || options.rss_rows != 5'000'000 ||
                                 options.report_rows != 10'000'000))
    options.mode = "custom";
  return options;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

// `1234567` -> "1,234,567".
std::string grouped(std::int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

// 100000 -> "100k", 5000000 -> "5M".
std::string short_count(std::int64_t value) {
  if (value % 1'000'000 == 0)
    return fmt::format("{}M", value / 1'000'000);
  if (value % 1'000 == 0)
    return fmt::format("{}k", value / 1'000);
  return grouped(value);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void progress(std::string_view message) {
  std::cerr << "purge_bench: " << message << std::endl;
}

double median(std::vector<double> values) {
  if (values.empty())
    return 0.0;
  std::sort(values.begin(), values.end());
  const std::size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2.0;
}

std::string toml_string(const fs::path& path) {
  std::string quoted = "\"";
  for (const char c : path.string()) {
    if (c == '"' || c == '\\')
      quoted += '\\';
    quoted += c;
  }
  return quoted + '"';
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string tail(const std::string& text, std::size_t lines) {
  std::size_t position = text.size();
  while (lines-- > 0 && position > 0)
    position = text.rfind('\n', position - 1);
  return position == std::string::npos ? text : text.substr(position + 1);
}

// ---------------------------------------------------------------------------------------------
// Machine

struct Machine {
  std::string date;    // UTC, "2026-01-31 14:05 UTC"
  std::string kernel;  // `uname -srm`
  std::string cpu;     // model name from /proc/cpuinfo
  unsigned cores = 0;  // online logical CPUs
  std::string sqlite;  // library version
  std::string load;    // load averages when the benchmark started
};

// The 1, 5 and 15 minute load averages: other work on the machine skews every number.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return in ? fmt::format("{} {} {}", one, five, fifteen) : std::string{"unknown"};
}

Machine describe_machine() {
  Machine machine;
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  std::array<char, 64> date{};
  std::strftime(date.data(), date.size(), "%Y-%m-%d %H:%M UTC", &utc);
  machine.date = date.data();
  utsname names{};
  if (::uname(&names) == 0)
    machine.kernel = fmt::format("{} {} {}", names.sysname, names.release, names.machine);
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.starts_with("model name")) {
      const std::size_t colon = line.find(':');
      machine.cpu = colon == std::string::npos ? line : line.substr(colon + 2);
      break;
    }
  }
  if (machine.cpu.empty())
    machine.cpu = "unknown";
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  machine.cores = cores > 0 ? static_cast<unsigned>(cores) : 0;
  machine.sqlite = ::sqlite3_libversion();
  machine.load = load_average();
  return machine;
}

// ---------------------------------------------------------------------------------------------
// Temporary directory

class TempDir {
public:
  TempDir(const fs::path& base, bool keep) : m_keep(keep) {
    fs::create_directories(base);
    std::string pattern = (base / "retentiond-bench.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp in " + base.string());
    m_path = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (m_keep) {
      progress(fmt::format("kept {}", m_path.string()));
      return;
    }
    std::error_code ignored;
    fs::remove_all(m_path, ignored);
  }
  const fs::path& path() const { return m_path; }

private:
  fs::path m_path;
  bool m_keep;
};

// ---------------------------------------------------------------------------------------------
// Generated data

// splitmix64: fast, and the same seed gives the same datasets on every machine.
class Rng {
public:
  explicit Rng(std::uint64_t seed) : m_state(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (m_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound).
  std::int64_t below(std::int64_t bound) {
    return static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(bound));
  }
  bool chance(double probability) {
    return static_cast<double>(next() >> 11) * 0x1.0p-53 < probability;
  }

private:
  std::uint64_t m_state;
};

// Client strings of the kind a conferencing service logs: browsers, phones, desk devices.
constexpr std::array<std::string_view, 8> k_user_agents = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148",
    "Yealink SIP-T54W 96.86.0.70",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.1",
    "YealinkMeeting/4.7.2 (Android 13; SM-G991B)",
    "okhttp/4.12.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile",
};

// A made-up client address: mostly IPv4, some IPv6.
std::string make_ip(Rng& rng) {
  if (rng.chance(0.15))
    return fmt::format("2001:db8:{:x}:{:x}::{:x}", rng.below(0x10000), rng.below(0x10000),
                       rng.below(0x10000));
  return fmt::format("{}.{}.{}.{}", 1 + rng.below(223), rng.below(256), rng.below(256),
                     1 + rng.below(254));
}

enum class Order { random, append_only };

// What to generate: anchors span `span` seconds before `now`, a fraction `due` of them older
// than the cutoff (now - 365 days).
struct Shape {
  std::int64_t rows = 0;
  double due = 0.0;
  std::int64_t span = 0;
  Order order = Order::random;
};

// The anchor of row `i`: in random order, due with probability `due`; append-only, the first
// due share of the rows is due and the anchor grows with the row number. Never within k_gap
// of the cutoff, never in the last minute.
std::int64_t make_anchor(const Shape& shape, std::int64_t i, std::int64_t now, Rng& rng) {
  const std::int64_t old_span =
      shape.span - k_retain - k_gap;                    // due anchors: [now-span, now-retain-gap)
  const std::int64_t new_span = k_retain - k_gap - 60;  // kept anchors: (now-retain+gap, now-60]
  if (shape.order == Order::random) {
    if (rng.chance(shape.due))
      return now - k_retain - k_gap - 1 - rng.below(old_span);
    return now - 60 - rng.below(new_span);
  }
  const auto due_rows = static_cast<std::int64_t>(static_cast<double>(shape.rows) * shape.due);
  if (i < due_rows)
    return now - shape.span + (i * old_span) / std::max<std::int64_t>(due_rows, 1);
  const std::int64_t kept_rows = std::max<std::int64_t>(shape.rows - due_rows, 1);
  return now - k_retain + k_gap + 1 + ((i - due_rows) * new_span) / kept_rows;
}

struct Dataset {
  fs::path path;
  std::int64_t rows = 0;
  std::int64_t due = 0;
  double generate_seconds = 0.0;
  double bytes_per_row = 0.0;  // file size / rows, index included
};

// Opens a new file for fast generation: no journal, no fsync, a large cache. WAL is switched on
// by finish_generation, once the data is in.
SQLite::Database open_for_generation(const fs::path& path) {
  fs::remove(path);
  SQLite::Database db(path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("PRAGMA journal_mode = OFF");
  db.exec("PRAGMA synchronous = OFF");
  db.exec("PRAGMA cache_size = -524288");  // 512 MiB
  return db;
}

void finish_generation(SQLite::Database& db, Dataset& dataset, Clock::time_point started) {
  db.exec("PRAGMA journal_mode = WAL");
  SQLite::Statement checkpoint(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  checkpoint.executeStep();
  dataset.generate_seconds = seconds_since(started);
  dataset.bytes_per_row = static_cast<double>(fs::file_size(dataset.path)) /
                          static_cast<double>(std::max<std::int64_t>(dataset.rows, 1));
  progress(
      fmt::format("  {:.1f} s, {:.0f} bytes/row", dataset.generate_seconds, dataset.bytes_per_row));
}

constexpr const char* k_connection_logs_schema =
    "CREATE TABLE connection_logs(id INTEGER PRIMARY KEY, account_id INTEGER, ip TEXT, "
    "user_agent TEXT, connected_at INTEGER);"
    "CREATE INDEX connection_logs_connected_at ON connection_logs(connected_at);";

// The index exists before the rows go in, as in a table an application filled over time.
Dataset generate_connection_logs(const fs::path& path, const Shape& shape, std::int64_t now,
                                 std::uint64_t seed) {
  progress(fmt::format("generating {} ({} rows)", path.filename().string(), grouped(shape.rows)));
  const auto started = Clock::now();
  Dataset dataset{path, shape.rows, 0, 0.0, 0.0};
  SQLite::Database db = open_for_generation(path);
  db.exec(k_connection_logs_schema);
  Rng rng(seed);
  {
    SQLite::Transaction transaction(db);
    SQLite::Statement insert(
        db, "INSERT INTO connection_logs(id, account_id, ip, user_agent, connected_at) "
            "VALUES (?, ?, ?, ?, ?)");
    for (std::int64_t i = 0; i < shape.rows; ++i) {
      const std::int64_t anchor = make_anchor(shape, i, now, rng);
      if (anchor < now - k_retain)
        ++dataset.due;
      const std::string ip = make_ip(rng);
      const std::string_view agent =
          k_user_agents[static_cast<std::size_t>(rng.below(k_user_agents.size()))];
      insert.bind(1, static_cast<int64_t>(i + 1));
      insert.bind(2, static_cast<int64_t>(1 + rng.below(200'000)));
      insert.bindNoCopy(3, ip);
      insert.bindNoCopy(4, agent.data(), static_cast<int>(agent.size()));
      insert.bind(5, static_cast<int64_t>(anchor));
      insert.exec();
      insert.reset();
    }
    transaction.commit();
  }
  finish_generation(db, dataset, started);
  return dataset;
}

Dataset generate_accounts(const fs::path& path, const Shape& shape, std::int64_t now,
                          std::uint64_t seed) {
  progress(fmt::format("generating {} ({} rows)", path.filename().string(), grouped(shape.rows)));
  const auto started = Clock::now();
  Dataset dataset{path, shape.rows, 0, 0.0, 0.0};
  SQLite::Database db = open_for_generation(path);
  db.exec("CREATE TABLE accounts(id INTEGER PRIMARY KEY, email TEXT, last_ip TEXT, phone TEXT, "
          "last_seen_at INTEGER, anonymized_at INTEGER);"
          "CREATE INDEX accounts_last_seen_at ON accounts(last_seen_at);");
  constexpr std::array<std::string_view, 5> domains = {
      "example.com", "mail.example.org", "example.net", "corp.example", "example.co.uk"};
  Rng rng(seed);
  {
    SQLite::Transaction transaction(db);
    SQLite::Statement insert(db, "INSERT INTO accounts(id, email, last_ip, phone, last_seen_at) "
                                 "VALUES (?, ?, ?, ?, ?)");
    for (std::int64_t i = 0; i < shape.rows; ++i) {
      const std::int64_t anchor = make_anchor(shape, i, now, rng);
      if (anchor < now - k_retain)
        ++dataset.due;
      insert.bind(1, static_cast<int64_t>(i + 1));
      if (rng.chance(0.03))
        insert.bind(2);
      else
        insert.bind(2, fmt::format("user{}.{}@{}", i + 1, rng.below(100),
                                   domains[static_cast<std::size_t>(rng.below(domains.size()))]));
      insert.bind(3, make_ip(rng));
      if (rng.chance(0.2))
        insert.bind(4);
      else
        insert.bind(4, fmt::format("+33 6 {:02} {:02} {:02} {:02}", rng.below(100), rng.below(100),
                                   rng.below(100), rng.below(100)));
      insert.bind(5, static_cast<int64_t>(anchor));
      insert.exec();
      insert.reset();
    }
    transaction.commit();
  }
  finish_generation(db, dataset, started);
  return dataset;
}

// Flushes `file` to disk (so write-back does not run during the measurement) and reads it once
// (so the measured side starts with the file in the page cache).
void settle(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::system_error(errno, std::generic_category(), "open " + file.string());
  ::fsync(fd);
  std::vector<char> buffer(1 << 20);
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
  ::close(fd);
  ::sync();
}

// Replaces `work` by a settled copy of `master`.
void fresh_copy(const fs::path& master, const fs::path& work) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    fs::remove(work.string() + suffix);
  fs::copy_file(master, work);
  settle(work);
}

// ---------------------------------------------------------------------------------------------
// The application writer

struct WriterStats {
  std::vector<double> latencies_ms;  // every insert, waits for the lock included
  std::int64_t failed = 0;           // inserts that failed (busy after 30 s, or another error)
  std::string first_error;
};

// A thread with its own connection that inserts one row every `interval` into connection_logs,
// as the application would while a purge runs. A tick missed while an insert waited is skipped,
// not made up for in a burst. `sync` is the connection's PRAGMA synchronous.
class ApplicationWriter {
public:
  ApplicationWriter(const fs::path& db, milliseconds interval, const std::string& sync)
      : m_db(open(db, sync)),
        m_insert(m_db, "INSERT INTO connection_logs(account_id, ip, user_agent, connected_at) "
                       "VALUES (?, ?, ?, ?)"),
        m_interval(interval), m_thread([this](std::stop_token stop) { loop(stop); }) {}
  ApplicationWriter(const ApplicationWriter&) = delete;
  ApplicationWriter& operator=(const ApplicationWriter&) = delete;
  ~ApplicationWriter() = default;

  // Stops the thread and returns what it measured.
  WriterStats finish() {
    m_thread.request_stop();
    m_thread.join();
    return std::move(m_stats);
  }

private:
  static SQLite::Database open(const fs::path& db, const std::string& sync) {
    SQLite::Database connection(db.string(), SQLite::OPEN_READWRITE, k_busy_timeout_ms);
    connection.exec("PRAGMA synchronous = " + sync);
    return connection;
  }

  void loop(const std::stop_token& stop) {
    Rng rng(7);
    auto next = Clock::now();
    while (!stop.stop_requested()) {
      const std::string ip = make_ip(rng);
      const auto began = Clock::now();
      try {
        m_insert.bind(1, static_cast<int64_t>(1 + rng.below(200'000)));
        m_insert.bind(2, ip);
        m_insert.bind(3, std::string{k_user_agents[0]});
        m_insert.bind(4, static_cast<int64_t>(unix_now()));
        m_insert.exec();
      } catch (const std::exception& error) {
        if (m_stats.failed++ == 0)
          m_stats.first_error = error.what();
      }
      m_insert.tryReset();
      m_stats.latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - began).count());
      next += m_interval;
      const auto now = Clock::now();
      if (next < now)
        next = now;
      std::this_thread::sleep_until(next);
    }
  }

  SQLite::Database m_db;
  SQLite::Statement m_insert;
  milliseconds m_interval;
  WriterStats m_stats;
  std::jthread m_thread;  // last: starts once everything it uses exists
};

constexpr milliseconds k_writer_interval{5};

// ---------------------------------------------------------------------------------------------
// Running retentiond

struct ProcessRun {
  double seconds = 0.0;
  long max_rss_kb = 0;          // 0 when not measured
  double written_mb = 0.0;      // file system output (ru_oublock), 0 when not measured
  std::int64_t started_ms = 0;  // Unix time, for lining up with the audit log
  std::int64_t ended_ms = 0;
};

// Runs `args` with stdout and stderr to `log`, under GNU time when `measure` (peak RSS and
// bytes written); throws unless it exits 0.
ProcessRun run_process(const std::vector<std::string>& command, const fs::path& log, bool measure) {
  const fs::path usage_file = log.string() + ".usage";
  std::vector<std::string> args;
  if (measure)
    args = {k_gnu_time, "-f", "%M %O", "-o", usage_file.string()};
  args.insert(args.end(), command.begin(), command.end());
  std::vector<char*> argv;
  for (const std::string& arg : args)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  ProcessRun run;
  run.started_ms = unix_now_ms();
  const auto started = Clock::now();
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0)
    throw std::system_error(spawned, std::generic_category(), "cannot start " + args[0]);
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0)
    if (errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "wait4");
  run.seconds = seconds_since(started);
  run.ended_ms = unix_now_ms();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string line;
    for (const std::string& arg : command)
      line += (line.empty() ? "" : " ") + arg;
    throw std::runtime_error(fmt::format("`{}` {} {}; last lines of {}:\n{}", line,
                                         WIFEXITED(status) ? "exited" : "was killed by signal",
                                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                                         log.string(), tail(read_text(log), 20)));
  }
  if (measure) {
    // The last line is ours ("MAXRSS_KB OUTBLOCKS"); time may write a note above it.
    std::istringstream last(tail(read_text(usage_file), 2));
    long blocks = 0;
    if (!(last >> run.max_rss_kb >> blocks))
      throw std::runtime_error("cannot read the peak memory from " + usage_file.string());
    run.written_mb = static_cast<double>(blocks) * 512.0 / 1e6;
  }
  return run;
}

constexpr const char* k_delete_rule = R"toml(
[rules.connection_logs]
description = "Connection logs are kept 365 days (benchmark)"
policy = "bench/purge_bench.cpp"
datastore = "bench"
table = "connection_logs"
age_column = "connected_at"
age_format = "unix_seconds"
retain = "365 days"
action = "delete"
max_fraction = 1.0
)toml";

constexpr const char* k_anonymize_rule = R"toml(
[rules.accounts]
description = "Accounts are anonymized 365 days after last use (benchmark)"
policy = "bench/purge_bench.cpp"
datastore = "bench"
table = "accounts"
age_column = "last_seen_at"
age_format = "unix_seconds"
retain = "365 days"
action = "anonymize"
anonymized_column = "anonymized_at"
max_fraction = 1.0

[rules.accounts.anonymize]
email = "redact"
last_ip = "ip_prefix"
phone = "null"
)toml";

// A fresh state directory and config for one run of one rule on `db`; returns the config file.
fs::path write_config(const fs::path& dir, const fs::path& db, const char* rule) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path config = dir / "retentiond.toml";
  std::ofstream out(config);
  out << "[state]\npath = " << toml_string(dir / "state.db") << "\n\n"
      << "[datastores.bench]\ntype = \"sqlite\"\npath = " << toml_string(db)
      << "\nbusy_timeout = \"30s\"\n"
      << rule;
  if (!out.flush())
    throw std::runtime_error("cannot write " + config.string());
  return config;
}

// What the audit log says about one run of one rule.
struct AuditSummary {
  int batches = 0;
  std::int64_t rows = 0;  // sum of the batch entries' rows
  std::optional<std::int64_t> first_batch_ms;
  std::optional<std::int64_t> last_batch_ms;
};

std::optional<std::string> json_field(std::string_view line, std::string_view key) {
  const std::string needle = fmt::format("\"{}\":", key);
  std::size_t at = line.find(needle);
  if (at == std::string_view::npos)
    return std::nullopt;
  at += needle.size();
  if (at < line.size() && line[at] == '"') {
    const std::size_t end = line.find('"', at + 1);
    return std::string{line.substr(at + 1, end - at - 1)};
  }
  const std::size_t end = line.find_first_of(",}", at);
  return std::string{line.substr(at, end - at)};
}

// "2026-01-31T14:05:09.123Z" (milliseconds optional) -> Unix milliseconds.
std::optional<std::int64_t> parse_audit_time(std::string_view text) {
  int year = 0;
  unsigned month = 0, day = 0, hour = 0, minute = 0, second = 0, millis = 0;
  const std::string copy{text};
  if (std::sscanf(copy.c_str(), "%d-%u-%uT%u:%u:%u", &year, &month, &day, &hour, &minute,
                  &second) != 6)
    return std::nullopt;
  if (const std::size_t dot = copy.find('.'); dot != std::string::npos)
    std::sscanf(copy.c_str() + dot + 1, "%3u", &millis);
  using namespace std::chrono;
  const sys_days date{std::chrono::year{year} / std::chrono::month{month} / std::chrono::day{day}};
  const auto instant =
      date + hours{hour} + minutes{minute} + std::chrono::seconds{second} + milliseconds{millis};
  return duration_cast<milliseconds>(instant.time_since_epoch()).count();
}

AuditSummary read_audit(const fs::path& binary, const fs::path& config, const fs::path& dir) {
  const fs::path out = dir / "audit.jsonl";
  run_process({binary.string(), "-c", config.string(), "audit", "log", "--format", "json"}, out,
              false);
  AuditSummary summary;
  std::ifstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (json_field(line, "kind") != "batch")
      continue;
    ++summary.batches;
    if (const auto rows = json_field(line, "rows"))
      summary.rows += std::stoll(*rows);
    if (const auto time = json_field(line, "time"); time)
      if (const auto ms = parse_audit_time(*time)) {
        if (!summary.first_batch_ms)
          summary.first_batch_ms = ms;
        summary.last_batch_ms = ms;
      }
  }
  return summary;
}

struct RetentiondRun {
  ProcessRun process;
  AuditSummary audit;
  fs::path config;
};

// Runs `retentiond once` with a fresh state in `dir`; the audit summary is read by read_audit.
RetentiondRun run_retentiond(const Options& options, const fs::path& dir, const fs::path& db,
                             const char* rule, const std::string& rule_id) {
  RetentiondRun run;
  run.config = write_config(dir, db, rule);
  run.process = run_process(
      {options.retentiond.string(), "-c", run.config.string(), "once", "--confirm-mass", rule_id},
      dir / "once.log", true);
  return run;
}

void read_audit(const Options& options, RetentiondRun& run) {
  run.audit = read_audit(options.retentiond, run.config, run.config.parent_path());
}

// ---------------------------------------------------------------------------------------------
// The single statements

struct BaselineRun {
  double seconds = 0.0;     // open, statement, checkpoint
  double statement = 0.0;   // the DELETE or UPDATE alone
  double checkpoint = 0.0;  // wal_checkpoint(TRUNCATE)
  double written_mb = 0.0;  // file system output of this thread (ru_oublock)
  std::int64_t rows = 0;
};

// File system output of the calling thread so far, in MB.
double thread_written_mb() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return static_cast<double>(usage.ru_oublock) * 512.0 / 1e6;
}

SQLite::Database open_baseline(const fs::path& db) {
  SQLite::Database connection(db.string(), SQLite::OPEN_READWRITE, k_busy_timeout_ms);
  connection.exec("PRAGMA secure_delete = ON");  // as retentiond purges
  return connection;
}

void checkpoint_truncate(SQLite::Database& connection, BaselineRun& run) {
  const auto started = Clock::now();
  SQLite::Statement checkpoint(connection, "PRAGMA wal_checkpoint(TRUNCATE)");
  checkpoint.executeStep();
  if (checkpoint.getColumn(0).getInt() != 0)
    progress("warning: the baseline's WAL checkpoint was blocked");
  run.checkpoint = seconds_since(started);
}

BaselineRun baseline_delete(const fs::path& db) {
  BaselineRun run;
  const double written_before = thread_written_mb();
  const auto started = Clock::now();
  SQLite::Database connection = open_baseline(db);
  SQLite::Statement statement(connection, "DELETE FROM connection_logs WHERE connected_at < ?");
  statement.bind(1, static_cast<int64_t>(unix_now() - k_retain));
  const auto statement_started = Clock::now();
  run.rows = statement.exec();
  run.statement = seconds_since(statement_started);
  checkpoint_truncate(connection, run);
  run.seconds = seconds_since(started);
  run.written_mb = thread_written_mb() - written_before;
  return run;
}

BaselineRun baseline_anonymize(const fs::path& db) {
  BaselineRun run;
  const double written_before = thread_written_mb();
  const auto started = Clock::now();
  SQLite::Database connection = open_baseline(db);
  // retentiond's own ip_prefix function, so both sides pay the same for the mask.
  adapters::sqlite::register_masks(connection.getHandle(), "");
  SQLite::Statement statement(
      connection,
      "UPDATE accounts SET email = CASE WHEN email IS NULL THEN NULL ELSE '[redacted]' END, "
      "last_ip = retentiond_ip_prefix(last_ip), phone = NULL, anonymized_at = ? "
      "WHERE last_seen_at < ? AND anonymized_at IS NULL");
  const std::int64_t now = unix_now();
  statement.bind(1, static_cast<int64_t>(now));
  statement.bind(2, static_cast<int64_t>(now - k_retain));
  const auto statement_started = Clock::now();
  run.rows = statement.exec();
  run.statement = seconds_since(statement_started);
  checkpoint_truncate(connection, run);
  run.seconds = seconds_since(started);
  run.written_mb = thread_written_mb() - written_before;
  return run;
}

std::int64_t count_rows(const fs::path& db, const std::string& table) {
  SQLite::Database connection(db.string(), SQLite::OPEN_READONLY, k_busy_timeout_ms);
  SQLite::Statement count(connection, "SELECT count(*) FROM " + table);
  count.executeStep();
  return count.getColumn(0).getInt64();
}

// A digest of the anonymized state of accounts that ignores the anonymized_at values (the two
// sides anonymize at different instants).
std::string accounts_digest(const fs::path& db) {
  SQLite::Database connection(db.string(), SQLite::OPEN_READONLY, k_busy_timeout_ms);
  SQLite::Statement query(connection,
                          "SELECT count(anonymized_at), count(email), total(email = '[redacted]'), "
                          "count(last_ip), total(length(last_ip)), count(phone) FROM accounts");
  query.executeStep();
  std::string digest;
  for (int column = 0; column < query.getColumnCount(); ++column)
    digest += (column == 0 ? "" : "/") + query.getColumn(column).getString();
  return digest;
}

std::int64_t anonymized_count(const fs::path& db) {
  SQLite::Database connection(db.string(), SQLite::OPEN_READONLY, k_busy_timeout_ms);
  SQLite::Statement query(connection,
                          "SELECT count(*) FROM accounts WHERE anonymized_at IS NOT NULL");
  query.executeStep();
  return query.getColumn(0).getInt64();
}

// ---------------------------------------------------------------------------------------------
// Measurements

struct WriterSummary {
  std::int64_t inserts = 0;
  std::int64_t failed = 0;
  double p50 = 0.0, p99 = 0.0, max = 0.0;  // ms
};

WriterSummary summarize(std::vector<double> latencies, std::int64_t failed) {
  WriterSummary summary;
  summary.inserts = static_cast<std::int64_t>(latencies.size());
  summary.failed = failed;
  if (latencies.empty())
    return summary;
  std::sort(latencies.begin(), latencies.end());
  const auto rank = [&](double q) {
    const auto index =
        static_cast<std::size_t>(std::ceil(q * static_cast<double>(latencies.size()))) - 1;
    return latencies[std::min(index, latencies.size() - 1)];
  };
  summary.p50 = rank(0.50);
  summary.p99 = rank(0.99);
  summary.max = latencies.back();
  return summary;
}

// One side (single statement or retentiond) of one scenario, over every repetition.
struct Side {
  std::vector<double> seconds;
  std::vector<double> latencies_ms;
  std::int64_t failed = 0;
  std::int64_t changed = 0;  // rows deleted or anonymized (last repetition)
  bool verified = true;      // changed == the rows due, every repetition
  // Single statement only:
  std::vector<double> statement_seconds, checkpoint_seconds, written_mb;
  // retentiond only:
  std::vector<RetentiondRun> runs;
};

struct Scenario {
  std::string name;
  Dataset dataset;
  Side baseline;
  Side retentiond;
  bool with_writer = false;
};

void add_writer(Side& side, const WriterStats& stats) {
  side.latencies_ms.insert(side.latencies_ms.end(), stats.latencies_ms.begin(),
                           stats.latencies_ms.end());
  side.failed += stats.failed;
  if (stats.failed > 0)
    progress(fmt::format("warning: {} writer inserts failed: {}", stats.failed, stats.first_error));
}

void measure_delete(const Options& options, const fs::path& dir, Scenario& scenario) {
  const fs::path work = dir / "work.db";
  for (int repetition = 0; repetition < options.repeat; ++repetition) {
    {
      progress(fmt::format("{}: single DELETE (run {}/{})", scenario.name, repetition + 1,
                           options.repeat));
      fresh_copy(scenario.dataset.path, work);
      std::optional<ApplicationWriter> writer;
      if (scenario.with_writer)
        writer.emplace(work, k_writer_interval, options.writer_sync);
      const BaselineRun run = baseline_delete(work);
      WriterStats stats = writer ? writer->finish() : WriterStats{};
      const auto inserted = static_cast<std::int64_t>(stats.latencies_ms.size()) - stats.failed;
      const std::int64_t deleted =
          scenario.dataset.rows + inserted - count_rows(work, "connection_logs");
      scenario.baseline.seconds.push_back(run.seconds);
      scenario.baseline.statement_seconds.push_back(run.statement);
      scenario.baseline.checkpoint_seconds.push_back(run.checkpoint);
      scenario.baseline.written_mb.push_back(run.written_mb);
      scenario.baseline.changed = deleted;
      scenario.baseline.verified &= deleted == scenario.dataset.due;
      add_writer(scenario.baseline, stats);
    }
    {
      progress(fmt::format("{}: retentiond once (run {}/{})", scenario.name, repetition + 1,
                           options.repeat));
      fresh_copy(scenario.dataset.path, work);
      std::optional<ApplicationWriter> writer;
      if (scenario.with_writer)
        writer.emplace(work, k_writer_interval, options.writer_sync);
      RetentiondRun run =
          run_retentiond(options, dir / "state", work, k_delete_rule, "connection_logs");
      WriterStats stats = writer ? writer->finish() : WriterStats{};
      read_audit(options, run);
      const auto inserted = static_cast<std::int64_t>(stats.latencies_ms.size()) - stats.failed;
      const std::int64_t deleted =
          scenario.dataset.rows + inserted - count_rows(work, "connection_logs");
      scenario.retentiond.seconds.push_back(run.process.seconds);
      scenario.retentiond.changed = deleted;
      scenario.retentiond.verified &= deleted == scenario.dataset.due && run.audit.rows == deleted;
      scenario.retentiond.runs.push_back(run);
      add_writer(scenario.retentiond, stats);
    }
  }
  fs::remove(work);
}

void measure_anonymize(const Options& options, const fs::path& dir, Scenario& scenario) {
  const fs::path work = dir / "work.db";
  std::string baseline_digest, retentiond_digest;
  for (int repetition = 0; repetition < options.repeat; ++repetition) {
    progress(fmt::format("{}: single UPDATE (run {}/{})", scenario.name, repetition + 1,
                         options.repeat));
    fresh_copy(scenario.dataset.path, work);
    const BaselineRun baseline = baseline_anonymize(work);
    scenario.baseline.seconds.push_back(baseline.seconds);
    scenario.baseline.statement_seconds.push_back(baseline.statement);
    scenario.baseline.checkpoint_seconds.push_back(baseline.checkpoint);
    scenario.baseline.written_mb.push_back(baseline.written_mb);
    scenario.baseline.changed = anonymized_count(work);
    scenario.baseline.verified &= scenario.baseline.changed == scenario.dataset.due;
    baseline_digest = accounts_digest(work);

    progress(fmt::format("{}: retentiond once (run {}/{})", scenario.name, repetition + 1,
                         options.repeat));
    fresh_copy(scenario.dataset.path, work);
    RetentiondRun run = run_retentiond(options, dir / "state", work, k_anonymize_rule, "accounts");
    read_audit(options, run);
    scenario.retentiond.seconds.push_back(run.process.seconds);
    scenario.retentiond.changed = anonymized_count(work);
    retentiond_digest = accounts_digest(work);
    scenario.retentiond.verified &= scenario.retentiond.changed == scenario.dataset.due &&
                                    run.audit.rows == scenario.retentiond.changed &&
                                    retentiond_digest == baseline_digest;
    scenario.retentiond.runs.push_back(run);
  }
  if (retentiond_digest != baseline_digest)
    progress(
        fmt::format("warning: the two anonymized tables differ: single UPDATE {} vs retentiond {}",
                    baseline_digest, retentiond_digest));
  fs::remove(work);
}

struct SoloRun {
  Dataset dataset;
  ProcessRun process;
  AuditSummary audit;
  std::int64_t changed = 0;
  double baseline_seconds = 0;  // the single DELETE on a copy (peak-memory dataset), no writer
};

// ---------------------------------------------------------------------------------------------
// Output

std::string fmt_seconds(double seconds) {
  return fmt::format("{:.2f} s", seconds);
}
std::string fmt_ms(double ms) {
  return ms < 10.0 ? fmt::format("{:.2f}", ms) : fmt::format("{:.0f}", ms);
}
std::string fmt_mb(long kb) {
  return fmt::format("{:.1f} MB", static_cast<double>(kb) / 1024.0);
}
std::string check_mark(bool verified) {
  return verified ? "" : " (!)";
}

std::string breakdown(const RetentiondRun& run) {
  const ProcessRun& p = run.process;
  const AuditSummary& a = run.audit;
  if (!a.first_batch_ms || !a.last_batch_ms)
    return fmt::format("| {} | – | – | – | – | {:.0f} MB | {} |", a.batches, p.written_mb,
                       fmt_mb(p.max_rss_kb));
  const auto s = [](std::int64_t ms) {
    return fmt::format("{:.2f} s", static_cast<double>(ms) / 1000.0);
  };
  return fmt::format("| {} | {} | {} | {} | {} | {:.0f} MB | {} |", a.batches,
                     grouped(a.batches > 0 ? a.rows / a.batches : 0),
                     s(*a.first_batch_ms - p.started_ms), s(*a.last_batch_ms - *a.first_batch_ms),
                     s(p.ended_ms - *a.last_batch_ms), p.written_mb, fmt_mb(p.max_rss_kb));
}

std::string render(const Options& options, const Machine& machine,
                   const std::vector<Scenario>& scenarios, const SoloRun& rss,
                   const SoloRun& report) {
  std::ostringstream out;
  out << "## " << machine.date << " — " << options.mode << " (" << short_count(options.rows)
      << " / " << short_count(options.rss_rows) << " / " << short_count(options.report_rows)
      << " rows)\n\n";
  out << "- machine: `" << machine.kernel << "`, " << machine.cpu << ", " << machine.cores
      << " cores; load average " << machine.load << " at the start, " << load_average()
      << " at the end\n";
  out << "- SQLite " << machine.sqlite << "; retentiond "
      << (options.revision.empty() ? options.retentiond.string() : options.revision) << "\n";
  out << "- each time is wall time from a warm, identical copy of the generated file"
      << (options.repeat > 1 ? fmt::format(", median of {} runs", options.repeat) : std::string{})
      << "; both sides use secure_delete and end with wal_checkpoint(TRUNCATE)\n\n";

  out << "### Purge and anonymize time\n\n";
  out << "| scenario | rows | due | single statement | retentiond once | ratio |\n";
  out << "|---|--:|--:|--:|--:|--:|\n";
  for (const Scenario& s : scenarios) {
    const double base = median(s.baseline.seconds);
    const double ours = median(s.retentiond.seconds);
    out << fmt::format("| {} | {} | {} | {}{} | {}{} | {:.2f}× |\n", s.name,
                       grouped(s.dataset.rows), grouped(s.dataset.due), fmt_seconds(base),
                       check_mark(s.baseline.verified), fmt_seconds(ours),
                       check_mark(s.retentiond.verified), base > 0 ? ours / base : 0.0);
  }
  out << "\nratio = retentiond / single statement. (!) = the rows changed differ from the rows "
         "due.\n\n";

  out << "### Application writer during the purge\n\n";
  out << "One INSERT every 5 ms from a thread with its own connection (busy_timeout 30 s, "
         "synchronous "
      << options.writer_sync << "); latency is each insert's wall time, lock waits included.\n\n";
  out << "| scenario | purged by | inserts | failed | p50 ms | p99 ms | max ms |\n";
  out << "|---|---|--:|--:|--:|--:|--:|\n";
  for (const Scenario& s : scenarios) {
    if (!s.with_writer)
      continue;
    for (const auto& [label, side] :
         {std::pair<const char*, const Side*>{"single DELETE", &s.baseline},
          std::pair<const char*, const Side*>{"retentiond", &s.retentiond}}) {
      const WriterSummary w = summarize(side->latencies_ms, side->failed);
      out << fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", s.name, label,
                         grouped(w.inserts), w.failed, fmt_ms(w.p50), fmt_ms(w.p99), fmt_ms(w.max));
    }
  }

  out << "\n### Where the time goes\n\n";
  out << "Single statement: the statement itself, then the checkpoint; written = the bytes this "
         "thread wrote to files (ru_oublock: WAL and checkpoint).\n\n";
  out << "| scenario | statement | checkpoint(TRUNCATE) | written |\n|---|--:|--:|--:|\n";
  for (const Scenario& s : scenarios)
    out << fmt::format(
        "| {} | {} | {} | {:.0f} MB |\n", s.name, fmt_seconds(median(s.baseline.statement_seconds)),
        fmt_seconds(median(s.baseline.checkpoint_seconds)), median(s.baseline.written_mb));
  out << "\nretentiond (from its audit log, last run): start to first batch entry (start-up, "
         "schema "
         "check, census, first batch), first to last batch entry, last batch entry to exit "
         "(commit, "
         "checkpoint, rule_done); written = the bytes the process wrote to files (datastore and "
         "state DB).\n\n";
  out << "| run | batches | rows/batch | to first batch | first to last batch | after last batch | "
         "written | peak RSS |\n";
  out << "|---|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const Scenario& s : scenarios)
    if (!s.retentiond.runs.empty())
      out << "| " << s.name << " " << breakdown(s.retentiond.runs.back()) << "\n";
  out << "| peak-memory purge " << breakdown(RetentiondRun{rss.process, rss.audit, {}}) << "\n";

  out << "\n### retentiond resources\n\n";
  out << "| measurement | rows | result |\n|---|--:|--:|\n";
  out << fmt::format(
      "| peak RSS of `once` (random order, 2/3 expired, no writer) | {} | {}{} (took {}; the "
      "single DELETE on a copy {}: {:.2f}×) |\n",
      grouped(rss.dataset.rows), fmt_mb(rss.process.max_rss_kb),
      check_mark(rss.changed == rss.dataset.due), fmt_seconds(rss.process.seconds),
      fmt_seconds(rss.baseline_seconds), rss.process.seconds / rss.baseline_seconds);
  out << fmt::format("| wall time of `report --format json --output /dev/null` ({} due) | {} | {} "
                     "(peak RSS {}) |\n",
                     grouped(report.dataset.due), grouped(report.dataset.rows),
                     fmt_seconds(report.process.seconds), fmt_mb(report.process.max_rss_kb));

  out << "\nDatasets: ";
  bool first = true;
  for (const Scenario& s : scenarios) {
    out << (first ? "" : "; ") << s.name << fmt::format(" {:.0f} B/row", s.dataset.bytes_per_row);
    first = false;
  }
  out << fmt::format(
      "; peak-memory {:.0f} B/row; report {:.0f} B/row (file size / rows, index included). "
      "Generation took {} for the largest.\n\n",
      rss.dataset.bytes_per_row, report.dataset.bytes_per_row,
      fmt_seconds(report.dataset.generate_seconds));
  return out.str();
}

void append_results(const fs::path& file, const std::string& section) {
  const bool exists = fs::exists(file);
  std::ofstream out(file, std::ios::app);
  if (!exists)
    out << "# Benchmark results\n\n"
           "Appended by `bench/run` (see [README.md](README.md)); newest last. Numbers from "
           "different "
           "machines or modes are not comparable.\n\n";
  out << section;
  if (!out.flush())
    throw std::runtime_error("cannot write " + file.string());
}

int run(const Options& options) {
  const Machine machine = describe_machine();
  std::cout << "date:  " << machine.date << "\nuname: " << machine.kernel
            << "\ncpu:   " << machine.cpu << "\ncores: " << machine.cores
            << "\nsqlite: " << machine.sqlite << "\nload:  " << machine.load << "\n\n"
            << std::flush;

  const TempDir temp(options.base_dir, options.keep);
  const fs::path& dir = temp.path();
  progress(fmt::format("datasets in {}", dir.string()));
  const std::int64_t now = unix_now();
  constexpr std::int64_t three_years = k_day * 3 * 365;

  std::vector<Scenario> scenarios;
  scenarios.push_back(
      {"delete, random order",
       generate_connection_logs(dir / "random.db",
                                {options.rows, 2.0 / 3.0, three_years, Order::random}, now, 1),
       {},
       {},
       true});
  scenarios.push_back(
      {"delete, append-only",
       generate_connection_logs(dir / "append.db",
                                {options.rows, 2.0 / 3.0, three_years, Order::append_only}, now, 2),
       {},
       {},
       true});
  // The same table and purge with no application writing: what retentiond's batches cost
  // against the single statement before any room is left for the application.
  scenarios.push_back(
      {"delete, append-only, no writer",
       generate_connection_logs(dir / "append-solo.db",
                                {options.rows, 2.0 / 3.0, three_years, Order::append_only}, now, 2),
       {},
       {},
       false});
  scenarios.push_back(
      {"anonymize",
       generate_accounts(dir / "accounts.db", {options.rows, 2.0 / 3.0, three_years, Order::random},
                         now, 3),
       {},
       {},
       false});

  for (Scenario& scenario : scenarios) {
    if (scenario.name == "anonymize")
      measure_anonymize(options, dir, scenario);
    else
      measure_delete(options, dir, scenario);
    if (!options.keep)
      fs::remove(scenario.dataset.path);  // frees the disk for the next dataset
  }

  SoloRun rss;
  rss.dataset = generate_connection_logs(
      dir / "rss.db", {options.rss_rows, 2.0 / 3.0, three_years, Order::random}, now, 4);
  settle(rss.dataset.path);
  {
    // How the engine scales: the same ratio as the 1M scenarios, at 5M and without a writer.
    progress("peak-memory purge: single DELETE on a copy");
    const fs::path work = dir / "work.db";
    fresh_copy(rss.dataset.path, work);
    rss.baseline_seconds = baseline_delete(work).seconds;
    for (const char* suffix : {"", "-wal", "-shm"})
      fs::remove(work.string() + suffix);
  }
  progress("peak-memory purge: retentiond once");  // on the dataset itself: measured once
  {
    RetentiondRun run =
        run_retentiond(options, dir / "state", rss.dataset.path, k_delete_rule, "connection_logs");
    read_audit(options, run);
    rss.process = run.process;
    rss.audit = run.audit;
    rss.changed = rss.dataset.rows - count_rows(rss.dataset.path, "connection_logs");
  }
  if (!options.keep)
    fs::remove(rss.dataset.path);

  // A third due: anchors spread over 365 / (2/3) days.
  SoloRun report;
  report.dataset = generate_connection_logs(
      dir / "report.db", {options.report_rows, 1.0 / 3.0, 548 * k_day, Order::random}, now, 5);
  settle(report.dataset.path);
  progress("report: retentiond report --format json --output /dev/null");
  {
    const fs::path config = write_config(dir / "state", report.dataset.path, k_delete_rule);
    report.process = run_process({options.retentiond.string(), "-c", config.string(), "report",
                                  "--format", "json", "--output", "/dev/null"},
                                 dir / "state" / "report.log", true);
  }

  const std::string section = render(options, machine, scenarios, rss, report);
  std::cout << section << std::flush;
  if (!options.results.empty()) {
    append_results(options.results, section);
    progress(fmt::format("appended to {}", options.results.string()));
  }
  bool all_verified = rss.changed == rss.dataset.due;
  for (const Scenario& s : scenarios)
    all_verified = all_verified && s.baseline.verified && s.retentiond.verified;
  if (!all_verified)
    progress("warning: some runs changed a different number of rows than were due (marked (!))");
  return all_verified ? 0 : 1;
}

}  // namespace
}  // namespace retentiond::bench

int main(int argc, char** argv) {
  try {
    return retentiond::bench::run(retentiond::bench::parse_options(argc, argv));
  } catch (const retentiond::bench::UsageError& error) {
    std::cerr << "purge_bench: " << error.what() << "\n";
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "purge_bench: error: " << error.what() << "\n";
    return 1;
  }
}
